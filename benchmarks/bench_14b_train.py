"""Training throughput of the stage-2 recipe at the 14B shape: adapters-only, gradient checkpointing, bf16-mixed.

Random weights of the real shapes (Wan2.1-T2V-14B DiT, the real-architecture Wan VAE, official-shape full or lite
adapters); a 2-layer umT5 of the real width for the prompt (encoded once per prompt, as in training). One training
step = one pack of ``--token-budget`` tokens (default: one 81 x 480 x 832 clip = 32,760 tokens) through
`LynxModule.pack_loss` (VAE encode, reference pass, packed DiT forward, flow-matching loss) + backward + AdamW.
Prints a table and writes JSON with tokens/s and model FLOPs utilisation.

    python benchmarks/bench_14b_train.py --variant full --steps 4 --json $OUT/train_full.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense bf16 tensor-core peak (SXM datasheet)


def dit_forward_flops(tokens: int, text: int, dim: int = 5120, ffn: int = 13824, layers: int = 40) -> float:
    """Matmul FLOPs of one DiT forward (q/k/v/o, cross q/o + text k/v, FFN, self- and cross-attention)."""
    per_layer = (2 * tokens * dim * dim * 4 + 2 * tokens * dim * dim * 2 + 2 * text * dim * dim * 2
                 + 2 * tokens * dim * ffn * 2 + 4 * tokens * tokens * dim + 4 * tokens * text * dim)
    return layers * per_layer


def main():
    from bench_14b_forward import add_shape_args, materialise_random, meta_dit, official_states

    ap = argparse.ArgumentParser()
    add_shape_args(ap)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--vae-dim", type=int, default=96, help="96 = the real Wan VAE; smaller only for CPU smoke runs")
    args = ap.parse_args()
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder
    from diffsynth.models.wan_video_vae import WanVideoVAE
    from diffsynth.pipelines.wan_video import WanVideoPipeline
    from PIL import Image

    from lynx_ext.adapters.formats import load_official_states
    from lynx_ext.tiny.wan import _tokenizer
    from lynx_ext.pipeline import install
    from lynx_ext.training.args import AdapterArgs, BaseModelArgs, LossArgs, OptimArgs
    from lynx_ext.training.module import LynxModule

    dev, dt = args.device, torch.bfloat16
    D, L = args.dim, args.layers
    cuda = dev == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dit = materialise_random(meta_dit(args), dev, dt)
    pipe = WanVideoPipeline(device=dev, torch_dtype=dt)
    pipe.dit = dit
    torch.manual_seed(0)
    if args.vae_dim == 96:
        pipe.vae = WanVideoVAE().to(dev, dt)
    else:
        from lynx_ext.tiny.wan import TinyWanVideoVAE

        pipe.vae = TinyWanVideoVAE(dim=args.vae_dim).to(dev, dt)
    pipe.text_encoder = WanTextEncoder(vocab=256384, dim=4096, dim_attn=4096, dim_ffn=10240, num_heads=64,
                                       num_layers=2).to(dev, dt)
    _tokenizer("/tmp/tok")
    from diffsynth.models.wan_video_text_encoder import HuggingfaceTokenizer

    pipe.tokenizer = HuggingfaceTokenizer(name="/tmp/tok", seq_len=512, clean="whitespace")
    adapters = load_official_states(official_states(args.variant, D, L, 16, dev, dt), D, L, args.variant)
    install(pipe, adapters)
    module = LynxModule(base=BaseModelArgs(preset="custom"), adapters=AdapterArgs(variant=args.variant),
                        optim=OptimArgs(lr=1e-5), loss=LossArgs(), gradient_checkpointing=True)
    pipe.scheduler.set_timesteps(1000, training=True, shift=5.0)
    pipe.requires_grad_(False)
    pipe.lynx.float().requires_grad_(True).train()
    module.pipe = pipe
    module.train()
    opt = module.configure_optimizers()["optimizer"]
    g = torch.Generator().manual_seed(0)
    video = (torch.rand(3, args.frames, args.height, args.width, generator=g) * 2 - 1)
    crop = Image.fromarray((torch.rand(256, 256, 3, generator=g) * 255).byte().numpy())
    sample = {"video": video, "prompt": "a person walks through a market", "id_embed": torch.nn.functional.normalize(
        torch.randn(512, generator=g), dim=0), "ref_crop": crop, "drop_ref": False}
    sync()
    t = time.perf_counter()
    with torch.no_grad():
        latents = pipe.vae.encode([video.to(dev, dt)], device=dev, tiled=True).to(dev, dt)
    sync()
    vae_s = time.perf_counter() - t
    encode = pipe.vae.encode  # time the training compute on cached clip latents (reference crops still encode)
    pipe.vae.encode = lambda videos, device, **kw: latents if videos[0].shape[1] > 1 else encode(videos, device, **kw)
    times, losses = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.steps + 1):
        sync()
        t = time.perf_counter()
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = module.pack_loss([sample], torch.Generator().manual_seed(step))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if step > 0:  # the first step warms up kernels and the prompt cache
            times.append(time.perf_counter() - t)
        losses.append(float(loss))
    tokens = ((args.frames - 1) // 4 + 1) * (args.height // 16) * (args.width // 16)
    step_s = sorted(times)[len(times) // 2]
    fwd = dit_forward_flops(tokens, 512, D, args.ffn, L)
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 989.0)
    res = {
        "device": name, "torch": torch.__version__, "variant": args.variant, "frames": args.frames,
        "height": args.height, "width": args.width, "tokens_per_step": tokens, "step_s_median": step_s,
        "tokens_per_s": tokens / step_s, "vae_encode_s_per_clip": vae_s,
        "tokens_per_s_incl_vae_encode": tokens / (step_s + vae_s), "trainable_params_b": sum(p.numel() for p in pipe.lynx.parameters()) / 1e9,
        "dit_forward_tflop": fwd / 1e12,
        "mfu_3x_fwd_pct": 100 * 3 * fwd / step_s / (peak * 1e12),
        "hfu_4x_fwd_pct": 100 * 4 * fwd / step_s / (peak * 1e12),
        "peak_cuda_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0, "losses": losses,
        "peak_tflops_assumed": peak,
    }
    print(f"{'metric':<26} value")
    for k, v in res.items():
        print(f"{k:<26} {v:.3f}" if isinstance(v, float) else f"{k:<26} {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
