"""Speed options at the Wan2.1-T2V-14B shape, every figure a ratio against the plain host forward of the same process.

One process, random bf16 weights (dim 5120, 40 blocks), one sample of 81 frames x 480 x 832 (32,760 video tokens)
and 512 text tokens, official-shaped Lynx adapters (full: 16 register tokens) through the official-format loader.
Measured, in order of value (each section is skipped, and says so, when ``--budget-s`` would be exceeded; each
configuration that fails records its error and the run goes on):

1. the plain DiffSynth forward (nothing installed), also under each SDPA backend;
2. full: our forward with both branches and the three-branch guided step, exact path;
3. attention kernels, fused projections, float8 compute: forward (and the best ones' guided step);
4. step cache and guidance reuse: the forwards a 50-step UniPC schedule runs under each rule (from the DiT's own
   timestep modulation, random here) and the cost of a skipped forward, giving the derived time per video;
5. regional ``torch.compile`` (compile time, forward, step; with and without float8);
6. lite: forward and two-branch step (compiled when section 5 ran);
7. SageAttention (8-bit) when ``--sage-path`` holds the package (on the last variant installed).

Each row: median seconds, ratio to the plain host forward (steps: to 3 or 2 plain forwards), relative error of
the output against our exact forward, peak CUDA memory. Prints a table, writes JSON.

    python benchmarks/bench_14b_speed.py --json $OUT/speed.json --budget-s 480
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_14b_forward import RandomRun, add_shape_args, sync  # noqa: E402


class Bench:
    def __init__(self, args):
        self.args, self.t0 = args, time.perf_counter()
        self.rows: list[dict] = []
        self.info: dict = {}
        self.plain = None

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def save(self):
        if self.args.json:
            Path(self.args.json).write_text(json.dumps({**self.info, "rows": self.rows}, indent=2))

    def time(self, fn, repeat: int, warmup: int = 1) -> tuple[float, torch.Tensor]:
        out = None
        for _ in range(warmup):
            out = fn()
        sync()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            out = fn()
            sync()
            times.append(time.perf_counter() - t)
        times.sort()
        return times[len(times) // 2], out

    def row(self, name: str, fn, *, forwards: int = 1, ref=None, repeat=None, warmup: int = 1, need: float = 10.0,
            note: str = ""):
        """Time ``fn`` (``forwards`` DiT forwards' worth of work) and record it; never raises."""
        if self.left() < need:
            self.rows.append({"name": name, "skipped": f"budget ({self.left():.0f} s left, {need:.0f} s needed)"})
            print(f"{name:<44} skipped (budget)")
            return None
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        try:
            seconds, out = self.time(fn, self.args.repeat if repeat is None else repeat, warmup)
        except Exception as exc:  # noqa: BLE001 - a failing configuration is a result, not the end of the run
            self.rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:600]})
            traceback.print_exc()
            print(f"{name:<44} ERROR {type(exc).__name__}: {str(exc)[:200]}")
            self.save()
            return None
        r = {"name": name, "seconds": seconds, "forwards": forwards, "note": note}
        if self.plain:
            r["ratio_to_plain"] = seconds / (forwards * self.plain)
        if ref is not None and out is not None:
            r["rel_error"] = float((out.double() - ref.double()).norm() / ref.double().norm())
        if torch.cuda.is_available():
            r["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        r["finite"] = bool(torch.isfinite(out).all()) if out is not None else None
        self.rows.append(r)
        print(f"{name:<44} {seconds:8.3f} s  x{r.get('ratio_to_plain', float('nan')):.3f}  "
              f"err {r.get('rel_error', float('nan')):.2e}  {r.get('peak_gib', 0):.1f} GiB")
        self.save()
        return out


def schedule_forwards(dit, steps: int, shift: float, rule_threshold, warmup: int, reuse, branches: int, dev, dt):
    """Forwards one generation of ``steps`` UniPC steps runs under a step-cache threshold / guidance reuse."""
    from diffsynth.models.wan_video_dit import sinusoidal_embedding_1d

    from lynx_ext.pipeline.fast_modes import StepCacheRule, calibration
    from lynx_ext.pipeline.samplers import UniPCFlowScheduler

    sched = UniPCFlowScheduler()
    sched.set_timesteps(steps, shift=shift)
    rule = None if rule_threshold is None else StepCacheRule(rule_threshold, warmup, calibration(dit))
    total = 0
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            ts = torch.tensor([float(t)], device=dev, dtype=dt)
            t_mod = dit.time_projection(dit.time_embedding(sinusoidal_embedding_1d(dit.freq_dim, ts))).unflatten(
                1, (6, dit.dim))
            compute = True
            if rule is not None:
                rule.begin_step(i, steps)
                compute = rule.compute_now(t_mod)
            n = branches
            if reuse is not None and i % 2 == 1 and i > 0:
                n -= {"uncond": 1, "identity": 1, "both": branches - 1}[reuse]
            total += n if compute else 0
    return total


def main():
    ap = argparse.ArgumentParser()
    add_shape_args(ap)
    ap.add_argument("--registers", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--sage-path", default=None, help="folder holding the sageattention package (added to sys.path "
                    "after DiffSynth is imported, so the host's own attention choice stays unchanged)")
    ap.add_argument("--attention", default="cudnn", help="the attention kernel of the combined configurations")
    ap.add_argument("--skip", nargs="*", default=[],
                    help="sections to leave out: backends fast lite compile cache sage")
    args = ap.parse_args()
    from lynx_ext.adapters.compute import _FP8_WEIGHTS, ComputeOptions, compute_options
    from lynx_ext.pipeline import uninstall
    from lynx_ext.pipeline.fast_modes import FastOptions

    b = Bench(args)
    A = args.attention
    dev, dt = args.device, torch.bfloat16
    b.info = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
              "cuda": torch.version.cuda, "date": datetime.date.today().isoformat(), "frames": args.frames,
              "height": args.height, "width": args.width, "dim": args.dim, "layers": args.layers,
              "registers": args.registers, "repeat": args.repeat}
    run = RandomRun(args, dev, dt)
    dit, pipe, latents, ctx, ts = run.dit, run.pipe, run.latents, run.ctx, run.ts
    host = pipe.model_fn
    b.info["video_tokens"] = run.video_tokens
    torch.set_grad_enabled(False)

    def plain(attention="auto"):
        with compute_options(ComputeOptions(attention=attention)):
            return host(dit=dit, latents=latents, timestep=ts, context=ctx)

    plain_out = b.row("plain host forward", plain, need=20)
    b.plain = b.rows[0]["seconds"]
    b.rows[0]["ratio_to_plain"] = 1.0
    b.info["plain_forward_s"] = b.plain
    if "backends" not in args.skip:
        for att in ("cudnn", "flash") if dev == "cuda" else ("flash",):
            b.row(f"plain host forward, attention={att}", lambda att=att: plain(att), ref=plain_out)

    def setup(variant):
        return run.install(variant, args.registers)

    def opts(attention="auto", fuse=False, fp8=False, **kw):
        return FastOptions(ComputeOptions(attention=attention, fuse_projections=fuse, fp8=fp8), **kw)

    # ---------------------------------------------------------------- full, exact and the exact-path options
    fwd = setup("full")
    exact = b.row("full: forward, exact", fwd, ref=plain_out, note="rel_error vs plain = the Lynx branches' effect")
    b.row("full: guided step (3 forwards), exact", lambda: fwd(guided=True), forwards=3, repeat=1, warmup=0, need=15)

    def bare():  # our forward with Lynx installed but no identity / reference inputs: the branches are skipped
        return pipe.model_fn(dit=dit, lynx=pipe.lynx, latents=latents, timestep=ts, context=ctx)

    b.row("full: forward, installed, no Lynx inputs", bare, ref=plain_out, note="the branches' cost = exact / this")
    if "backends" not in args.skip:
        for att in ("cudnn", "flash") if dev == "cuda" else ("flash",):
            b.row(f"full: forward, attention={att}", lambda att=att: fwd(opts(att)), ref=exact)
    if "fast" not in args.skip:
        b.row("full: forward, fuse_projections", lambda: fwd(opts(fuse=True)), ref=exact)
        b.row(f"full: forward, {A} + fuse", lambda: fwd(opts(A, True)), ref=exact)
        b.row(f"full: guided step, {A} + fuse", lambda: fwd(opts(A, True), True), forwards=3, repeat=1,
              warmup=0, need=15)
        b.row("full: forward, fp8 compute", lambda: fwd(opts(fp8=True)), ref=exact, need=20,
              note="float8 weight copies held: +1 byte per linear weight")
        b.row(f"full: forward, {A} + fuse + fp8", lambda: fwd(opts(A, True, True)), ref=exact)
        b.row(f"full: guided step, {A} + fuse + fp8", lambda: fwd(opts(A, True, True), True), forwards=3,
              repeat=1, warmup=0, need=15)
        _FP8_WEIGHTS.clear()

    # ---------------------------------------------------------------- step cache / guidance reuse (derived)
    if "cache" not in args.skip and b.left() > 30:
        from lynx_ext.pipeline.fast_modes import BranchStepCache, StepCacheRule

        cache = {}
        for threshold in (None, 0.05, 0.1, 0.2, 0.3):
            for reuse in (None, "uncond", "both"):
                n = schedule_forwards(dit, 50, 3.0, threshold, 1, reuse, 3, dev, dt)
                cache[f"threshold={threshold},reuse={reuse}"] = {"forwards_per_video": n, "of": 150}
        b.info["schedule_50_steps_unipc_shift3"] = cache
        rule = StepCacheRule(1e9, 0)
        rule.begin_step(1, 10)
        rule.previous = torch.zeros(1)
        rule.decisions[1] = False
        skip_cache = BranchStepCache(rule)
        skip_cache.residual = torch.zeros(1, b.info["video_tokens"], args.dim, device=dev, dtype=dt)
        skip_cache.residual_active = skip_cache.active = True
        b.row("skipped forward (step cache hit)", lambda: host(dit=dit, latents=latents, timestep=ts, context=ctx,
                                                                tea_cache=skip_cache), need=5)
        print(json.dumps(cache, indent=1))

    # ---------------------------------------------------------------- regional compile
    if "compile" not in args.skip and b.left() > 120:
        from lynx_ext.pipeline.speed import compile_dit

        t = time.perf_counter()
        try:
            compile_dit(pipe)
            fwd(opts(A, True))
            sync()
            b.info["compile_first_forward_s"] = time.perf_counter() - t
            b.row(f"compiled: forward, {A} + fuse", lambda: fwd(opts(A, True)), ref=exact, warmup=0)
            b.row(f"compiled: guided step, {A} + fuse", lambda: fwd(opts(A, True), True), forwards=3,
                  repeat=1, warmup=0, need=15)
            b.row("compiled: forward, auto attention", lambda: fwd(), ref=exact)
            b.row("compiled: forward, no Lynx inputs", bare, ref=plain_out, note="the branches' cost, compiled")
            t = time.perf_counter()
            fwd(opts(A, True, True))
            sync()
            b.info["compile_fp8_first_forward_s"] = time.perf_counter() - t
            b.row(f"compiled: forward, {A} + fuse + fp8", lambda: fwd(opts(A, True, True)), ref=exact,
                  warmup=0)
            b.row(f"compiled: guided step, {A} + fuse + fp8", lambda: fwd(opts(A, True, True), True),
                  forwards=3, repeat=1, warmup=0, need=15)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            b.info["compile_error"] = f"{type(exc).__name__}: {exc}"[:600]
        from torch._dynamo.utils import counters

        b.info["dynamo_unique_graphs"] = int(counters["stats"]["unique_graphs"])
        _FP8_WEIGHTS.clear()

    # ---------------------------------------------------------------- lite (compiled if section 5 ran)
    if "lite" not in args.skip and b.left() > 60:
        uninstall(pipe)
        lite = setup("lite")
        name = "lite"
        if b.info.get("compile_first_forward_s"):
            from lynx_ext.pipeline.speed import compile_dit

            compile_dit(pipe)
            name = "lite compiled"
        lite_exact = b.row(f"{name}: forward", lite, ref=plain_out)
        b.row(f"{name}: guided step (2 forwards)", lambda: lite(guided=True), forwards=2, repeat=1, warmup=0)
        b.row(f"{name}: forward, {A} + fuse", lambda: lite(opts(A, True)), ref=lite_exact)
        b.row(f"{name}: guided step, {A} + fuse", lambda: lite(opts(A, True), True), forwards=2, repeat=1,
              warmup=0)
        b.row(f"{name}: forward, {A} + fuse + fp8", lambda: lite(opts(A, True, True)), ref=lite_exact)
        _FP8_WEIGHTS.clear()
        fwd, exact = lite, lite_exact

    # ---------------------------------------------------------------- SageAttention
    if "sage" not in args.skip and args.sage_path and b.left() > 40:
        sys.path.append(args.sage_path)
        b.row("last variant: forward, attention=sage + fuse (8-bit QK)", lambda: fwd(opts("sage", True)), ref=exact,
              need=40)

    b.info["total_s"] = time.perf_counter() - b.t0
    b.save()
    print(f"\n{b.info['device']}, torch {b.info['torch']}, {b.info['date']}; plain host forward {b.plain:.3f} s")
    print(f"{'configuration':<44} {'s':>8} {'x plain':>8} {'rel err':>9} {'GiB':>6}")
    for r in b.rows:
        if "seconds" in r:
            print(f"{r['name']:<44} {r['seconds']:8.3f} {r.get('ratio_to_plain', 0):8.3f} "
                  f"{r.get('rel_error', float('nan')):9.2e} {r.get('peak_gib', 0):6.1f}")
        else:
            print(f"{r['name']:<44} {r.get('error', r.get('skipped'))[:70]}")


if __name__ == "__main__":
    main()
