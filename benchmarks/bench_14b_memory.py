"""Memory budgets at the Wan2.1-T2V-14B shape: the full and lite adapters on a 24 GB / 16 GB budget, every figure a
ratio against the unconstrained run of the same process.

One process, random bf16 weights (dim 5120, 40 blocks), one sample of 81 frames x 480 x 832 (32,760 video tokens),
official-shaped adapters. In order:

1. the plain host forward and the full variant all on the device (forward, three-branch guided step, peak);
2. the same weights moved to the CPU under DiffSynth's VRAM management (``vram_limit``), the host's own
   per-layer onloading (one forward: the path `--block-streaming off` keeps);
3. block streaming (`lynx_ext.pipeline.block_streaming`) at each ``--limits`` GiB with bf16 storage, then with
   float8 storage (``--fp8``): forward, guided step, peak allocated and reserved, error against step 1 -- with
   the allocator capped at ``--card-gib`` (a 24 GB card: 22 GiB), so that a run that would not fit fails;
4. lite: the full adapters replaced by lite ones, streamed at ``--lite-limit`` GiB on a ``--lite-card-gib`` card.

    python benchmarks/bench_14b_memory.py --json $OUT/memory.json --limits 20 0 --lite-limit 13
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_14b_forward import RandomRun, add_shape_args  # noqa: E402
from bench_14b_speed import Bench  # noqa: E402


def host_vram_management(pipe, dtype: torch.dtype, limit: float) -> None:
    """What DiffSynth's loader does for a `ModelConfig` with VRAM keywords: the DiT and the adapters wrapped by the
    host's VRAM layers, stored on the CPU in ``dtype``, computed on the device in bf16."""
    import importlib

    from diffsynth.configs import VRAM_MANAGEMENT_MODULE_MAPS
    from diffsynth.core.vram.layers import enable_vram_management

    from lynx_ext.pipeline.vram import enable_adapter_vram_management

    def cls(path):
        module, name = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    module_map = {cls(k): cls(v) for k, v in VRAM_MANAGEMENT_MODULE_MAPS["diffsynth.models.wan_video_dit.WanModel"].items()}
    config = dict(offload_device="cpu", offload_dtype=dtype, onload_device="cpu", onload_dtype=dtype,
                  preparing_device=pipe.device, preparing_dtype=pipe.torch_dtype, computation_device=pipe.device,
                  computation_dtype=pipe.torch_dtype)
    pipe.dit.to("cpu")
    pipe.lynx.to("cpu")
    enable_vram_management(pipe.dit, module_map, vram_config=config, vram_limit=limit)
    enable_adapter_vram_management(pipe, offload_dtype=dtype, vram_limit=limit)
    offload_all(pipe)


def offload_all(pipe) -> None:
    """Every host-managed layer back to its CPU storage (the state a new generation starts from)."""
    for model in (pipe.dit, pipe.lynx):
        for m in model.modules():
            if hasattr(m, "offload") and hasattr(m, "state"):
                m.offload()
                m.onload()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def set_storage_dtype(pipe, dtype: torch.dtype) -> None:
    for model in (pipe.dit, pipe.lynx):
        for m in model.modules():
            if hasattr(m, "offload_dtype") and hasattr(m, "state"):
                m.offload_dtype = m.onload_dtype = dtype
                m.state = 1
                m.offload()
    offload_all(pipe)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_args(ap)
    ap.add_argument("--registers", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--limits", type=float, nargs="+", default=[20.0, 0.0], help="GiB budgets for the full variant")
    ap.add_argument("--lite-limit", type=float, default=13.0)
    ap.add_argument("--card-gib", type=float, default=22.0,
                    help="the streamed full runs may reserve at most this much (torch's per-process memory fraction): "
                         "a 24 GB card")
    ap.add_argument("--lite-card-gib", type=float, default=14.9, help="the same for lite: a 16 GB card")
    ap.add_argument("--skip-host", action="store_true", help="leave out the host's own onloading (slow)")
    args = ap.parse_args()
    from lynx_ext.pipeline import uninstall
    from lynx_ext.pipeline.block_streaming import block_streamer, disable_block_streaming, enable_block_streaming
    from lynx_ext.pipeline.vram import enable_adapter_vram_management

    b = Bench(args)
    dev, dt = args.device, torch.bfloat16
    cuda = torch.cuda.is_available()
    if not cuda:  # a CPU smoke run: the host's VRAM layers ask torch.cpu for memory figures
        from lynx_ext.compat import ensure_cpu_empty_cache

        ensure_cpu_empty_cache()
    b.info = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
              "cuda": torch.version.cuda, "date": datetime.date.today().isoformat(), "frames": args.frames, "height": args.height,
              "width": args.width, "dim": args.dim, "layers": args.layers, "registers": args.registers}
    run = RandomRun(args, dev, dt)
    pipe = run.pipe
    torch.set_grad_enabled(False)
    plain_out = b.row("plain host forward, all on the device", run.plain, need=20)
    b.plain = b.rows[0]["seconds"]
    b.rows[0]["ratio_to_plain"] = 1.0

    def setup(variant):
        fwd = run.install(variant, args.registers)
        return lambda guided=False: fwd(guided=guided)

    def reserved_row(name, fn, **kw):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out = b.row(name, fn, **kw)
        if out is not None:
            if cuda:
                b.rows[-1]["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
            streamer = block_streamer(pipe)
            if streamer is not None:
                b.rows[-1]["streaming"] = streamer.summary()
            b.save()
        return out

    # 1. all on the device
    fwd = setup("full")
    exact = reserved_row("full: forward, all on the device", fwd, ref=plain_out)
    exact_step = reserved_row("full: guided step, all on the device", lambda: fwd(True), forwards=3, need=15)
    b.info["unconstrained_step_s"] = b.rows[-1].get("seconds")

    # 2. the host's own VRAM management
    t = time.perf_counter()
    host_vram_management(pipe, dt, args.limits[0])
    b.info["move_to_cpu_s"] = time.perf_counter() - t
    if not args.skip_host:
        reserved_row(f"full: forward, host onloading, vram_limit {args.limits[0]:g}", fwd, ref=exact, need=60)
        offload_all(pipe)

    def card(gib):
        """From here on the allocator may reserve at most ``gib`` GiB, as on a card of that size."""
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction(gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
            b.info.setdefault("card_gib", {})[len(b.rows)] = gib

    # 3. block streaming, bf16 then fp8 storage
    card(args.card_gib)
    for storage in (dt, torch.float8_e4m3fn):
        tag = "fp8" if storage != dt else "bf16"
        if storage != dt:
            disable_block_streaming(pipe)
            t = time.perf_counter()
            set_storage_dtype(pipe, storage)
            b.info["fp8_conversion_s"] = time.perf_counter() - t
        for limit in args.limits:
            offload_all(pipe)
            t = time.perf_counter()
            enable_block_streaming(pipe, vram_limit=limit)
            b.info[f"streaming_setup_{tag}_s"] = time.perf_counter() - t
            reserved_row(f"full: forward, streamed, {tag} storage, limit {limit:g}", fwd, ref=exact, need=20)
            reserved_row(f"full: guided step, streamed, {tag} storage, limit {limit:g}", lambda: fwd(True),
                         ref=exact_step, forwards=3, need=30)
            if b.rows[-1].get("seconds") and b.info.get("unconstrained_step_s"):
                b.rows[-1]["ratio_to_unconstrained_step"] = b.rows[-1]["seconds"] / b.info["unconstrained_step_s"]
                b.save()

    # 4. lite
    if b.left() > 60:
        disable_block_streaming(pipe)
        uninstall(pipe)
        fwd = setup("lite")
        pipe.lynx.to("cpu")
        enable_adapter_vram_management(pipe, offload_dtype=torch.float8_e4m3fn, vram_limit=args.lite_limit)
        offload_all(pipe)
        card(args.lite_card_gib)
        enable_block_streaming(pipe, vram_limit=args.lite_limit)
        reserved_row(f"lite: forward, streamed, fp8 storage, limit {args.lite_limit:g}", fwd, need=20)
        reserved_row(f"lite: guided step (2 forwards), streamed, fp8, limit {args.lite_limit:g}", lambda: fwd(True),
                     forwards=2, need=30)

    print(json.dumps(b.info, indent=1))
    b.save()


if __name__ == "__main__":
    main()
