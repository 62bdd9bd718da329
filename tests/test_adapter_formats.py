"""Adapter checkpoint formats: detection by content, the ComfyUI-WanVideoWrapper layout, lossless round trips."""
from __future__ import annotations

import dataclasses
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from lynx_ext.adapters import LynxAdapterConfig, LynxAdapters, LynxCheckpointError, ResamplerConfig
from lynx_ext.adapters.formats import (
    FormatKind,
    Layout,
    detect_format,
    load_lynx_adapters,
    read_adapters,
    wrapper_compatibility,
    write_adapters,
)
from lynx_ext.tiny.adapters import tiny_adapters


@pytest.fixture(scope="module")
def dit(tiny_wan_dir):
    from lynx_ext.tiny.wan import load_tiny_pipe

    return load_tiny_pipe(tiny_wan_dir).dit


def mixed_adapters(dit, seed=0):
    """Lite ID-adapter (every second block, ID width 64, no biases) with a full Ref-adapter on every block."""
    lite, full = tiny_adapters(dit, "lite", seed), tiny_adapters(dit, "full", seed + 1)
    config = dataclasses.replace(lite.config, ref_blocks=list(range(len(dit.blocks))))
    mixed = LynxAdapters(config, init="random")
    state = {**lite.state_dict(), **{k: v for k, v in full.state_dict().items() if k.startswith("ref_layers.")}}
    mixed.load_state_dict(state)
    return mixed


def assert_same(a: LynxAdapters, b: LynxAdapters):
    assert a.config == b.config
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def strip_metadata(path):
    """Re-save without our header metadata, as a file made by another tool would be."""
    save_file(load_file(str(path)), str(path))


# ------------------------------------------------------------------------------------------------ detection
class Marker:
    """Unpickling this creates a file: proves that nothing is unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _make(case, tmp, dit):
    """Write the file for ``case`` (names deliberately misleading: detection must use the content)."""
    full = tiny_adapters(dit, "full")
    p = tmp / "adapters.safetensors"
    if case == "ours":
        full.save(p)
    elif case == "official":
        p = tmp / "weights"
        write_adapters(full, p, "official")
    elif case == "comfyui":
        p = tmp / "comfy"
        write_adapters(full, p, "comfyui")
    elif case == "comfyui_list":
        files = write_adapters(mixed_adapters(dit), tmp / "c", "comfyui")
        p = ",".join(str(f) for f in files)
    elif case == "pickle":
        p.write_bytes(pickle.dumps({"to_k_ip": Marker(str(tmp / "unpickled"))}))
    elif case == "torch_zip":
        torch.save({"id_layers.0.to_k_ip.weight": torch.zeros(2, 2), "m": Marker(str(tmp / "unpickled"))}, p)
    elif case == "torch_legacy":
        torch.save({"w": torch.zeros(2)}, p, _use_new_zipfile_serialization=False)
    elif case == "lightning":
        # What Lightning's `dump_checkpoint` writes (then `torch.save`), here with a booby-trapped callback state.
        torch.save({"epoch": 0, "global_step": 3, "pytorch-lightning_version": "2.4.0",
                    "state_dict": {"pipe.lynx.id_layers.0.to_k_ip.weight": torch.zeros(2, 2)},
                    "optimizer_states": [{}], "lr_schedulers": [], "callbacks": {"x": Marker(str(tmp / "unpickled"))}},
                   p)
    elif case == "random":
        p.write_bytes(os.urandom(4096))
    elif case == "empty":
        p.write_bytes(b"")
    elif case in ("truncated", "truncated_header"):
        full.save(tmp / "good.safetensors")
        data = (tmp / "good.safetensors").read_bytes()
        p.write_bytes(data[: len(data) - 1000] if case == "truncated" else data[:50])
    elif case == "unrelated":
        save_file({"encoder.weight": torch.zeros(3, 3), "encoder.bias": torch.zeros(3)}, str(p))
    elif case == "lora":
        save_file({"blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 96)}, str(p))
    elif case == "wan_dit":
        save_file({"patch_embedding.weight": torch.zeros(2, 2), "blocks.0.self_attn.q.weight": torch.zeros(2, 2)},
                  str(p))
    elif case == "resampler_alone":
        write_adapters(full, tmp / "c", "comfyui")
        p = next((tmp / "c").glob("*resampler*"))
    elif case == "comfy_layers_alone":
        write_adapters(full, tmp / "c", "comfyui")
        p = next((tmp / "c").glob("*ip_layers*"))
    elif case == "official_ip_alone":
        write_adapters(tiny_adapters(dit, "lite"), tmp / "o", "official")
        p = tmp / "o" / "ip_layers.safetensors"
    elif case == "ours_without_header":
        save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(p))
    elif case == "list_with_ours":
        full.save(tmp / "ours.safetensors")
        files = write_adapters(full, tmp / "c", "comfyui")
        p = f"{files[0]},{tmp / 'ours.safetensors'}"
    elif case == "folder":
        (tmp / "f").mkdir()
        (tmp / "f" / "notes.txt").write_text("hello")
        p = tmp / "f"
    elif case == "missing":
        p = tmp / "nowhere"
    return p


CASES = {  # case: (kind, words the description must contain)
    "ours": (FormatKind.OURS, "lynx-ext adapter file (full"),
    "official": (FormatKind.OFFICIAL, "official Lynx adapter folder"),
    "comfyui": (FormatKind.COMFYUI, "ComfyUI-WanVideoWrapper Lynx files"),
    "comfyui_list": (FormatKind.COMFYUI, "ComfyUI-WanVideoWrapper Lynx files"),
    "pickle": (FormatKind.PICKLE, "Python pickle"),
    "torch_zip": (FormatKind.TORCH_ARCHIVE, "torch.save file"),
    "torch_legacy": (FormatKind.PICKLE, "legacy torch.save file"),
    "lightning": (FormatKind.LIGHTNING, "PyTorch Lightning checkpoint"),
    "random": (FormatKind.UNKNOWN, "not a format lynx-ext knows"),
    "empty": (FormatKind.EMPTY, "empty file"),
    "truncated": (FormatKind.DAMAGED_SAFETENSORS, "truncated"),
    "truncated_header": (FormatKind.DAMAGED_SAFETENSORS, "truncated"),
    "unrelated": (FormatKind.OTHER_SAFETENSORS, "2 tensors that are not Lynx adapter weights (keys such as 'encoder"),
    "lora": (FormatKind.OTHER_SAFETENSORS, "a LoRA"),
    "wan_dit": (FormatKind.OTHER_SAFETENSORS, "Wan DiT (base model) weights"),
    "resampler_alone": (FormatKind.RESAMPLER, "Lynx Resampler file alone (output width 96"),
    "comfy_layers_alone": (FormatKind.COMFYUI_LAYERS, "full IP-adapter on 4 blocks"),
    "official_ip_alone": (FormatKind.OFFICIAL_LAYERS, "official ip_layers.safetensors of a lynx_lite/ folder"),
    "ours_without_header": (FormatKind.OTHER_SAFETENSORS, "without the lynx-ext header"),
    "list_with_ours": (FormatKind.FOLDER, "a list that mixes"),
    "folder": (FormatKind.FOLDER, "folder without Lynx adapter files (it holds notes.txt)"),
    "missing": (FormatKind.MISSING, "does not exist"),
}


PARTIAL = (FormatKind.RESAMPLER, FormatKind.OFFICIAL_LAYERS, FormatKind.COMFYUI_LAYERS, FormatKind.FOLDER)


@pytest.mark.parametrize("case", sorted(CASES))
def test_detects_each_format_by_content(case, tmp_path, dit, monkeypatch):
    source = _make(case, tmp_path, dit)
    kind, words = CASES[case]

    def forbidden(*a, **k):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    found = detect_format(source)
    assert found.kind is kind and words in found.description, found
    if kind in (FormatKind.OURS, FormatKind.OFFICIAL, FormatKind.COMFYUI):
        assert read_adapters(source).config.num_blocks == 4
    elif kind is FormatKind.MISSING:
        with pytest.raises(FileNotFoundError, match="not found"):
            read_adapters(source)
    else:
        with pytest.raises(LynxCheckpointError) as err:
            load_lynx_adapters(source, dit)
        message = str(err.value)
        partial = kind in PARTIAL
        assert str(found.path) in message and words in message
        assert ("not a complete set of Lynx adapter weights" if partial else "not Lynx adapter weights") in message
        assert "\n" not in message
    assert not (tmp_path / "unpickled").exists()


# ----------------------------------------------------------------------------------------------- ComfyUI
def test_comfyui_files_use_the_wrapper_key_layout(tmp_path, dit):
    full, lite = tiny_adapters(dit, "full"), tiny_adapters(dit, "lite")
    files = {p.name: p for p in write_adapters(full, tmp_path / "full", "comfyui")}
    assert sorted(files) == ["lynx_full_ip_layers_fp32.safetensors", "lynx_full_ref_layers_fp32.safetensors",
                             "lynx_full_resampler_fp32.safetensors"]
    ip = load_file(str(files["lynx_full_ip_layers_fp32.safetensors"]))
    ref = load_file(str(files["lynx_full_ref_layers_fp32.safetensors"]))
    res = load_file(str(files["lynx_full_resampler_fp32.safetensors"]))
    # The wrapper's loader detects full IP by block 0's registers and full Ref by block 0's to_k_ref.weight.
    assert sorted(ip) == sorted(f"blocks.{b}.cross_attn.ip_adapter.{n}" for b in range(4) for n in
                                ("registers", "to_k_ip.weight", "to_k_ip.bias", "to_v_ip.weight", "to_v_ip.bias"))
    assert ip["blocks.0.cross_attn.ip_adapter.registers"].shape == (1, 4, 96)
    assert torch.equal(ip["blocks.3.cross_attn.ip_adapter.to_v_ip.bias"], full.id_layers["3"].to_v_ip.bias)
    assert sorted(ref) == sorted(f"blocks.{b}.self_attn.ref_adapter.{n}.{w}" for b in range(4)
                                 for n in ("to_k_ref", "to_v_ref") for w in ("weight", "bias"))
    assert torch.equal(ref["blocks.2.self_attn.ref_adapter.to_k_ref.weight"], full.ref_layers["2"].to_k_ref.weight)
    assert sorted(res) == sorted(k[len("resampler."):] for k in full.state_dict() if k.startswith("resampler."))
    lite_files = write_adapters(lite, tmp_path / "lite", "comfyui", dtype=torch.float16)
    assert [p.name for p in lite_files] == ["lynx_lite_resampler_fp16.safetensors",
                                            "lynx_lite_ip_layers_fp16.safetensors"]
    ip = load_file(str(lite_files[1]))
    # Lite: blocks 0 and 2 (every second block, by DiT index), no biases, no registers.
    assert sorted(ip) == sorted(f"blocks.{b}.cross_attn.ip_adapter.to_{kv}_ip.weight" for b in (0, 2) for kv in "kv")
    assert ip["blocks.2.cross_attn.ip_adapter.to_k_ip.weight"].dtype == torch.float16


def _kijai_style_lite(dit, folder):
    """Lite files as kijai publishes them: no metadata, fp16 layers, fp32 resampler with dim_head 64."""
    res = ResamplerConfig(dim=64, depth=1, dim_head=64, heads=2, num_queries=4, embedding_dim=512, output_dim=64)
    config = LynxAdapterConfig.official("lite", dim=dit.dim, num_blocks=len(dit.blocks), resampler=res)
    torch.manual_seed(3)
    adapters = LynxAdapters(config, init="random")
    sd = adapters.state_dict()
    folder.mkdir()
    save_file({k[len("resampler."):]: v for k, v in sd.items() if k.startswith("resampler.")},
              str(folder / "lynx_lite_resampler_fp32.safetensors"))
    save_file({k.replace("id_layers.", "blocks.").replace(".to_", ".cross_attn.ip_adapter.to_", 1): v.half()
               for k, v in sd.items() if k.startswith("id_layers.")},
              str(folder / "Wan2_1-T2V-14B-Lynx_lite_ip_layers_fp16.safetensors"))
    (folder / "unrelated_base_model.safetensors").write_bytes(b"not even safetensors")
    return adapters


def test_reads_comfyui_files_without_our_metadata(tmp_path, dit):
    original = _kijai_style_lite(dit, tmp_path / "diffusion_models")
    loaded = load_lynx_adapters(tmp_path / "diffusion_models", dit, variant="lite")
    assert loaded.config == original.config
    sd = loaded.state_dict()
    assert sd["resampler.latents"].dtype == torch.float32 and sd["id_layers.2.to_k_ip.weight"].dtype == torch.float16
    for k, v in original.state_dict().items():
        assert torch.equal(sd[k], v.half() if k.startswith("id_layers") else v), k
    # Without a DiT the layout is read off the files: lite on blocks 0 and 2 of 4.
    assert read_adapters(tmp_path / "diffusion_models").config == original.config


def test_mixed_lite_ip_and_full_ref(tmp_path, dit):
    mixed = mixed_adapters(dit)
    files = write_adapters(mixed, tmp_path / "m", "comfyui")
    for f in files:  # as if the IP and Ref files came from different sources
        strip_metadata(f)
    found = detect_format(tmp_path / "m")
    assert found.kind is FormatKind.COMFYUI and len(found.files) == 3
    loaded = load_lynx_adapters(tmp_path / "m", dit, variant="lite")
    c = loaded.config
    assert (c.variant, c.id_blocks, c.id_bias, c.id_key_norm) == ("lite", [0, 2], False, "rms")
    assert c.ref_blocks == [0, 1, 2, 3]
    assert c.resampler.output_dim == 64
    with pytest.raises(LynxCheckpointError, match="lite-ID \\+ full-Ref .* but variant 'full'"):
        load_lynx_adapters(tmp_path / "m", dit, variant="full")
    # The same set survives the official layout and ours.
    back = read_adapters(write_adapters(read_adapters(tmp_path / "m"), tmp_path / "o", "official")[0].parent)
    write_adapters(back, tmp_path / "mixed.safetensors", "lynx-ext")
    final = read_adapters(tmp_path / "mixed.safetensors")
    sd = mixed.state_dict()
    assert final.config.ref_blocks == [0, 1, 2, 3] and all(torch.equal(final.state_dict()[k], v) for k, v in sd.items())


def test_comfyui_sets_are_paired_by_width_and_ambiguity_is_refused(tmp_path, dit):
    folder = tmp_path / "diffusion_models"
    lite = tiny_adapters(dit, "lite")
    full = tiny_adapters(dit, "full")
    write_adapters(lite, folder, "comfyui")
    write_adapters(full, tmp_path / "f", "comfyui")
    # A second resampler (the full one, output width 96) does not confuse the lite set (ID width 64).
    os.replace(next((tmp_path / "f").glob("*resampler*")), folder / "lynx_full_resampler_fp32.safetensors")
    assert read_adapters(folder).config.variant == "lite"
    os.replace(next((tmp_path / "f").glob("*ip_layers*")), folder / "lynx_full_ip_layers_fp32.safetensors")
    with pytest.raises(LynxCheckpointError, match="several ComfyUI Lynx layer files .*lynx_full_ip_layers_fp32"
                                                  ".*lynx_lite_ip_layers_fp32.*separated by commas"):
        read_adapters(folder)
    listed = f"{folder}/lynx_full_resampler_fp32.safetensors,{folder}/lynx_full_ip_layers_fp32.safetensors"
    with pytest.raises(LynxCheckpointError, match="written as one set with a Ref-layer file"):
        read_adapters(listed)  # our files say which set they belong to: the Ref file is missing from the list
    (folder / "lynx_lite_resampler_fp32.safetensors").unlink()
    (folder / "lynx_full_ip_layers_fp32.safetensors").unlink()
    with pytest.raises(LynxCheckpointError, match="no resampler whose output width is 64"):
        read_adapters(folder)


def test_wrong_model_size_names_the_comfyui_key(tmp_path, dit):
    small = LynxAdapterConfig.official("lite", dim=64, num_blocks=4,
                                       resampler=ResamplerConfig(dim=64, depth=1, heads=1, output_dim=64))
    write_adapters(LynxAdapters(small, init="random"), tmp_path / "c", "comfyui")
    with pytest.raises(LynxCheckpointError, match="'blocks.0.cross_attn.ip_adapter.to_k_ip.weight' has shape "
                                                  "\\[64, 64\\], expected \\[96, C\\]"):
        load_lynx_adapters(tmp_path / "c", dit)


def test_wrapper_compatibility_of_official_14b_layouts():
    assert wrapper_compatibility(LynxAdapterConfig.official("lite")) == []
    assert wrapper_compatibility(LynxAdapterConfig.official("full", num_registers=16)) == []
    problems = wrapper_compatibility(LynxAdapterConfig.official("full", num_registers=4))
    assert len(problems) == 1 and "16 registers (these: 4)" in problems[0]
    odd = dataclasses.replace(LynxAdapterConfig.official("lite"), id_blocks=list(range(1, 40, 2)))
    assert any("block 0" in p for p in wrapper_compatibility(odd))


# --------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("variant", ["full", "lite"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_round_trip_ours_comfyui_official_ours_is_bit_exact(variant, dtype, tmp_path, dit):
    original = tiny_adapters(dit, variant, seed=5)
    original.save(tmp_path / "a.safetensors", metadata={"stage": "stage1", "step": 7})
    start = read_adapters(tmp_path / "a.safetensors")
    write_adapters(start, tmp_path / "comfy", Layout.COMFYUI, dtype=dtype)
    write_adapters(read_adapters(tmp_path / "comfy"), tmp_path / "official", Layout.OFFICIAL)
    write_adapters(read_adapters(tmp_path / "official"), tmp_path / "b.safetensors", Layout.OURS)
    final = read_adapters(tmp_path / "b.safetensors")
    expected = original if dtype is None else original.to(dtype)
    assert_same(final, expected)
    assert final.metadata["stage"] == "stage1" and final.metadata["step"] == "7"


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_official_fixtures_survive_comfyui_and_back(variant, tmp_path, fixtures_dir):
    official = read_adapters(fixtures_dir / variant)  # files made by the official code: no metadata of ours
    c = official.config
    expected = ((2, [0, 1], [0, 1], 4, "shared") if variant == "full" else (4, [0, 2], [], 0, "rms"))
    assert (c.num_blocks, c.id_blocks, c.ref_blocks, c.num_registers, c.id_key_norm) == expected
    assert (c.resampler.heads, c.resampler.dim_head) == (4, 16)  # from resampler_config.json
    write_adapters(official, tmp_path / "comfy", "comfyui")
    write_adapters(read_adapters(tmp_path / "comfy"), tmp_path / f"lynx_{variant}", "official")
    again = read_adapters(tmp_path / f"lynx_{variant}")
    assert_same(again, official)
    for name in ("resampler.safetensors", "ip_layers.safetensors") + (("ref_layers.safetensors",) if variant == "full"
                                                                      else ()):
        ref, ours = load_file(str(fixtures_dir / variant / name)), load_file(str(tmp_path / f"lynx_{variant}" / name))
        assert ref.keys() == ours.keys() and all(torch.equal(ref[k], ours[k]) for k in ref), name


# ----------------------------------------------------------------------------------------- writing safely
def test_outputs_are_never_overwritten_silently(tmp_path, dit):
    full, lite = tiny_adapters(dit, "full"), tiny_adapters(dit, "lite")
    write_adapters(full, tmp_path / "o", "official")
    before = (tmp_path / "o" / "ip_layers.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="already holds"):
        write_adapters(lite, tmp_path / "o", "official")
    assert (tmp_path / "o" / "ip_layers.safetensors").read_bytes() == before
    write_adapters(lite, tmp_path / "o", "official", overwrite=True)
    # The full set's ref_layers.safetensors is gone: the folder is the lite set, not a mix of both.
    assert not (tmp_path / "o" / "ref_layers.safetensors").exists()
    assert_same(read_adapters(tmp_path / "o"), lite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no temporary folder left behind
    with pytest.raises(FileExistsError):
        write_adapters(full, tmp_path / "o" / "ip_layers.safetensors", "lynx-ext")


def test_a_cast_that_would_overflow_is_refused(tmp_path, dit):
    adapters = tiny_adapters(dit, "lite")
    with torch.no_grad():
        adapters.id_layers["0"].to_k_ip.weight[0, 0] = 1e6
    with pytest.raises(LynxCheckpointError, match="beyond the range of torch.float16"):
        write_adapters(adapters, tmp_path / "c", "comfyui", dtype=torch.float16)
    assert not (tmp_path / "c").exists()
    write_adapters(adapters, tmp_path / "c", "comfyui", dtype=torch.bfloat16)
