"""The recogniser metrics: each finds its model file in the scoring face-models folder (or says which file is missing
and where it goes), and the face-similarity numbers of a case follow their definition."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lynx_ext.conditioners.errors import FaceModelsMissingError
from lynx_ext.conditioners.protocols import DetectedFace
from lynx_ext.tiny.face_models import ASTRONAUT_FACE, write_standin_pack
from lynx_ext.evaluation.metrics import MetricEnv, ScoredVideo, SubjectFace, create_metric

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return write_standin_pack(tmp_path_factory.mktemp("faces"))


def env(folder, **kw) -> MetricEnv:
    return MetricEnv(face_models=folder, providers=CPU, ctx_id=-1, **kw)


def test_facexlib_metric_reads_the_folder(tmp_path):
    from lynx_ext.conditioners.ir_se50 import IRSE50

    torch.save(IRSE50().state_dict(), tmp_path / "recognition_arcface_ir_se50.pth")
    metric = create_metric("facexlib")
    metric.load(env(tmp_path))
    assert metric.describe()["model"] == "facexlib-arcface-ir_se50" and metric.embedder.input_size == 112


def test_insightface_metric_pack_explicit_file_and_missing(pack, tmp_path):
    metric = create_metric("insightface")
    metric.load(env(pack))
    described = metric.describe()  # a stand-in says so, and is not described as the paper's insightface score
    assert described["model"].startswith("stand-in recognizer w600k_r50.onnx") and described["standin"] is True
    assert "paper" not in described["description"] and described["description"].startswith("STAND-IN for insightface")
    explicit = create_metric("insightface")
    explicit.load(env(None, model_files={"insightface": str(pack / "w600k_r50.onnx")}))
    assert explicit.embedder.model_file == pack / "w600k_r50.onnx"
    with pytest.raises(FaceModelsMissingError) as err:
        create_metric("insightface").load(env(tmp_path))
    assert err.value.filename == "w600k_r50.onnx" and err.value.destination == tmp_path / "w600k_r50.onnx"


def astronaut_face(image: np.ndarray) -> DetectedFace:
    """The stand-in detector's astronaut face, in pixels of a 512-px astronaut image."""
    scale = image.shape[1] / 640
    return DetectedFace(bbox=np.array(ASTRONAUT_FACE.bbox, np.float32) * scale,
                        kps=np.array(ASTRONAUT_FACE.kps, np.float32) * scale, score=0.9)


def test_case_numbers_follow_the_definition(pack):
    from skimage import data

    from lynx_ext.conditioners.alignment import arcface_crop

    metric = create_metric("insightface")
    metric.load(env(pack))
    photo = data.astronaut()
    face = astronaut_face(photo)
    frames = [photo, np.ascontiguousarray(photo[:, ::-1]), (photo * 0.6).astype(np.uint8), photo[::-1].copy()]
    faces = [face, face, None, face]  # the third frame has no face
    video = ScoredVideo(key="a", frames=frames, indices=[0, 3, 6, 9], faces=faces, face_counts=[1, 1, 0, 1],
                        info={"frames": 10})
    subject = SubjectFace(name="s", path=Path("s.png"), image=photo, face=face, num_faces=1)
    score = metric.score(video, subject, "a prompt")

    def embed(rgb):
        vec = metric.embedder.embed_aligned(arcface_crop(rgb, face.kps, 112))
        return vec / np.linalg.norm(vec)

    ref = embed(photo)
    embeddings = [None if f is None else embed(fr) for fr, f in zip(frames, faces)]
    expected = [None if e is None else float(e @ ref) for e in embeddings]
    assert score.per_frame[2] is None and score.per_frame == pytest.approx(expected, abs=1e-5)
    found = [v for v in expected if v is not None]
    assert score.value == pytest.approx(np.mean(found), abs=1e-5)
    assert score.per_frame[0] == pytest.approx(1.0, abs=1e-5)  # the subject photo itself
    pairs = [embeddings[0] @ embeddings[1], embeddings[1] @ embeddings[3]]  # frame 2 (no face) is passed over
    assert score.extras["temporal_consistency"] == pytest.approx(np.mean(pairs), abs=1e-5)
    assert score.extras["clipped_mean"] == pytest.approx(np.mean(np.maximum(found, 0)), abs=1e-5)
    other = ScoredVideo(key="b", frames=[frames[2]], indices=[0], faces=[face], face_counts=[1], info={"frames": 1})
    assert metric.score(other, subject, "x").per_frame == pytest.approx([float(embed(frames[2]) @ ref)], abs=1e-5)
    nothing = ScoredVideo(key="c", frames=[frames[2]], indices=[0], faces=[None], face_counts=[0], info={"frames": 1})
    empty = metric.score(nothing, subject, "x")
    assert empty.value is None and empty.extras["temporal_consistency"] is None and empty.per_frame == [None]
