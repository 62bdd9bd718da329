"""Full-size shape check and timing: Wan2.1-T2V-14B (dim 5120, 40 blocks) + official-shaped Lynx adapters.

Builds the DiT on the meta device, materialises random bf16 weights on the GPU, loads random state dicts with the
official Lynx key names and shapes (resampler / ip_layers with registers / ref_layers) through the official-format
loader, installs them into a DiffSynth `WanVideoPipeline`, runs the reference pass and times bf16 forwards at
81 frames x 480 x 832 (latent 21 x 60 x 104 = 32,760 tokens). Prints a table and writes JSON.

    python benchmarks/bench_14b_forward.py --variant full --registers 16 --json $OUT/bench_14b_forward.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def official_states(variant: str, dim: int, blocks: int, registers: int, device, dtype, seed: int = 0):
    """Random tensors under the official file/key names and shapes."""
    g = torch.Generator(device).manual_seed(seed)

    def rnd(*shape, std=0.02):
        return (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * std).to(dtype)

    res_dim, out = 1280, (dim if variant == "full" else 2048)
    res = {"latents": rnd(1, 16, res_dim, std=res_dim**-0.5), "proj_in.weight": rnd(res_dim, 512),
           "proj_in.bias": rnd(res_dim), "proj_out.weight": rnd(out, res_dim), "proj_out.bias": rnd(out),
           "norm_out.weight": 1 + rnd(out), "norm_out.bias": rnd(out)}
    for layer in range(4):
        p = f"layers.{layer}."
        for n in ("norm1", "norm2"):
            res[p + f"0.{n}.weight"], res[p + f"0.{n}.bias"] = 1 + rnd(res_dim), rnd(res_dim)
        res[p + "0.to_q.weight"], res[p + "0.to_kv.weight"] = rnd(res_dim, res_dim), rnd(2 * res_dim, res_dim)
        res[p + "0.to_out.weight"] = rnd(res_dim, res_dim)
        res[p + "1.0.weight"], res[p + "1.0.bias"] = 1 + rnd(res_dim), rnd(res_dim)
        res[p + "1.1.weight"], res[p + "1.3.weight"] = rnd(4 * res_dim, res_dim), rnd(res_dim, 4 * res_dim)
    ip = {}
    ids = range(blocks) if variant == "full" else range(len(range(0, blocks, 2)))
    for j in ids:
        ip[f"{j}.to_k_ip.weight"], ip[f"{j}.to_v_ip.weight"] = rnd(dim, out), rnd(dim, out)
        if variant == "full":
            ip[f"{j}.to_k_ip.bias"], ip[f"{j}.to_v_ip.bias"] = rnd(dim), rnd(dim)
            if registers:
                ip[f"{j}.registers"] = rnd(1, registers, out, std=dim**-0.5)
    states = {"resampler.safetensors": res, "ip_layers.safetensors": ip}
    if variant == "full":
        states["ref_layers.safetensors"] = {k: v for i in range(blocks) for k, v in (
            (f"{i}.to_k_ref.weight", rnd(dim, dim)), (f"{i}.to_k_ref.bias", rnd(dim)),
            (f"{i}.to_v_ref.weight", rnd(dim, dim)), (f"{i}.to_v_ref.bias", rnd(dim)))}
    return states


def materialise_random(dit, device, dtype, seed=0):
    from diffsynth.models.wan_video_dit import precompute_freqs_cis_3d

    dit.to_empty(device=device)
    g = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_((torch.randn(p.shape, generator=g, device=device) * 0.02).to(p.dtype))
    dit.freqs = precompute_freqs_cis_3d(dit.dim // dit.blocks[0].self_attn.num_heads)
    return dit.to(dtype).eval()


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat: int):
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def add_shape_args(ap: argparse.ArgumentParser) -> None:
    """Options shared by the 14B benchmarks: variant, clip size, DiT shape (default 14B), device, JSON output."""
    ap.add_argument("--variant", default="full", choices=("full", "lite"))
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--json", default=None)
    ap.add_argument("--dim", type=int, default=5120)
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--heads", type=int, default=40)
    ap.add_argument("--ffn", type=int, default=13824)
    ap.add_argument("--device", default="cuda")


def meta_dit(args):
    """A Wan DiT of the requested shape on the meta device (no memory; `materialise_random` gives it weights)."""
    from diffsynth.models.wan_video_dit import WanModel

    with torch.device("meta"):
        return WanModel(dim=args.dim, in_dim=16, ffn_dim=args.ffn, out_dim=16, text_dim=4096, freq_dim=256, eps=1e-6,
                        patch_size=(1, 2, 2), num_heads=args.heads, num_layers=args.layers, has_image_input=False)


class RandomRun:
    """A `WanVideoPipeline` with a random DiT of ``args``' shape and one sample's random inputs (latents, prompt and
    negative-prompt encodings, timestep 900), shared by the 14B benchmarks."""

    def __init__(self, args, dev, dt):
        from diffsynth.pipelines.wan_video import WanVideoPipeline

        self.args, self.dev, self.dt = args, dev, dt
        self.dit = materialise_random(meta_dit(args), dev, dt)
        self.pipe = WanVideoPipeline(device=dev, torch_dtype=dt)
        self.pipe.dit = self.dit
        self.g = torch.Generator(dev).manual_seed(1)
        f = (args.frames - 1) // 4 + 1
        self.latents = torch.randn(1, 16, f, args.height // 8, args.width // 8, generator=self.g, device=dev).to(dt)
        self.ctx = torch.randn(1, 512, 4096, generator=self.g, device=dev).to(dt)
        self.ctx_neg = torch.randn(1, 512, 4096, generator=self.g, device=dev).to(dt)
        self.ts = torch.tensor([900.0], device=dev, dtype=dt)
        self.video_tokens = f * (args.height // 16) * (args.width // 16)

    def plain(self):
        """The host's own forward (nothing of Lynx)."""
        return self.pipe.model_fn(dit=self.dit, latents=self.latents, timestep=self.ts, context=self.ctx)

    def install(self, variant: str, registers: int):
        """Install official-shaped random adapters; returns ``fwd(fast=None, guided=False)``: our forward with
        identity tokens (and reference features for full), or the guided step (three / two branches)."""
        from lynx_ext.adapters.formats import load_official_states
        from lynx_ext.pipeline import LynxGuidance, install
        from lynx_ext.pipeline.fast_modes import start_run
        from lynx_ext.pipeline.reference_pass import capture_reference_features

        args, dev, dt, g, pipe = self.args, self.dev, self.dt, self.g, self.pipe
        states = official_states(variant, args.dim, args.layers, registers if variant == "full" else 0, dev, dt)
        adapters = load_official_states(states, args.dim, args.layers, variant=variant)
        del states
        install(pipe, adapters)
        emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=g, device=dev), dim=-1).to(dt)
        tokens, tokens0 = pipe.lynx.encode_identity(emb), pipe.lynx.encode_identity(torch.zeros_like(emb))
        feats = feats0 = None
        if variant == "full":
            ref_lat = torch.randn(1, 16, 1, 32, 32, generator=g, device=dev).to(dt)
            feats = capture_reference_features(pipe, ref_lat, self.ctx)
            feats0 = capture_reference_features(pipe, ref_lat * 0, self.ctx)
        guide = LynxGuidance(5.0, 2.0 if variant == "full" else None, self.ctx_neg, tokens0, feats0)

        def fwd(fast=None, guided=False):
            return pipe.model_fn(dit=self.dit, lynx=pipe.lynx, latents=self.latents, timestep=self.ts,
                                 context=self.ctx, lynx_id_tokens=tokens, lynx_ref_features=feats,
                                 lynx_guidance=guide if guided else None, lynx_fast=start_run(fast, dev, dt))
        return fwd


def main():
    ap = argparse.ArgumentParser()
    add_shape_args(ap)
    ap.add_argument("--registers", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    from lynx_ext.adapters.formats import load_official_states
    from lynx_ext.pipeline import LynxGuidance, install
    from lynx_ext.pipeline.reference_pass import capture_reference_features

    dev, dt = args.device, torch.bfloat16
    D, L = args.dim, args.layers
    res = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__,
           "variant": args.variant, "registers": args.registers, "frames": args.frames, "height": args.height,
           "width": args.width}
    t = time.perf_counter()
    dit = meta_dit(args)
    res["meta_build_s"] = time.perf_counter() - t
    res["dit_params_b"] = sum(p.numel() for p in dit.parameters()) / 1e9
    materialise_random(dit, dev, dt)
    t = time.perf_counter()
    states = official_states(args.variant, D, L, args.registers, dev, dt)
    adapters = load_official_states(states, D, L, variant=args.variant)
    del states
    res["adapter_load_s"] = time.perf_counter() - t
    res["adapter_params_b"] = sum(p.numel() for p in adapters.parameters()) / 1e9
    pipe = WanVideoPipeline(device=dev, torch_dtype=dt)
    pipe.dit = dit
    install(pipe, adapters)
    lynx = pipe.lynx
    g = torch.Generator(dev).manual_seed(1)
    f = (args.frames - 1) // 4 + 1
    latents = torch.randn(1, 16, f, args.height // 8, args.width // 8, generator=g, device=dev).to(dt)
    ctx = torch.randn(1, 512, 4096, generator=g, device=dev).to(dt)
    ctx_neg = torch.randn(1, 512, 4096, generator=g, device=dev).to(dt)
    ts = torch.tensor([900.0], device=dev, dtype=dt)
    emb = torch.nn.functional.normalize(torch.randn(1, 512, generator=g, device=dev), dim=-1).to(dt)
    with torch.no_grad():
        tokens, tokens0 = lynx.encode_identity(emb), lynx.encode_identity(torch.zeros_like(emb))
        ref_lat = torch.randn(1, 16, 1, 32, 32, generator=g, device=dev).to(dt)
        ref_s = timed(lambda: capture_reference_features(pipe, ref_lat, ctx), args.repeat) if args.variant == "full" \
            else None
        feats = capture_reference_features(pipe, ref_lat, ctx) if args.variant == "full" else None
        feats0 = capture_reference_features(pipe, ref_lat * 0, ctx) if args.variant == "full" else None
        res["ref_pass_s"] = ref_s

        def fwd(**kw):
            return pipe.model_fn(dit=dit, lynx=lynx, latents=latents, timestep=ts, context=ctx, **kw)

        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        res["forward_base_s"] = timed(lambda: fwd(), args.repeat)
        res["forward_lynx_s"] = timed(lambda: fwd(lynx_id_tokens=tokens, lynx_ref_features=feats), args.repeat)
        guide = LynxGuidance(5.0, 2.0 if args.variant == "full" else None, ctx_neg, tokens0, feats0)
        res["step_guided_s"] = timed(lambda: fwd(lynx_id_tokens=tokens, lynx_ref_features=feats, lynx_guidance=guide),
                                     args.repeat)
        out = fwd(lynx_id_tokens=tokens, lynx_ref_features=feats)
        res["output_shape"] = list(out.shape)
        res["output_finite"] = bool(torch.isfinite(out).all())
        if dev == "cuda":
            res["peak_cuda_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    res["lynx_overhead_pct"] = 100 * (res["forward_lynx_s"] / res["forward_base_s"] - 1)
    tokens_n = f * (args.height // 16) * (args.width // 16)
    res["video_tokens"] = tokens_n
    print(f"{'metric':<28} value")
    for k, v in res.items():
        print(f"{k:<28} {v:.3f}" if isinstance(v, float) else f"{k:<28} {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
