"""Generation under the host's VRAM management equals the unmanaged generation: with a limit that forces the host's
over-the-limit path (on CPU with fp8 storage, and on a GPU always, that deep-copies every block for each call), and
with fp8 storage (looser: every DiT and adapter weight is rounded to fp8 e4m3, a 3-bit mantissa)."""
from __future__ import annotations

import pytest
import torch
from conftest import GEN
from wiring_probes import face_image

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FP8_RTOL = 0.06  # fp8 storage vs unmanaged, relative L2 of the video; measured 3.2% on the tiny model (CPU)
EFFECT_RTOL = 0.25  # what the adapters change, fp8 vs unmanaged; measured 7% (dropped adapters: 100%)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from lynx_ext.tiny.face_models import write_standin_pack
    from lynx_ext.tiny.adapters import tiny_adapters
    from lynx_ext.tiny.wan import build_tiny_wan, load_tiny_pipe

    home = tmp_path_factory.mktemp("vram")
    wan = build_tiny_wan(home / "wan")
    tiny_adapters(load_tiny_pipe(wan).dit, "full").save(home / "adapters.safetensors")
    return {"model_paths": [str(wan / f) for f in ("dit.safetensors", "text_encoder.safetensors", "vae.safetensors")],
            "tokenizer_path": str(wan / "tokenizer"), "adapters": str(home / "adapters.safetensors"),
            "face_models": str(write_standin_pack(home / "faces"))}


def generate(files, device, adapters_on=True, **vram) -> torch.Tensor:
    from lynx_ext.inference import LynxGenerator
    from lynx_ext.tiny.wan import register_tiny_wan

    register_tiny_wan(files["model_paths"][0].rsplit("/", 1)[0])
    gen = LynxGenerator.from_pretrained(variant="full", embedder="insightface", device=device, dtype="fp32",
                                        **files, **vram)
    emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)
    scales = {} if adapters_on else {"lynx_id_scale": 0.0, "lynx_ref_scale": 0.0}
    out = gen.pipe(**GEN, lynx_id_embeds=emb, lynx_ref_image=face_image(), cfg_scale=5.0, cfg_scale_i=2.0, **scales)
    return out.float().cpu(), gen


@pytest.fixture
def vram_events(monkeypatch):
    """Counts the host's over-the-limit decisions (by wrapper class) and its deep copies of VRAM-managed blocks."""
    from diffsynth.core.vram.layers import AutoTorchModule, AutoWrappedNonRecurseModule

    count = {"over_limit": set(), "deep_copies": 0}
    cast_to, check = AutoWrappedNonRecurseModule.cast_to, AutoTorchModule.check_free_vram

    def counting_cast_to(self, *args, **kwargs):
        count["deep_copies"] += 1
        return cast_to(self, *args, **kwargs)

    def counting_check(self):
        free = check(self)
        if not free:
            count["over_limit"].add(type(self).__name__)
        return free

    monkeypatch.setattr(AutoWrappedNonRecurseModule, "cast_to", counting_cast_to)
    monkeypatch.setattr(AutoTorchModule, "check_free_vram", counting_check)
    return count


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("device", DEVICES)
def test_vram_limited_generation_equals_unmanaged(files, device, vram_events):
    from diffsynth.core.vram.layers import AutoWrappedLinear, AutoWrappedNonRecurseModule

    plain, _ = generate(files, device)
    managed, gen = generate(files, device, vram_limit=0.0)
    assert isinstance(gen.pipe.dit.blocks[0], AutoWrappedNonRecurseModule)
    assert isinstance(gen.pipe.lynx.id_layers["0"].to_k_ip, AutoWrappedLinear)
    assert isinstance(gen.pipe.lynx.ref_layers["0"].to_k_ref, AutoWrappedLinear)
    assert "AutoWrappedNonRecurseModule" in vram_events["over_limit"], "the DiT blocks never ran over the limit"
    if device != "cpu":  # on CPU the computation copy is the stored block itself (same device and dtype)
        assert vram_events["deep_copies"] > 0, "the limit did not force the host's deep copies"
    assert rel(managed, plain) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_fp8_storage_keeps_the_adapters(files, device, vram_events):
    plain, _ = generate(files, device)
    plain_off, _ = generate(files, device, adapters_on=False)
    fp8, gen = generate(files, device, vram_limit=0.0, fp8=True)
    assert "AutoWrappedNonRecurseModule" in vram_events["over_limit"] and vram_events["deep_copies"] > 0, vram_events
    assert gen.pipe.lynx.id_layers["0"].to_k_ip.weight.dtype == torch.float8_e4m3fn
    fp8_off, _ = generate(files, device, adapters_on=False, vram_limit=0.0, fp8=True)
    assert rel(fp8, plain) < FP8_RTOL
    # What the adapters change survives fp8 storage (and is not lost in its rounding).
    effect, effect_fp8 = plain - plain_off, fp8 - fp8_off
    assert effect.norm() > 0.01 * plain.norm()
    assert rel(effect_fp8, effect) < EFFECT_RTOL, rel(effect_fp8, effect)
