"""Block streaming (`lynx_ext.pipeline.block_streaming`): the streamed generation equals the host-managed one bit for
bit, never takes the host's per-call copies of the blocks, keeps at most two streamed units on the device and
frees each one's copy after its block, keeps the planned units resident across forwards, never computes with a
prefetched copy of swapped-out adapters, and hands every weight back to its CPU storage between blocks.

On the CPU the "device copy" of a unit is recognised by its dtype: stored in float8, computed in float32."""
from __future__ import annotations

import pytest
import torch
from conftest import GEN
from test_wiring_vram import files, generate, vram_events  # noqa: F401  (fixtures)

from lynx_ext.pipeline.block_streaming import (GIB, BlockStreamer, block_streamer, block_units, disable_block_streaming,
                                               enable_block_streaming, plan_residency)


def test_plan_residency_spreads_the_streamed_units():
    assert plan_residency([10] * 8, 80) == list(range(8))
    assert plan_residency([10] * 8, 1e9) == list(range(8))
    assert plan_residency([10] * 8, 9) == []
    assert plan_residency([10] * 8, -5) == []
    keep = plan_residency([10] * 8, 40)  # 4 fit; the 4 streamed ones alternate with them
    assert keep == [0, 2, 4, 6]
    keep = plan_residency([10] * 10, 70)
    assert len(keep) == 7 and [i for i in range(10) if i not in keep] == [1, 5, 8]
    assert plan_residency([10, 30, 10], 35) == [1]  # counted by the largest unit
    assert plan_residency([], 10) == []


def test_plan_counts_activations_and_three_units_in_flight():
    blocks = [torch.nn.Linear(16, 16) for _ in range(6)]  # 16*16 + 16 floats = 1088 bytes each
    streamer = BlockStreamer([[b] for b in blocks], "cpu", torch.float32, vram_limit=0, pin=False,
                             activation_tensors=2)
    unit = 1088
    tokens, dim = 10, 16  # 2 activation tensors of 10 x 16 floats = 1280 bytes
    for fit in (0, 1, 3, 6):  # three units in flight are set aside
        streamer.vram_limit = (1280 + 3 * unit + fit * unit + 5) / GIB
        assert len(streamer.plan(tokens, dim)) == fit
    streamer.vram_limit = (1280 + 3 * unit - 1) / GIB
    assert streamer.plan(tokens, dim) == []


def test_one_buffer_per_unit_keeps_every_value():
    from lynx_ext.pipeline.block_streaming import _pin_together, _Slot

    block = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.LayerNorm(3))
    block.register_buffer("steps", torch.arange(7))
    block[0].weight.data = block[0].weight.data.to(torch.float8_e4m3fn)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    slots = [_Slot(m, n, True, p.detach(), p.dtype) for m in block.modules() for n, p in m._parameters.items()]
    slots.append(_Slot(block, "steps", False, block.steps, block.steps.dtype))
    _pin_together(slots, pinned=torch.cuda.is_available())
    for slot in slots:
        slot.point_at(slot.storage)
    after = block.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k].float(), v.float()) for k, v in before.items())
    bases = {s.storage.untyped_storage().data_ptr() for s in slots}
    assert len(bases) == 1, "the unit's tensors are not views of one buffer"
    ptrs = sorted(s.storage.data_ptr() for s in slots)
    assert all(p % 64 == 0 for p in ptrs)


def streamed_generate(files, limit, probe=None, pipe_hook=None, streaming=True):
    """A full-variant generation with fp8 storage and block streaming on; ``probe(pipe, block)`` runs inside every
    block's forward (after the streamer put the block's unit on the device)."""
    from lynx_ext.inference import LynxGenerator
    from lynx_ext.tiny.wan import register_tiny_wan
    from wiring_probes import face_image

    register_tiny_wan(files["model_paths"][0].rsplit("/", 1)[0])
    gen = LynxGenerator.from_pretrained(variant="full", embedder="insightface", device="cpu", dtype="fp32",
                                        vram_limit=limit, fp8=True, block_streaming=streaming, **files)
    handles = []
    if probe is not None:
        for i, block in enumerate(gen.pipe.dit.blocks):
            handles.append(block.register_forward_pre_hook(lambda m, a, i=i: probe(gen.pipe, i)))
    if pipe_hook is not None:
        pipe_hook(gen.pipe)
    emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)
    out = gen.pipe(**GEN, lynx_id_embeds=emb, lynx_ref_image=face_image(), cfg_scale=5.0, cfg_scale_i=2.0)
    for h in handles:
        h.remove()
    return out.float().cpu(), gen


def on_device(unit: list[torch.nn.Module]) -> bool:
    """Whether a unit's weights are its device copy (float32 here) rather than its float8 storage."""
    dtypes = {s.weight.dtype for m in unit for s in m.modules() if isinstance(s, torch.nn.Linear)}
    assert len(dtypes) == 1, dtypes
    return dtypes == {torch.float32}


def test_streamed_generation_equals_the_host_managed_one(files, vram_events):  # noqa: F811
    host, _ = generate(files, "cpu", vram_limit=0.0, fp8=True)
    host_copies = vram_events["over_limit"].copy()
    assert "AutoWrappedNonRecurseModule" in host_copies  # the host path did run over its limit
    vram_events["over_limit"].clear()
    seen = []

    def probe(pipe, i):
        units = block_units(pipe)
        assert on_device(units[i]), f"block {i} ran on its stored float8 weights"
        assert len(units[i]) == 3  # the block, its ID layer, its Ref layer
        seen.append(sum(on_device(u) for u in units))

    streamed, gen = streamed_generate(files, 0.0, probe)
    assert torch.equal(streamed, host)
    assert "AutoWrappedNonRecurseModule" not in vram_events["over_limit"], "the host still onloaded the blocks"
    streamer = block_streamer(gen.pipe)
    assert streamer.resident_plan == [] and streamer.copies > 0
    assert seen and max(seen) <= 2, "more than two streamed units were on the device at once"
    for unit in block_units(gen.pipe):  # between calls every weight is its float8 storage again
        assert not on_device(unit)
    assert all(getattr(m, "state", 1) != 2 for u in block_units(gen.pipe) for mod in u for m in mod.modules())


def test_resident_units_stay_between_forwards(files):  # noqa: F811
    counts = []

    def probe(pipe, i):
        counts.append((i, block_streamer(pipe).copies))

    out, gen = streamed_generate(files, 1e3, probe)  # everything fits: each unit is copied once
    streamer = block_streamer(gen.pipe)
    n = len(gen.pipe.dit.blocks)
    assert streamer.resident_plan == list(range(n))
    assert streamer.copies == n, "resident units were copied again"
    assert sorted(streamer.cache) == list(range(n))
    assert len(counts) > 3 * n  # several forwards ran


def test_disable_hands_back_to_the_host(files, vram_events):  # noqa: F811
    host, _ = generate(files, "cpu", vram_limit=0.0, fp8=True)
    keys = None

    def capture(pipe):
        nonlocal keys
        keys = {k: (v.dtype, tuple(v.shape)) for k, v in pipe.dit.state_dict().items()}
        assert disable_block_streaming(pipe) and block_streamer(pipe) is None
        assert not disable_block_streaming(pipe)

    vram_events["over_limit"].clear()
    out, gen = streamed_generate(files, 0.0, pipe_hook=capture)
    assert torch.equal(out, host)
    assert "AutoWrappedNonRecurseModule" in vram_events["over_limit"]  # the host's own path again
    assert {k: (v.dtype, tuple(v.shape)) for k, v in gen.pipe.dit.state_dict().items()} == keys
    streamer = enable_block_streaming(gen.pipe, vram_limit=0.0, pin=False)
    assert block_streamer(gen.pipe) is streamer


def run(pipe, lynx=True):
    from wiring_probes import face_image

    if not lynx:
        return pipe(**GEN).float().cpu()
    emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)
    return pipe(**GEN, lynx_id_embeds=emb, lynx_ref_image=face_image(), cfg_scale=5.0, cfg_scale_i=2.0).float().cpu()


def test_swapped_and_removed_adapters_follow_their_blocks(files):  # noqa: F811
    """`replace_adapters` / `uninstall` on a streaming pipeline: the next forward streams the new adapter layers with
    their blocks (or the blocks alone), bit-identical to the same change on the host's own VRAM path."""
    from lynx_ext.pipeline import replace_adapters, uninstall
    from lynx_ext.tiny.adapters import tiny_adapters

    before, gen = streamed_generate(files, 0.0)
    _, host = streamed_generate(files, 0.0, streaming=False)
    assert block_streamer(host.pipe) is None
    for g in (gen, host):
        replace_adapters(g.pipe, tiny_adapters(g.pipe.dit, "full", seed=5))
    after = run(gen.pipe)
    assert torch.equal(after, run(host.pipe)) and not torch.equal(after, before)
    streamer = block_streamer(gen.pipe)
    for i, unit in enumerate(streamer.units):
        assert unit.modules[1:] == [gen.pipe.lynx.id_layers[str(i)], gen.pipe.lynx.ref_layers[str(i)]]
        assert unit.slots and all(  # the new layers rest in the unit's CPU storage too
            (s.owner._parameters.get(s.name) if s.is_param else s.owner._buffers[s.name]).data_ptr()
            == s.storage.data_ptr() for s in unit.slots)
        assert any(s.owner is gen.pipe.lynx.id_layers[str(i)].to_k_ip for s in unit.slots)
    for g in (gen, host):
        uninstall(g.pipe)
    plain = run(gen.pipe, lynx=False)
    assert torch.equal(plain, run(host.pipe, lynx=False))
    assert all(len(unit.modules) == 1 for unit in streamer.units)


def test_options_that_do_not_combine():
    from lynx_ext.errors import LynxValueError
    from lynx_ext.validation.generator_options import check_generator_options

    def check(**kw):
        return check_generator_options("lite", "wan2.1-t2v-14b", "x.safetensors", **kw)

    with pytest.raises(LynxValueError, match="block_streaming.*every weight is on the device"):
        check(block_streaming=True)
    with pytest.raises(LynxValueError, match="compile.*--vram-limit"):
        check(compile=True, vram_limit=20.0)


def test_streamed_units_leave_the_device_after_their_block(files):  # noqa: F811
    """At a zero limit every streamed unit's device copy is freed once its block has run: the bytes of device copies
    still alive after each block (tracked by their storages, not by the streamer's own bookkeeping) stay at 0, over
    the reference passes and every guidance branch of every step."""
    import weakref

    copies: list[tuple[weakref.ref, int]] = []  # (storage of a device copy, its bytes)
    alive_after_block: list[int] = []
    current: dict[int, list] = {}

    def tensors(pipe, i):
        return [t for m in block_units(pipe)[i] for t in (*m.parameters(), *m.buffers())]

    def hooks(pipe):
        def before(i):
            def hook(module, args):  # runs after the streamer's hook: the unit's device copy is in place
                current[i] = [(t, weakref.ref(t.untyped_storage()), t.untyped_storage().nbytes(), t.data_ptr())
                              for t in tensors(pipe, i)]
            return hook

        def after(i):
            def hook(module, args, output):  # after the streamer's hook: the weights point at their storage again
                for t, storage, nbytes, ptr in current.pop(i):
                    if t.data_ptr() != ptr:  # it computed on a copy
                        copies.append((storage, nbytes))
                alive_after_block.append(sum(n for s, n in copies if s() is not None))
            return hook

        for i, block in enumerate(pipe.dit.blocks):
            block.register_forward_pre_hook(before(i))
            block.register_forward_hook(after(i))

    _, gen = streamed_generate(files, 0.0, pipe_hook=hooks)
    n = len(gen.pipe.dit.blocks)
    assert len(alive_after_block) > 3 * n and copies  # several forwards ran, each block on a device copy
    unit_bytes = max(b for _, b in copies)
    assert unit_bytes > 0 and max(alive_after_block) == 0, (
        f"device copies left behind after a block: up to {max(alive_after_block)} bytes")


def test_a_prefetched_block_is_not_used_after_an_adapter_swap(files):  # noqa: F811
    """The end of a forward prefetches block 0 with the old adapter layers. After `replace_adapters` the first
    forward is one where the new adapters act (reference features given, no guidance: no reference pass comes
    first), and it must use the new layers, as the host's own path does."""
    from lynx_ext.pipeline import replace_adapters
    from lynx_ext.tiny.adapters import tiny_adapters

    _, gen = streamed_generate(files, 0.0)
    _, host = streamed_generate(files, 0.0, streaming=False)
    dim, n = gen.pipe.dit.dim, len(gen.pipe.dit.blocks)
    g = torch.Generator().manual_seed(11)
    features = {b: torch.randn(1, 16, dim, generator=g) for b in range(n)}
    emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=g), dim=-1)

    def first_forward_uses_adapters(pipe):
        return pipe(**{**GEN, "num_inference_steps": 1}, lynx_id_embeds=emb, lynx_ref_features=features,
                    cfg_scale=1.0).float().cpu()

    for gn in (gen, host):
        replace_adapters(gn.pipe, tiny_adapters(gn.pipe.dit, "full", seed=5))
    swapped = first_forward_uses_adapters(gen.pipe)
    assert torch.equal(swapped, first_forward_uses_adapters(host.pipe))
    for gn in (gen, host):
        replace_adapters(gn.pipe, tiny_adapters(gn.pipe.dit, "full", seed=9))
    again = first_forward_uses_adapters(gen.pipe)
    assert torch.equal(again, first_forward_uses_adapters(host.pipe)) and not torch.equal(again, swapped)
