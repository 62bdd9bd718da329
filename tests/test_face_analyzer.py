"""FaceAnalyzer end to end on stand-in models (real insightface code, tiny ONNX files)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest_faces import CPU, astronaut, astronaut_png, standin_analyzer, standin_pack  # noqa: F401
from PIL import Image

from lynx_ext.conditioners import FaceAnalysisResult, FaceAnalyzer, LynxInputError, NoFaceError
from lynx_ext.tiny.face_models import ASTRONAUT_FACE, scaled_face


@pytest.fixture(scope="module")
def analyzer(standin_pack):
    return FaceAnalyzer.from_options(standin_pack, embedder="insightface", providers=CPU, offline_ok=True)


def test_analyze_file_end_to_end(analyzer, astronaut_png):
    result = analyzer.analyze(astronaut_png)
    assert isinstance(result, FaceAnalysisResult)
    assert result.embedding.shape == (512,) and result.embedding.dtype == np.float32
    assert abs(np.linalg.norm(result.embedding) - 1.0) < 1e-5
    assert result.kps.shape == (5, 2) and result.bbox.shape == (4,) and result.num_faces == 1
    assert result.aligned_112.size == (112, 112) and result.aligned_112.mode == "RGB"
    assert result.ref_crop.size == (256, 256) and result.ref_crop.mode == "RGB"
    assert result.det_score == pytest.approx(ASTRONAUT_FACE.score)
    from lynx_ext.conditioners.standin import STANDIN_WARNING

    assert result.warnings == [STANDIN_WARNING]  # stand-ins say so wherever the analysis goes
    report = json.loads(json.dumps(result.report()))
    assert report["standin"] is True and report["detector"].startswith("stand-in detector det_10g.onnx")
    assert report["embedder"].startswith("stand-in recognizer") and "not a detection" in report["det_score_scale"]
    assert report["num_faces"] == 1 and report["embedding_dim"] == 512 and report["source"].endswith("astronaut.png")
    assert len(report["kps"]) == 5 and report["ref_crop_size"] == [256, 256]
    # same photo as array / PIL gives the same numbers; embed_aligned reproduces the embedding
    again = analyzer.analyze(Image.open(astronaut_png))
    np.testing.assert_allclose(again.embedding, result.embedding, atol=1e-6)
    np.testing.assert_allclose(analyzer.embed_aligned(result.aligned_112), result.embedding, atol=1e-5)
    with pytest.raises(LynxInputError, match="square"):
        analyzer.embed_aligned(np.zeros((112, 100, 3), np.uint8))


def test_no_face_raises(tmp_path, astronaut_png):
    empty = standin_analyzer(tmp_path / "none", faces=[])
    with pytest.raises(NoFaceError, match="No face found in .*astronaut.png") as info:
        empty.analyze(astronaut_png)
    assert isinstance(info.value, LynxInputError)


def test_several_faces_largest_wins_with_warning(tmp_path):
    small = scaled_face(ASTRONAUT_FACE, 0.5, (-180, 250), score=0.99)  # higher score, smaller box
    tiny = scaled_face(ASTRONAUT_FACE, 0.3, (250, 300))
    multi = standin_analyzer(tmp_path / "multi", faces=[small, ASTRONAUT_FACE, tiny])
    result = multi.analyze(astronaut())
    assert result.num_faces == 3
    np.testing.assert_allclose(result.bbox, np.array(ASTRONAUT_FACE.bbox) * 0.8, atol=1e-3)
    assert any("3 faces found; using the largest" in w for w in result.warnings)
    assert any("small" in w for w in result.warnings) is False  # the chosen face is large


def test_large_photo_is_detected_on_a_copy(tmp_path, analyzer):
    big = np.asarray(Image.fromarray(astronaut()).resize((2048, 2048)))
    small_limit = FaceAnalyzer(analyzer.detector, analyzer.embedder, max_detect_side=1500, detect_side=1024)
    result = small_limit.analyze(big)
    direct = analyzer.analyze(big)  # under the default limit: the detector sees the full photo
    np.testing.assert_allclose(result.kps, direct.kps, atol=0.5)  # coordinates are mapped back
    assert any("detected on a 1024x1024 copy" in w for w in result.warnings)
    assert result.image_size == (2048, 2048)


def test_face_near_the_edge_warns(tmp_path):
    corner = scaled_face(ASTRONAUT_FACE, 0.35, (-250, -120))
    result = standin_analyzer(tmp_path / "edge", faces=[corner]).analyze(astronaut())
    assert any("outside the photo" in w for w in result.warnings)
    assert any("small" in w for w in result.warnings)


def test_official_rgb_as_bgr_quirk_is_the_default(standin_pack, monkeypatch):
    from lynx_ext.conditioners.detection import InsightFaceDetector

    seen = []
    for quirk in (True, False):
        det = InsightFaceDetector(standin_pack / "det_10g.onnx", providers=CPU, ctx_id=-1, rgb_as_bgr=quirk)
        original = det.model.detect
        monkeypatch.setattr(det.model, "detect", lambda img, **kw: (seen.append(img.copy()), original(img, **kw))[1])
        det.detect(astronaut())
    np.testing.assert_array_equal(seen[0], astronaut())  # official: the RGB array as-is
    np.testing.assert_array_equal(seen[1], astronaut()[..., ::-1])  # corrected: BGR as insightface expects
    default = FaceAnalyzer.from_options(standin_pack, embedder="insightface", providers=CPU, offline_ok=True)
    assert default.detector.rgb_as_bgr is True


def test_unknown_options_are_input_errors(standin_pack):
    with pytest.raises(LynxInputError, match="Unknown face embedder"):
        FaceAnalyzer.from_options(standin_pack, embedder="vggface", providers=CPU, offline_ok=True)
    with pytest.raises(LynxInputError, match="Unknown face detector"):
        FaceAnalyzer.from_options(standin_pack, detector="yolo", providers=CPU, offline_ok=True)
