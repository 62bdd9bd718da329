"""Deviation of each fast mode from the exact path on the tiny model (CPU, float32): relative error of the final
latents (what the VAE decodes) and the DiT forwards the generation ran.

The tiny model is random, so these numbers show that each mode does what it says and how its error scales with
its knob; the identity each mode keeps on a trained model is the evaluation's to measure (docs/speed.md).

    python benchmarks/deviation_tiny.py --json benchmarks/results/cpu_deviation_tiny.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from lynx_ext.adapters.compute import ComputeOptions
    from lynx_ext.pipeline import install, installation
    from lynx_ext.pipeline.fast_modes import FastOptions
    from lynx_ext.tiny.adapters import tiny_adapters
    from lynx_ext.tiny.wan import build_tiny_wan, load_tiny_pipe

    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_tiny_pipe(build_tiny_wan(Path(tmp)))
    install(pipe, tiny_adapters(pipe.dit, "full"))
    inst = installation(pipe)
    host, calls, latents = inst.host_model_fn, [], {}

    def counted(*a, **k):
        calls.append(1)
        return host(*a, **k)

    inst.host_model_fn = counted
    decode = pipe.vae.decode

    def capture(hidden, *a, **k):
        latents["final"] = hidden[0] if isinstance(hidden, (list, tuple)) else hidden
        return decode(hidden, *a, **k)

    pipe.vae.decode = capture
    g = torch.Generator().manual_seed(7)
    emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=g), dim=-1)
    ref = torch.randn(1, 16, 1, 4, 4, generator=g)

    def run(fast):
        calls.clear()
        pipe(prompt="a woman smiling in a park", negative_prompt="blurred", height=64, width=64, num_frames=9,
             num_inference_steps=args.steps, seed=3, tiled=False, cfg_scale=5.0, cfg_scale_i=2.0,
             lynx_id_embeds=emb, lynx_ref_latents=ref, lynx_fast=fast, progress_bar_cmd=lambda x: x)
        return latents["final"].clone(), len(calls) - 2  # minus the two reference passes

    exact, n_exact = run(None)
    modes = {"fuse_projections": FastOptions(ComputeOptions(fuse_projections=True)),
             "fp8_compute": FastOptions(ComputeOptions(fp8=True))}
    for t in (0.5, 1.0, 2.0):  # the tiny random DiT has no host calibration: raw t_mod change, 0.4-0.7 a step
        modes[f"step_cache={t}"] = FastOptions(step_cache=t)
    for r in ("uncond", "identity", "both"):
        modes[f"guidance_reuse={r}"] = FastOptions(guidance_reuse=r)
    modes["fp8 + step_cache=1.0 + reuse both"] = FastOptions(ComputeOptions(fp8=True), step_cache=1.0,
                                                             guidance_reuse="both")
    out = {"device": "cpu", "torch": torch.__version__, "date": datetime.date.today().isoformat(),
           "steps": args.steps, "branches": 3, "exact_forwards": n_exact, "modes": {}}
    print(f"{'mode':<36} {'rel err':>9} {'forwards':>9} {'blocks run':>10}")
    for name, fast in modes.items():
        lat, n = run(fast)
        stats = pipe.lynx_fast_stats or {}
        skipped = sum(c["skipped"] for c in stats.get("step_cache", {}).values())
        err = float((lat.double() - exact.double()).norm() / exact.double().norm())
        out["modes"][name] = {"rel_error_latents": err, "forwards": n, "forwards_with_blocks": n - skipped,
                              "stats": stats}
        print(f"{name:<36} {err:9.2e} {n:9d} {n - skipped:10d}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
