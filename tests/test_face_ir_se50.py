"""Our IR-SE50 vs facexlib's ``Backbone(50, 0.6, 'ir_se')``: same checkpoint keys, same official embedding."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_running_statistics
from conftest_faces import CPU, astronaut_png, standin_pack  # noqa: F401

from lynx_ext.conditioners import FaceAnalyzer
from lynx_ext.conditioners.arcface_facexlib import FacexlibArcFaceEmbedder
from lynx_ext.conditioners.ir_se50 import IRSE50, NUM_STATE_KEYS


def facexlib_arch():
    """facexlib's ``arcface_arch.py`` loaded by path (``import facexlib`` pulls in numba, filterpy, ...)."""
    spec = importlib.util.find_spec("facexlib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("facexlib is not installed (pip install facexlib --no-deps)")
    path = Path(list(spec.submodule_search_locations)[0]) / "recognition" / "arcface_arch.py"
    module_spec = importlib.util.spec_from_file_location("facexlib_arcface_arch", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """A random IR-SE50 checkpoint with non-trivial batch-norm statistics, saved like facexlib's .pth."""
    torch.manual_seed(0)
    model = IRSE50()
    state = random_running_statistics(model)
    path = tmp_path_factory.mktemp("fx") / "recognition_arcface_ir_se50.pth"
    torch.save(state, path)
    return path


def test_state_dict_layout():
    state = IRSE50().state_dict()
    assert len(state) == NUM_STATE_KEYS == 397
    assert state["input_layer.0.weight"].shape == (64, 3, 3, 3)
    assert state["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert state["body.23.res_layer.5.fc1.weight"].shape == (32, 512, 1, 1)
    assert state["output_layer.3.weight"].shape == (512, 25088)
    assert "body.0.shortcut_layer.0.weight" not in state  # 64 -> 64: parameter-free subsampling shortcut


def test_keys_and_shapes_equal_facexlib(random_weights):
    arch = facexlib_arch()
    ours = torch.load(random_weights, map_location="cpu", weights_only=True)
    theirs = arch.Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se").state_dict()
    assert set(ours) == set(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in theirs)


def test_official_embedding_matches_facexlib(random_weights, standin_pack, astronaut_png, tmp_path):
    """Whole official path: norm_crop -> ToTensor -> Normalize(0.5) -> RGB->BGR -> facexlib Backbone."""
    import shutil

    import torchvision.transforms as T

    arch = facexlib_arch()
    pack = Path(shutil.copytree(standin_pack, tmp_path / "pack"))
    shutil.copy(random_weights, pack / "recognition_arcface_ir_se50.pth")  # found next to the detector
    analyzer = FaceAnalyzer.from_options(pack, embedder="facexlib", providers=CPU, offline_ok=True)
    assert analyzer.embedder.name.startswith("facexlib")
    result = analyzer.analyze(astronaut_png)

    reference = arch.Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se")
    reference.load_state_dict(torch.load(random_weights, map_location="cpu", weights_only=True), strict=True)
    reference.eval()
    x = T.Compose([T.ToTensor(), T.Normalize([0.5], [0.5])])(np.array(result.aligned_112)).unsqueeze(0)
    with torch.no_grad():
        expected = reference(x[:, [2, 1, 0], :, :].contiguous())[0].numpy()
    np.testing.assert_allclose(result.embedding, expected, atol=2e-5)
    assert abs(np.linalg.norm(result.embedding) - 1) < 1e-5


def test_preprocess_is_bgr_in_minus_one_to_one():
    red = np.zeros((112, 112, 3), np.uint8)
    red[..., 0] = 255
    x = FacexlibArcFaceEmbedder.preprocess([red])
    assert x.shape == (1, 3, 112, 112)
    assert float(x[0, 2].min()) == 1.0 and float(x[0, 0].max()) == -1.0  # R went to the last channel


def test_wrong_checkpoint_is_explained(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not facexlib's ArcFace IR-SE50"):
        FacexlibArcFaceEmbedder.from_file(tmp_path / "other.pth")
