"""Adapter weights: formats, strict loading with named-key errors, lite quirk, packed forwards."""
from __future__ import annotations

import pytest
import torch
from conftest import random_adapters
from safetensors.torch import load_file, save_file

from lynx_ext.adapters import LynxAdapters, LynxCheckpointError, load_lynx_adapters, save_official_folder
from lynx_ext.pipeline import install
from lynx_ext.training.packed_forward import packed_forward


def test_own_format_round_trip(tiny_pipe, tmp_path):
    adapters = random_adapters(tiny_pipe.dit)
    path = adapters.save(tmp_path / "a.safetensors", metadata={"stage": "test", "step": 3})
    loaded = LynxAdapters.load(path)
    assert loaded.config == adapters.config
    assert loaded.metadata["stage"] == "test"
    for (k, a), (k2, b) in zip(adapters.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    via_loader = load_lynx_adapters(path, tiny_pipe.dit)
    assert via_loader.config == adapters.config


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_official_folder_round_trip(tiny_pipe, tmp_path, variant):
    adapters = random_adapters(tiny_pipe.dit, variant=variant)
    save_official_folder(adapters, tmp_path / f"lynx_{variant}")
    names = sorted(p.name for p in (tmp_path / f"lynx_{variant}").iterdir())
    expected = ["ip_layers.safetensors", "resampler.safetensors", "resampler_config.json"]
    assert names == sorted(expected + (["ref_layers.safetensors"] if variant == "full" else []))
    ip = load_file(str(tmp_path / f"lynx_{variant}" / "ip_layers.safetensors"))
    if variant == "lite":  # official lite layout: entry j is block 2j, no biases
        assert sorted({k.split(".")[0] for k in ip}) == [str(j) for j in range(len(adapters.config.id_blocks))]
        assert not any(k.endswith("bias") for k in ip)
    loaded = load_lynx_adapters(tmp_path / f"lynx_{variant}", tiny_pipe.dit)
    assert loaded.config.id_blocks == adapters.config.id_blocks
    for k, v in adapters.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_mismatched_official_checkpoint_names_the_key(tiny_pipe, tmp_path):
    folder = save_official_folder(random_adapters(tiny_pipe.dit), tmp_path / "lynx_full")
    ref = load_file(str(folder / "ref_layers.safetensors"))
    ref["1.to_v_ref.weight"] = torch.zeros(7, 7)
    save_file(ref, str(folder / "ref_layers.safetensors"))
    with pytest.raises(LynxCheckpointError) as err:
        load_lynx_adapters(folder, tiny_pipe.dit)
    msg = str(err.value)
    assert "ref_layers.safetensors:1.to_v_ref.weight" in msg and "[7, 7]" in msg and "[96, 96]" in msg


def test_missing_and_unexpected_keys_are_named(tiny_pipe, tmp_path):
    adapters = random_adapters(tiny_pipe.dit)
    path = adapters.save(tmp_path / "a.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    del sd["id_layers.2.to_k_ip.bias"]
    save_file(sd, str(tmp_path / "b.safetensors"), metadata=meta)
    with pytest.raises(LynxCheckpointError, match=r"missing key 'id_layers.2.to_k_ip.bias' \(expected shape \[96\]\)"):
        LynxAdapters.load(tmp_path / "b.safetensors")
    sd["id_layers.2.to_k_ip.bias"] = torch.zeros(96)
    sd["id_layers.2.extra"] = torch.zeros(3)
    save_file(sd, str(tmp_path / "c.safetensors"), metadata=meta)
    with pytest.raises(LynxCheckpointError, match="unexpected key 'id_layers.2.extra'"):
        LynxAdapters.load(tmp_path / "c.safetensors")


def test_wrong_model_size_and_variant_are_refused(tiny_pipe, tmp_path, fixtures_dir):
    with pytest.raises(LynxCheckpointError, match="expected \\[96, C\\]"):
        load_lynx_adapters(fixtures_dir / "full", tiny_pipe.dit)
    lite = save_official_folder(random_adapters(tiny_pipe.dit, variant="lite"), tmp_path / "lynx_lite")
    with pytest.raises(LynxCheckpointError, match="lite .* checkpoint, but variant 'full'"):
        load_lynx_adapters(lite, tiny_pipe.dit, variant="full")
    full = save_official_folder(random_adapters(tiny_pipe.dit), tmp_path / "lynx_full")
    with pytest.raises(LynxCheckpointError, match="full .* checkpoint, but variant 'lite'"):
        load_lynx_adapters(full, tiny_pipe.dit, variant="lite")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_lynx_adapters(tmp_path / "nope", tiny_pipe.dit)


def _predict(pipe, id_scale):
    torch.manual_seed(0)
    with torch.no_grad():
        return pipe.model_fn(dit=pipe.dit, lynx=pipe.lynx, latents=torch.randn(1, 16, 1, 4, 4),
                             timestep=torch.tensor([700.0]), context=torch.randn(1, 6, 32),
                             lynx_id_tokens=pipe.lynx.encode_identity(torch.randn(1, 512)), lynx_id_scale=id_scale)


def test_lite_zero_scale_is_real_zero_unless_quirk(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit, variant="lite"))
    base = _predict(tiny_pipe, None)
    torch.manual_seed(0)
    with torch.no_grad():
        plain = tiny_pipe.model_fn(dit=tiny_pipe.dit, lynx=tiny_pipe.lynx, latents=torch.randn(1, 16, 1, 4, 4),
                                   timestep=torch.tensor([700.0]), context=torch.randn(1, 6, 32))
    assert torch.equal(_predict(tiny_pipe, 0.0), plain)
    assert not torch.equal(base, plain)
    tiny_pipe.lynx.config.lite_zero_scale_quirk = True
    assert torch.equal(_predict(tiny_pipe, 0.0), base)


def test_packed_forward_equals_separate_forwards(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    pipe, dit, lynx = tiny_pipe, tiny_pipe.dit, tiny_pipe.lynx
    g = torch.Generator().manual_seed(0)
    lat = [torch.randn(1, 16, 2, 4, 6, generator=g), torch.randn(1, 16, 1, 6, 4, generator=g)]
    ctx = [torch.randn(1, 5, 32, generator=g), torch.randn(1, 9, 32, generator=g)]
    refs = [torch.randn(1, 16, 1, 4, 4, generator=g), torch.randn(1, 16, 1, 2, 6, generator=g)]
    tok = [lynx.encode_identity(torch.randn(1, 512, generator=g)).detach() for _ in range(2)]
    text = torch.randn(1, 4, 32, generator=g)
    timesteps = torch.tensor([300.0, 800.0])
    with torch.no_grad():
        feats, ref_lens = packed_forward(pipe, refs, torch.zeros(1), [text, text], capture=True)
        packed = packed_forward(pipe, lat, timesteps, ctx, id_tokens=tok, ref_features=feats, ref_lens=ref_lens)
        for i in range(2):
            single_feats = {b: f.split(ref_lens, dim=1)[i] for b, f in feats.items()}
            single = pipe.model_fn(dit=dit, lynx=lynx, latents=lat[i], timestep=timesteps[i:i + 1], context=ctx[i],
                                   lynx_id_tokens=tok[i], lynx_ref_features=single_feats)
            assert (packed[i] - single).abs().max() < 1e-5
