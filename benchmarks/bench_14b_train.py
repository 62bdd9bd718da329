"""Training at the Wan2.1-T2V-14B shape through the real loop: `Trainer.fit` with `LynxModule`, per card size.

Each configuration builds `LynxModule` with a recipe's memory options (`CONFIGS`), a random bf16 14B DiT, the
real-architecture Wan VAE (reference crops), official-shaped adapters, and trains ``--steps`` packs of one
81 x 480 x 832 clip (32,760 tokens; latents and prompt encodings as the prepared caches give them) through
`lightning.Trainer.fit` (bf16-mixed, gradient clipping, checkpointed blocks) -- the loop a user runs. The
allocator is capped at the configuration's card size (`torch.cuda.set_per_process_memory_fraction`), so a
configuration that would not fit fails with an out-of-memory error instead of borrowing the larger card's memory.

All configurations run in one process; every figure is also given as a ratio to the first (unconstrained) run.
Prints one table and writes JSON.

    python benchmarks/bench_14b_train.py --json $OUT/train.json                       # every configuration
    python benchmarks/bench_14b_train.py --configs full-141gb full-80gb --steps 3
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_14b_forward import add_shape_args, materialise_random, meta_dit  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 tensor-core peak (SXM datasheet)
EIGHT_BIT = {"optimizer": "bitsandbytes.optim.AdamW8bit"}
BF16_WEIGHTS = {"optimizer": "torchao.optim.AdamW8bit", "optimizer_args": {"bf16_stochastic_round": True}}
# name: (variant, card GiB cap or None, module options, optimiser options, token budget or None = one clip)
CONFIGS = {
    "full-141gb": ("full", None, {}, {}, None),
    "full-80gb": ("full", 79.0, {"fp8_storage": True}, EIGHT_BIT, None),
    "full-80gb-offload": ("full", 79.0, {"fp8_storage": True, "gradient_checkpointing": "offload"}, EIGHT_BIT, None),
    "full-48gb": ("full", 46.0, {"fp8_storage": True, "trainable_dtype": "bf16", "gradient_checkpointing": "offload"},
                  BF16_WEIGHTS, None),
    "full-141gb-compile": ("full", None, {"compile": True}, {}, None),
    "full-80gb-compile": ("full", 79.0, {"fp8_storage": True, "compile": True}, EIGHT_BIT, None),
    "lite-141gb": ("lite", None, {}, {}, None),
    "lite-24gb": ("lite", 22.0, {"fp8_storage": True, "trainable_dtype": "bf16", "gradient_checkpointing": "offload"},
                  BF16_WEIGHTS, None),
    "lite-24gb-41f": ("lite", 22.0, {"fp8_storage": True, "trainable_dtype": "bf16",
                                     "gradient_checkpointing": "offload"}, BF16_WEIGHTS, 41),
}


def dit_forward_flops(tokens: int, text: int, dim: int = 5120, ffn: int = 13824, layers: int = 40) -> float:
    """Matmul FLOPs of one DiT forward (q/k/v/o, cross q/o + text k/v, FFN, self- and cross-attention)."""
    per_layer = (2 * tokens * dim * dim * 4 + 2 * tokens * dim * dim * 2 + 2 * text * dim * dim * 2
                 + 2 * tokens * dim * ffn * 2 + 4 * tokens * tokens * dim + 4 * tokens * text * dim)
    return layers * per_layer


def make_module(args, variant: str, options: dict, optim: dict):
    """`LynxModule` whose base is a random DiT of ``args``' shape (the rest of `configure_model` is the real one)."""
    from diffsynth.models.wan_video_vae import WanVideoVAE
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    from lynx_ext.training.args import AdapterArgs, BaseModelArgs, LossArgs, OptimArgs
    from lynx_ext.training.module import LynxModule

    dev, dt = torch.device(args.device), torch.bfloat16
    options = dict(options)
    fp8 = options.pop("fp8_storage", False)

    class RandomBaseModule(LynxModule):
        def build_base_pipe(self):
            pipe = WanVideoPipeline(device=str(dev), torch_dtype=dt)
            pipe.dit = materialise_random(meta_dit(args), dev, dt)
            torch.manual_seed(0)
            pipe.vae = WanVideoVAE().to(dev, dt) if args.vae_dim == 96 else _tiny_vae(args.vae_dim, dev, dt)
            return pipe

        def context(self, prompt: str) -> torch.Tensor:  # the prepared cache's encoding (no text encoder on the GPU)
            if not hasattr(self, "_ctx"):
                self._ctx = torch.randn(1, 512, 4096, generator=torch.Generator().manual_seed(3)).to(dev, dt)
            return self._ctx

    return RandomBaseModule(
        base=BaseModelArgs(preset="custom", fp8_storage=fp8),
        adapters=AdapterArgs(variant=variant, init="random", num_registers=16 if variant == "full" else 0),
        optim=OptimArgs(lr=1e-5, **optim), loss=LossArgs(), **options)


def _tiny_vae(dim, dev, dt):
    from lynx_ext.tiny.wan import TinyWanVideoVAE

    return TinyWanVideoVAE(dim=dim).to(dev, dt)


class Packs(torch.utils.data.Dataset):
    """``n`` packs of one random clip (cached latents, a face embedding, a reference crop), as the data module's."""

    def __init__(self, n: int, frames: int, height: int, width: int):
        from PIL import Image

        g = torch.Generator().manual_seed(0)
        f = (frames - 1) // 4 + 1
        self.latents = torch.randn(1, 16, f, height // 8, width // 8, generator=g).to(torch.bfloat16)
        self.embed = torch.nn.functional.normalize(torch.randn(512, generator=g), dim=0)
        self.crop = Image.fromarray((torch.rand(256, 256, 3, generator=g) * 255).byte().numpy())
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return [{"latents": self.latents, "prompt": "a person walks through a market", "id_embed": self.embed,
                 "ref_crop": self.crop, "drop_ref": False}]


class StepTimer:
    """Wall time of each training step (device-synchronised)."""

    def __init__(self, cuda: bool):
        import lightning.pytorch as pl

        timer = self
        sync = torch.cuda.synchronize if cuda else (lambda: None)

        class _Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                sync()
                timer.t = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                sync()
                timer.times.append(time.perf_counter() - timer.t)
                timer.losses.append(float(outputs["loss"]))

        self.callback, self.times, self.losses, self.t = _Callback(), [], [], 0.0


def run_config(args, name: str) -> dict:
    """Train ``args.steps + 1`` steps of configuration ``name``; the allocator is capped once the model is built
    (the random bf16 DiT is drawn whole on the GPU here, which a real load, block by block, never holds)."""
    import lightning.pytorch as pl

    variant, cap, options, optim, frames = CONFIGS[name]
    frames = frames or args.frames
    cuda = torch.device(args.device).type == "cuda"
    res = {"config": name, "variant": variant, "card_gib": cap, "options": options, "optim": optim,
           "frames": frames, "tokens_per_step": ((frames - 1) // 4 + 1) * (args.height // 16) * (args.width // 16)}
    state = {}
    t0 = time.perf_counter()
    try:
        with torch.device(args.device):  # fresh adapters drawn on the device (4.28 B weights)
            state["module"] = module = make_module(args, variant, options, optim)
            module.configure_model()
        res["setup_s"] = time.perf_counter() - t0
        if cuda:
            torch.cuda.empty_cache()
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap * 2**30 / total) if cap else 1.0)
            torch.cuda.reset_peak_memory_stats()
        timer = StepTimer(cuda)
        state["trainer"] = trainer = pl.Trainer(
            accelerator=args.device if args.device == "cpu" else "gpu", devices=1,
            precision="bf16-mixed", max_steps=args.steps + 1, gradient_clip_val=1.0, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[timer.callback], num_sanity_val_steps=0)
        loader = torch.utils.data.DataLoader(Packs(args.steps + 1, frames, args.height, args.width),
                                             batch_size=None, collate_fn=lambda pack: pack)
        trainer.fit(module, train_dataloaders=loader)
        times = timer.times[1:]  # the first step warms up kernels and allocates the optimiser states
        res.update(ok=True, step_s=sorted(times)[len(times) // 2], step_times=timer.times, losses=timer.losses,
                   trainable_params_b=sum(p.numel() for p in module.pipe.lynx.parameters()) / 1e9)
    except torch.OutOfMemoryError as exc:
        res.update(ok=False, error=f"out of memory: {str(exc).splitlines()[0][:300]}")
    if cuda:
        res["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        res["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    res["host_max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    state.clear()
    module = trainer = None  # noqa: F841
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0)
    return res


def optimizer_steps(args, steps: int = 3) -> list[dict]:
    """The optimiser step alone on the full adapters' weights (fp32, random gradients): seconds per step and the
    memory its states take, for each candidate class -- how the 8-bit optimiser of the recipes was chosen."""
    from lynx_ext.adapters import LynxAdapters
    from lynx_ext.training.build import build_adapter_config
    from lynx_ext.training.args import AdapterArgs
    from lynx_ext.training.optimizers import build_optimizer

    candidates = [("torch.optim.AdamW", {}), ("torch.optim.AdamW", {"fused": True}),
                  ("bitsandbytes.optim.AdamW8bit", {}), ("torchao.optim.AdamW8bit", {})]
    with torch.device("meta"):
        dit = meta_dit(args)
    rows = []
    for path, extra in candidates:
        with torch.device(args.device):
            adapters = LynxAdapters(build_adapter_config(dit, AdapterArgs(variant="full")), init="random")
        params = [p for p in adapters.parameters()]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        try:
            opt = build_optimizer(params, path, extra, 1e-5, 0.01, (0.9, 0.999))
            times = []
            for _ in range(steps + 1):
                torch.cuda.synchronize()
                t = time.perf_counter()
                opt.step()
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            rows.append({"optimizer": path, "args": extra, "step_s": sorted(times[1:])[len(times[1:]) // 2],
                         "first_step_s": times[0],
                         "state_gib": (torch.cuda.memory_allocated() - base) / 2**30,
                         "peak_extra_gib": (torch.cuda.max_memory_allocated() - base) / 2**30})
        except Exception as exc:  # a missing kernel on this machine: reported, the rest still measured
            rows.append({"optimizer": path, "args": extra, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(json.dumps(rows[-1]), flush=True)
        opt = params = adapters = None  # noqa: F841
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser()
    add_shape_args(ap)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration (after one warm-up step)")
    ap.add_argument("--vae-dim", type=int, default=96, help="96 = the real Wan VAE; smaller only for smoke runs")
    ap.add_argument("--optimizers", action="store_true", help="then time the optimiser step alone per class")
    args = ap.parse_args()
    optimizers = []
    name = torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 989.0)
    rows = []
    for config in args.configs:
        res = run_config(args, config)
        if res.get("ok"):
            fwd = dit_forward_flops(res["tokens_per_step"], 512, args.dim, args.ffn, args.layers)
            res["tokens_per_s"] = res["tokens_per_step"] / res["step_s"]
            res["mfu_3x_fwd_pct"] = 100 * 3 * fwd / res["step_s"] / (peak * 1e12)
        rows.append(res)
        print(json.dumps({k: v for k, v in res.items() if k not in ("step_times",)}), flush=True)
        if args.json:  # after every configuration: a run cut short keeps what it measured
            Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "partial": True,
                                                   "optimizer_steps": optimizers, "runs": rows}, indent=1))
    if args.optimizers:
        optimizers = optimizer_steps(args)
    base = {r["variant"]: r for r in rows if r.get("ok") and r["card_gib"] is None}
    print(f"\n{'config':<20} {'card':>6} {'step s':>8} {'x unconstr.':>11} {'tok/s':>7} {'MFU %':>6} "
          f"{'alloc GiB':>9} {'resv GiB':>9} {'RSS GiB':>8}")
    for r in rows:
        ref = base.get(r["variant"])
        ratio = r["step_s"] / ref["step_s"] * ref["tokens_per_step"] / r["tokens_per_step"] if (
            r.get("ok") and ref) else None
        r["step_ratio_per_token"] = ratio
        step = f"{r['step_s']:.2f}" if r.get("ok") else "OOM"
        print(f"{r['config']:<20} {r['card_gib'] or '-':>6} {step:>8} {ratio if ratio is None else round(ratio, 3)!s:>11} "
              f"{r.get('tokens_per_s', 0):>7.0f} {r.get('mfu_3x_fwd_pct', 0):>6.1f} "
              f"{r.get('peak_allocated_gib', 0):>9.1f} {r.get('peak_reserved_gib', 0):>9.1f} "
              f"{r['host_max_rss_gib']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__,
                                               "date": datetime.date.today().isoformat(), "peak_tflops": peak,
                                               "optimizer_steps": optimizers, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
