"""The DiT LoRA trained with the adapters: exported in the host's LoRA layout, fused by `pipe.load_lora` exactly,
and loaded by `diffsynth-ext generate --lora` after a real tiny training run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_training import base_args, cache, fit  # noqa: F401  (the module-scoped tiny data fixture)


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


def test_exported_lora_fuses_to_the_trained_weights(tiny_wan_dir, tmp_path):
    from peft import LoraConfig, inject_adapter_in_model

    from lynx_ext.tiny.wan import load_tiny_pipe
    from lynx_ext.training.lora_export import save_dit_lora

    trained = load_tiny_pipe(tiny_wan_dir)
    base = {n: p.detach().clone() for n, p in trained.dit.named_parameters()}
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v", "ffn.0"]), trained.dit)
    torch.manual_seed(1)
    expected = {}
    with torch.no_grad():
        for name, module in trained.dit.named_modules():
            if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {}):
                module.lora_B["default"].weight.normal_(0, 0.1)
                a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
                expected[f"{name}.weight"] = base[f"{name}.weight"] + module.scaling["default"] * (b @ a)
    assert expected and all(".self_attn.q." in k or ".cross_attn.q." in k or ".v." in k or ".ffn.0." in k
                            for k in expected)

    path = save_dit_lora(trained.dit, tmp_path / "dit_lora.safetensors", metadata={"step": 3})
    keys = set(load_file(str(path)))
    assert keys == {k.replace(".weight", suffix) for k in expected for suffix in (".lora_A.weight", ".lora_B.weight")}

    fresh = load_tiny_pipe(tiny_wan_dir)
    fresh.load_lora(fresh.dit, str(path))  # what `generate --lora` calls
    fused = dict(fresh.dit.named_parameters())
    for name, weight in expected.items():
        torch.testing.assert_close(fused[name], weight, rtol=1e-5, atol=1e-6)
    untouched = [n for n in base if n not in expected]
    assert all(torch.equal(fused[n], base[n]) for n in untouched)
    assert save_dit_lora(load_tiny_pipe(tiny_wan_dir).dit, tmp_path / "none.safetensors") is None  # no LoRA: no file


def test_fit_with_lora_exports_it_and_generate_loads_it(cache, tmp_path):  # noqa: F811
    import imageio

    from lynx_ext.cli.generate import main as generate

    run = tmp_path / "run"
    fit(base_args(cache, run, steps=2) + ["--model.lora_rank", "4", "--model.optim.lr", "0.02"])
    export = run / "adapters" / "latest"
    adapters, lora = export / "lynx_adapters.safetensors", export / "dit_lora.safetensors"
    assert adapters.is_file() and lora.is_file()
    tensors = load_file(str(lora))
    assert tensors
    assert all(k.startswith("blocks.") and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in tensors)
    assert any(t.abs().max() > 0 for k, t in tensors.items() if "lora_B" in k)  # trained (B starts at zero)

    face = cache.parent / "dataset" / "astronaut.png"
    common = ["--preset", "tiny", "--image", str(face), "--prompt", "an astronaut", "--embedder", "dlib",
              "--num-inference-steps", "2", "--num-frames", "5", "--height", "64", "--width", "64", "--quiet",
              "--no-face-similarity", "--adapters", str(adapters)]
    assert generate(common + ["--output", str(tmp_path / "plain.mp4")]) == 0
    assert generate(common + ["--lora", str(lora), "--output", str(tmp_path / "lora.mp4")]) == 0
    plain = torch.tensor(imageio.mimread(str(tmp_path / "plain.mp4"))).float()
    with_lora = torch.tensor(imageio.mimread(str(tmp_path / "lora.mp4"))).float()
    assert plain.shape == with_lora.shape
    assert (plain - with_lora).abs().max() > 0
