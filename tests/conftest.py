"""Shared fixtures: tiny real DiffSynth Wan models (built once per session) and the official parity fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("DIFFSYNTH_SKIP_DOWNLOAD", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("LYNX_FIXTURES", ROOT / "tests" / "fixtures" / "lynx_official_tiny"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory) -> Path:
    from lynx_ext.tiny.wan import build_tiny_wan

    return build_tiny_wan(tmp_path_factory.mktemp("tiny_wan"))


@pytest.fixture
def tiny_pipe(tiny_wan_dir):
    from lynx_ext.tiny.wan import load_tiny_pipe

    return load_tiny_pipe(tiny_wan_dir)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def tiny_adapter_config(dit, variant="full", num_registers=2):
    from lynx_ext.adapters import LynxAdapterConfig, ResamplerConfig

    id_dim = dit.dim if variant == "full" else 48
    res = ResamplerConfig(dim=64, depth=2, dim_head=16, heads=4, num_queries=16, embedding_dim=512, output_dim=id_dim)
    return LynxAdapterConfig.official(variant, dim=dit.dim, num_blocks=len(dit.blocks),
                                      num_registers=num_registers if variant == "full" else 0, resampler=res)


def random_adapters(dit, variant="full", seed=0, scale=0.5, **kw):
    """Adapters with non-zero branches (so they visibly change the output)."""
    from lynx_ext.adapters import LynxAdapters

    torch.manual_seed(seed)
    adapters = LynxAdapters(tiny_adapter_config(dit, variant, **kw), init="random")
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if "id_layers" in name or "ref_layers" in name:
                p.copy_(torch.randn_like(p) * scale / p.shape[-1] ** 0.5)
    return adapters


GEN = dict(prompt="a woman smiling in a park", negative_prompt="blurred", height=64, width=64, num_frames=5,
           num_inference_steps=2, seed=3, tiled=False, output_type="floatpoint", progress_bar_cmd=lambda x: x)


def random_running_statistics(model: torch.nn.Module) -> dict:
    """Give ``model``'s BatchNorm layers random running statistics (a trained network's are not 0 / 1); returns its
    state dict."""
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            value.copy_(torch.rand_like(value) + 0.5)
        elif key.endswith("running_mean"):
            value.copy_(torch.randn_like(value) * 0.1)
    return state


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory) -> Path:
    """scikit-image's astronaut photo as a PNG (a face that is not from ../shared)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("astronaut") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def module_home(tmp_path_factory) -> Path:
    """A ``LYNX_EXT_HOME`` of the module's own (pair it with ``use_module_home``)."""
    return tmp_path_factory.mktemp("lynx_home")


@pytest.fixture
def use_module_home(module_home, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(module_home))
