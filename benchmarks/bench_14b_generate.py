"""End-to-end full-size generation through the CLI code path, with random weights.

Writes random files of the real shapes — Wan2.1-T2V-14B DiT (native DiffSynth layout, recognised by the host's
registry hash), the real-architecture Wan VAE, official-layout ``lynx_full/`` adapters (or lite), an IR-SE50
``recognition_arcface_ir_se50.pth`` and a stand-in detector — plus a 2-layer umT5 of the real width (the full
5.7 B-parameter encoder is not needed to time the DiT and would cost 11 GB of disk). Then runs
``diffsynth-ext generate --extension lynx`` (in-process, so the small text encoder can be declared to DiffSynth)
at 480x832x81 for a few steps and copies the JSON report (per-phase timings, peak memory) to the output folder.

    python benchmarks/bench_14b_generate.py --work /tmp/lynx14b --out $OUT --steps 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_dit(path: Path, device: str) -> None:
    from diffsynth.models.wan_video_dit import WanModel

    with torch.device("meta"):
        dit = WanModel(dim=5120, in_dim=16, ffn_dim=13824, out_dim=16, text_dim=4096, freq_dim=256, eps=1e-6,
                       patch_size=(1, 2, 2), num_heads=40, num_layers=40, has_image_input=False)
    g = torch.Generator(device).manual_seed(0)
    sd = {}
    for name, p in dit.state_dict().items():
        if "norm" in name and name.endswith("weight"):
            t = torch.ones(p.shape, device=device)
        else:
            t = torch.randn(p.shape, generator=g, device=device) * 0.02
        sd[name] = t.to(torch.bfloat16).cpu()
    save_file(sd, str(path))


def write_t5(path: Path) -> dict:
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder

    kwargs = dict(vocab=256384, dim=4096, dim_attn=4096, dim_ffn=10240, num_heads=64, num_layers=2, num_buckets=32)
    torch.manual_seed(0)
    t5 = WanTextEncoder(**kwargs).to(torch.bfloat16)
    save_file({k: v.contiguous() for k, v in t5.state_dict().items()}, str(path))
    return kwargs


def write_vae(path: Path) -> None:
    from diffsynth.models.wan_video_vae import WanVideoVAE

    torch.manual_seed(0)
    vae = WanVideoVAE()
    for p in vae.model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    save_file({k[len("model."):]: v.contiguous() for k, v in vae.state_dict().items() if k.startswith("model.")},
              str(path))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/lynx14b")
    ap.add_argument("--out", default="outputs/bench_generate")
    ap.add_argument("--variant", default="full", choices=("full", "lite"))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--extra", nargs="*", default=[], help="extra CLI flags, e.g. --vram-limit 20 --fp8")
    args = ap.parse_args()
    from diffsynth.configs.model_configs import MODEL_CONFIGS
    from diffsynth.core.loader.file import hash_model_file

    from bench_14b_forward import official_states
    from lynx_ext.adapters.formats import load_official_states, save_official_folder
    from lynx_ext.cli.generate import main as generate
    from lynx_ext.conditioners.ir_se50 import IRSE50
    from lynx_ext.tiny.face_models import write_standin_pack
    from lynx_ext.tiny.wan import _tokenizer

    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.perf_counter()
    write_dit(work / "dit.safetensors", "cuda")
    timings["write_dit_s"] = time.perf_counter() - t
    t5_kwargs = write_t5(work / "t5.safetensors")
    write_vae(work / "vae.safetensors")
    _tokenizer(work / "tokenizer")
    MODEL_CONFIGS.append({"model_hash": hash_model_file(str(work / "t5.safetensors")),
                          "model_name": "wan_video_text_encoder",
                          "model_class": "diffsynth.models.wan_video_text_encoder.WanTextEncoder",
                          "extra_kwargs": t5_kwargs})
    t = time.perf_counter()
    states = official_states(args.variant, 5120, 40, 16, "cuda", torch.bfloat16)
    adapters = load_official_states(states, 5120, 40, variant=args.variant)
    save_official_folder(adapters.cpu(), work / f"lynx_{args.variant}")
    del states, adapters
    timings["write_adapters_s"] = time.perf_counter() - t
    faces = write_standin_pack(work / "faces")
    torch.manual_seed(0)
    torch.save(IRSE50().state_dict(), faces / "recognition_arcface_ir_se50.pth")
    from skimage import data
    from PIL import Image

    Image.fromarray(data.astronaut()).save(work / "astronaut.png")
    cli = ["--variant", args.variant, "--image", str(work / "astronaut.png"),
           "--prompt", "an astronaut smiling at the camera", "--model-paths", str(work / "dit.safetensors"),
           "--model-paths", str(work / "t5.safetensors"), "--model-paths", str(work / "vae.safetensors"),
           "--tokenizer-path", str(work / "tokenizer"), "--adapters", str(work / f"lynx_{args.variant}"),
           "--face-models", str(faces), "--embedder", "facexlib", "--num-inference-steps", str(args.steps),
           "--num-frames", str(args.frames), "--height", "480", "--width", "832", "--seed", "42",
           "--output", str(work / "gen.webp"), "--overwrite", *args.extra]
    print("diffsynth-ext generate --extension lynx " + " ".join(cli))
    t = time.perf_counter()
    rc = generate(cli)
    timings["cli_total_s"] = time.perf_counter() - t
    report = json.loads((work / "gen_report.json").read_text())
    report["bench_timings"] = timings
    report["bench_note"] = "random weights; 2-layer umT5 of the real width; stand-in detector; random IR-SE50"
    (out / f"generate_{args.variant}_report.json").write_text(json.dumps(report, indent=2))
    shutil.copy(work / "gen_frames.png", out / f"generate_{args.variant}_frames.png")
    print(f"rc={rc}")
    print(f"{'phase':<24} seconds")
    for k, v in {**report["timings"], **timings}.items():
        print(f"{k:<24} {v:.2f}")
    print("memory", report["memory"])


if __name__ == "__main__":
    main()
