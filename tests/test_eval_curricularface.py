"""CurricularFace IR-101 (OpenS2V FaceSim-Cur): the loader reads a file of the published checkpoint's layout.

The real ``glint360k_curricular_face_r101_backbone.bin`` cannot be downloaded here, so the test writes a stand-in of
the same layout (TFace ``IR_101([112, 112])`` keys and shapes, random weights) and loads it through the real code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_running_statistics

from lynx_ext.conditioners.curricularface import (CURRICULARFACE_FILE, CurricularFaceEmbedder,
                                                  load_curricularface_embedder)
from lynx_ext.conditioners.errors import FaceModelsMissingError
from lynx_ext.conditioners.ir101 import IR101


def test_layout_of_the_published_checkpoint():
    state = IR101().state_dict()
    units = {k.split(".")[1] for k in state if k.startswith("body.")}
    assert len(units) == 49  # 3 + 13 + 30 + 3 units
    assert state["input_layer.0.weight"].shape == (64, 3, 3, 3)
    # first unit of each stage: 64 -> 64 subsamples without parameters, the others have a 1x1 conv shortcut
    assert "body.0.shortcut_layer.0.weight" not in state
    assert state["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert state["body.16.shortcut_layer.0.weight"].shape == (256, 128, 1, 1)
    assert state["body.46.shortcut_layer.0.weight"].shape == (512, 256, 1, 1)
    assert state["body.48.res_layer.2.weight"].shape == (512,)  # BN after the first conv (TFace IR unit)
    assert state["body.48.res_layer.3.weight"].shape == (512,)  # PReLU
    assert state["output_layer.3.weight"].shape == (512, 512 * 7 * 7)
    assert "output_layer.4.running_mean" in state and "output_layer.4.weight" not in state  # BN1d(affine=False)


@pytest.fixture(scope="module")
def standin_bin(tmp_path_factory) -> Path:
    """A random IR-101 state dict saved as the published file (plain state dict, ``.bin``)."""
    torch.manual_seed(0)
    model = IR101()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 4:
                p.mul_(0.35)  # keep random activations finite through 49 units
    state = random_running_statistics(model)
    folder = tmp_path_factory.mktemp("opens2v_weights")
    torch.save(state, folder / CURRICULARFACE_FILE)
    return folder / CURRICULARFACE_FILE


def crop(seed: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    img = (resize(data.astronaut()[40 + seed * 10: 290 + seed * 10, 150:400], (224, 224)) * 255).astype(np.uint8)
    return img


def test_standin_file_loads_and_embeds(standin_bin):
    embedder = load_curricularface_embedder(search_dirs=[standin_bin.parent])
    a = embedder.embed_aligned(crop(0))
    assert a.shape == (512,) and np.isfinite(a).all() and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    batch = embedder.embed_batch([crop(0), crop(3)])
    assert np.allclose(batch[0], a, atol=1e-5) and np.abs(batch[1] - a).max() > 1e-4  # deterministic, content-dependent
    ref = torch.load(standin_bin, weights_only=True)
    assert torch.equal(embedder.model.state_dict()["output_layer.3.weight"], ref["output_layer.3.weight"])


def test_preprocessing_is_opens2v_order():
    red = np.zeros((224, 224, 3), np.uint8)
    red[..., 0] = 255
    x = CurricularFaceEmbedder.preprocess([red])
    assert x.shape == (1, 3, 112, 112)
    assert torch.allclose(x[0, 0], torch.ones(112, 112)) and torch.allclose(x[0, 1:], -torch.ones(2, 112, 112))


def test_wrapped_and_prefixed_checkpoints_load(standin_bin, tmp_path):
    state = torch.load(standin_bin, weights_only=True)
    wrapped = tmp_path / "wrapped.bin"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    assert CurricularFaceEmbedder.from_file(wrapped).model.state_dict()["body.0.res_layer.1.weight"].equal(
        state["body.0.res_layer.1.weight"])


def test_wrong_and_missing_files(tmp_path):
    from lynx_ext.conditioners.ir_se50 import IRSE50

    wrong = tmp_path / "ir_se50.bin"
    torch.save(IRSE50().state_dict(), wrong)
    with pytest.raises(ValueError, match="is not the CurricularFace IR-101 checkpoint"):
        CurricularFaceEmbedder.from_file(wrong)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        CurricularFaceEmbedder.from_file(junk)
    with pytest.raises(FaceModelsMissingError) as err:
        load_curricularface_embedder(search_dirs=[tmp_path])
    message = str(err.value)
    assert CURRICULARFACE_FILE in message and str(tmp_path) in message and "OpenS2V-Weight" in message


def test_metric_uses_the_face_models_folder(standin_bin):
    from lynx_ext.evaluation.metrics import MetricEnv, create_metric

    metric = create_metric("curricularface")
    metric.load(MetricEnv(face_models=standin_bin.parent))
    assert metric.describe()["model"] == "curricularface-ir101" and metric.embedder.input_size == 224
