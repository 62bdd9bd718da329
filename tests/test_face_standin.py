"""Stand-in ONNX models run through insightface's real loading, routing and decoding code."""
from __future__ import annotations

import time

import numpy as np
from conftest_faces import CPU, astronaut, standin_pack  # noqa: F401  (fixture)

from lynx_ext.tiny.face_models import (
    ASTRONAUT_FACE,
    build_standin_detector,
    build_standin_recognizer,
    scaled_face,
)


def test_standins_build_fast(tmp_path):
    start = time.perf_counter()
    build_standin_detector(tmp_path / "det.onnx")
    build_standin_recognizer(tmp_path / "rec.onnx")
    assert time.perf_counter() - start < 1.0


def test_insightface_routes_and_runs_the_standins(standin_pack):
    from insightface.model_zoo import model_zoo

    det = model_zoo.get_model(str(standin_pack / "det_10g.onnx"), providers=CPU)
    rec = model_zoo.get_model(str(standin_pack / "w600k_r50.onnx"), providers=CPU)
    assert type(det).__name__ == "SCRFD" and det.use_kps and det.fmc == 3 and det._num_anchors == 2
    assert type(rec).__name__ == "ArcFaceONNX" and rec.input_size == (112, 112) and rec.input_mean == 127.5


def test_face_analysis_app_finds_exactly_one_face(standin_pack):
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(standin_pack), providers=CPU)  # detection + recognition, as the official code
    app.prepare(ctx_id=-1, det_size=(640, 640))
    img = astronaut()
    faces = app.get(img)
    assert len(faces) == 1
    face = faces[0]
    assert face.kps.shape == (5, 2) and face.embedding.shape == (512,)
    # Network input is 640 px, the photo 512 px: the configured geometry comes back scaled by 512/640.
    np.testing.assert_allclose(face.kps, np.array(ASTRONAUT_FACE.kps) * 0.8, atol=1e-3)
    np.testing.assert_allclose(face.bbox, np.array(ASTRONAUT_FACE.bbox) * 0.8, atol=1e-3)
    assert abs(float(face.det_score) - ASTRONAUT_FACE.score) < 1e-6
    again = app.get(np.ascontiguousarray(img[::-1]))  # content does not matter; still deterministic
    np.testing.assert_allclose(again[0].kps, face.kps)
    assert not np.allclose(again[0].embedding, face.embedding)  # the recognizer does look at the pixels

    only_det = FaceAnalysis(name=str(standin_pack), allowed_modules=["detection"], providers=CPU)
    only_det.prepare(ctx_id=-1, det_size=(640, 640))
    assert len(only_det.get(np.zeros((300, 500, 3), np.uint8))) == 1


def test_multi_and_empty_variants(tmp_path):
    from insightface.model_zoo import model_zoo

    faces = [ASTRONAUT_FACE, scaled_face(ASTRONAUT_FACE, 0.5, (-180, 250)),
             scaled_face(ASTRONAUT_FACE, 0.3, (250, 300))]
    assert sorted(f.stride() for f in faces) == [8, 16, 32]  # one face per head
    det = model_zoo.get_model(str(build_standin_detector(tmp_path / "multi.onnx", faces)), providers=CPU)
    det.prepare(-1, input_size=(640, 640))
    boxes, kpss = det.detect(np.zeros((640, 640, 3), np.uint8))
    assert boxes.shape == (3, 5) and kpss.shape == (3, 5, 2)
    np.testing.assert_allclose(np.sort(boxes[:, 0]), np.sort([f.bbox[0] for f in faces]), atol=1e-3)

    none = model_zoo.get_model(str(build_standin_detector(tmp_path / "none.onnx", [])), providers=CPU)
    none.prepare(-1, input_size=(640, 640))
    assert none.detect(astronaut())[0].shape[0] == 0
