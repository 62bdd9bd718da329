"""One whole Lynx video per speed mode at the Wan2.1-T2V-14B shape, every phase timed, in one process.

The 14B DiT (random bf16 weights), the real-architecture Wan VAE (random weights), official-shaped full adapters
and a 2-layer umT5 of the real width (4096) with the tiny word-level tokenizer (the 24-layer encoder only adds a
one-off prompt encoding); the face is given as an identity embedding and a 256-px crop, so face detection
(about 0.4-0.6 s on the CPU, docs/benchmarks.md) is not in the numbers. Each mode generates 81 x 480 x 832 through
``pipe(...)`` (UniPC): conditioning (prompt encodings, VAE sample of the crop, reference pass), denoising, VAE
decode (tiled) to frames. A one-step warm-up first pays the compilation and the first-call costs.

    python benchmarks/bench_14b_video.py --json $OUT/video.json --budget-s 200
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_14b_forward import add_shape_args, materialise_random, meta_dit, official_states, sync  # noqa: E402

MODES = {
    "4 steps, cfg 1, compiled + fp8": dict(steps=4, cfg=1.0, cfg_i=None, fp8=True),
    "4 steps, cfg 1, compiled (exact compute)": dict(steps=4, cfg=1.0, cfg_i=None, fp8=False),
    "8 steps, 3-branch guidance + reuse both, compiled + fp8": dict(steps=8, cfg=5.0, cfg_i=2.0, fp8=True,
                                                                     reuse="both"),
}


def build_pipe(args, dev, dt, work: Path):
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder
    from diffsynth.models.wan_video_vae import WanVideoVAE

    from lynx_ext.tiny.wan import DEFAULT_T5, build_tiny_wan, load_tiny_pipe

    pipe = load_tiny_pipe(build_tiny_wan(work / "tiny"), torch_dtype=dt, device=dev)
    pipe.dit = materialise_random(meta_dit(args), dev, dt)
    torch.manual_seed(0)
    with torch.device(dev):
        pipe.text_encoder = WanTextEncoder(vocab=DEFAULT_T5["vocab"], dim=4096, dim_attn=4096, dim_ffn=10240,
                                           num_heads=64, num_layers=2, num_buckets=32).to(dt).eval()
        vae = WanVideoVAE()
    for p in vae.model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    pipe.vae = vae.to(device=dev, dtype=dt).eval()
    return pipe


def main():
    ap = argparse.ArgumentParser()
    add_shape_args(ap)
    ap.add_argument("--budget-s", type=float, default=200.0)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    from PIL import Image

    from lynx_ext.adapters.compute import ComputeOptions
    from lynx_ext.adapters.formats import load_official_states
    from lynx_ext.inference.generator import StepTimer
    from lynx_ext.pipeline import install
    from lynx_ext.pipeline.fast_modes import FastOptions
    from lynx_ext.pipeline.speed import compile_dit

    t_start = time.perf_counter()
    dev, dt = args.device, torch.bfloat16
    info = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
            "date": datetime.date.today().isoformat(), "frames": args.frames, "height": args.height,
            "width": args.width, "modes": {}}

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(info, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        pipe = build_pipe(args, dev, dt, Path(tmp))
        states = official_states("full", args.dim, args.layers, 16, dev, dt)
        install(pipe, load_official_states(states, args.dim, args.layers, variant="full"))
        del states
        info["build_s"] = time.perf_counter() - t
        if not args.no_compile:
            compile_dit(pipe)
        g = torch.Generator().manual_seed(0)
        emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=g), dim=-1)
        crop = Image.fromarray((torch.rand(256, 256, 3, generator=g) * 255).to(torch.uint8).numpy())

        def generate(steps, cfg, cfg_i, fp8, reuse=None):
            fast = FastOptions(ComputeOptions(attention="auto", fuse_projections=False, fp8=fp8),
                               guidance_reuse=reuse)
            timer = StepTimer(show=False)
            sync()
            t1 = time.perf_counter()
            frames = pipe(prompt="a woman smiling at the camera in a park", negative_prompt="blurred", seed=42,
                          height=args.height, width=args.width, num_frames=args.frames, num_inference_steps=steps,
                          cfg_scale=cfg, cfg_scale_i=cfg_i, sampler="unipc", tiled=True, lynx_id_embeds=emb,
                          lynx_ref_image=crop, lynx_fast=fast, progress_bar_cmd=timer)
            sync()
            t2 = time.perf_counter()
            return {"frames": len(frames), "total_s": t2 - t1, "conditioning_s": timer.start - t1,
                    "denoising_s": timer.end - timer.start, "per_step_s": (timer.end - timer.start) / steps,
                    "decode_s": t2 - timer.end,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else 0.0}

        t = time.perf_counter()
        info["warmup"] = generate(1, 5.0, 2.0, True)
        info["warmup"]["wall_s"] = time.perf_counter() - t
        save()
        for name, mode in MODES.items():
            left = args.budget_s - (time.perf_counter() - t_start)
            need = mode["steps"] * (6 if mode["cfg"] > 1 else 3) + 15
            if dev == "cuda" and left < need:
                info["modes"][name] = {"skipped": f"budget ({left:.0f} s left)"}
                continue
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                info["modes"][name] = generate(mode["steps"], mode["cfg"], mode["cfg_i"], mode["fp8"],
                                               mode.get("reuse"))
            except Exception as exc:  # noqa: BLE001 - a failing mode is a result
                info["modes"][name] = {"error": f"{type(exc).__name__}: {exc}"[:600]}
            save()
            print(name, json.dumps(info["modes"][name]))
    info["total_s"] = time.perf_counter() - t_start
    save()
    print(f"\n{info['device']}, torch {info['torch']}, {info['date']}; {args.frames} x {args.height} x {args.width}")
    print(f"{'mode':<58} {'total':>7} {'cond':>6} {'denoise':>8} {'decode':>7} {'GiB':>6}")
    for name, r in info["modes"].items():
        if "total_s" in r:
            print(f"{name:<58} {r['total_s']:7.2f} {r['conditioning_s']:6.2f} {r['denoising_s']:8.2f} "
                  f"{r['decode_s']:7.2f} {r['peak_gib']:6.1f}")
        else:
            print(f"{name:<58} {r}")


if __name__ == "__main__":
    main()
