"""The offline default: a tiny random Wan, random Lynx adapters and stand-in face models, built on the fly.

Everything is deterministic and nothing is downloaded. The output proves the installation and the whole code
path (face detection -> alignment -> embedding -> resampler -> reference pass -> guided sampling -> video);
the model is untrained, so the video is noise-like.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

TINY_SETTINGS = dict(height=128, width=128, num_frames=9, fps=8, num_inference_steps=6, sampler="unipc")


def tiny_home() -> Path:
    return Path(os.environ.get("LYNX_EXT_HOME", Path.home() / ".cache" / "lynx_ext")) / "tiny"


def tiny_adapters(dit, variant: str, seed: int = 0):
    """Random adapters of the official layout at the tiny DiT's size, with visibly non-zero branches."""
    from ..adapters import LynxAdapterConfig, LynxAdapters, ResamplerConfig

    id_dim = dit.dim if variant == "full" else 64
    res = ResamplerConfig(dim=64, depth=2, dim_head=16, heads=4, num_queries=16, embedding_dim=512, output_dim=id_dim)
    config = LynxAdapterConfig.official(variant, dim=dit.dim, num_blocks=len(dit.blocks),
                                        num_registers=4 if variant == "full" else 0, resampler=res)
    torch.manual_seed(seed)
    adapters = LynxAdapters(config, init="random")
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.startswith(("id_layers", "ref_layers")):
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return adapters


def tiny_generator(variant: str = "full", loras: Sequence[str] = (), home: Path | None = None,
                   face_models: str | None = None, embedder: str = "insightface", detector: str | None = None,
                   adapters: str | None = None):
    """A `LynxGenerator` over tiny models (CPU, float32); ``face_models`` replaces the stand-in face pack."""
    from ..conditioners import FaceAnalyzer
    from ..conditioners.standin_models import write_standin_pack
    from ..models.tiny import MANIFEST, build_tiny_wan, load_tiny_pipe
    from .generator import LynxGenerator

    home = home or tiny_home()
    wan = home / "wan"
    if not (wan / MANIFEST).is_file():
        build_tiny_wan(wan)
    detector = detector or ("dlib" if embedder == "dlib" and face_models is None else "insightface")
    faces = Path(face_models) if face_models else home / "faces"
    if face_models is None and detector == "insightface" and not (faces / "det_10g.onnx").is_file():
        write_standin_pack(faces)
    pipe = load_tiny_pipe(wan)
    face = FaceAnalyzer.from_options(models=str(faces) if detector == "insightface" or face_models else None,
                                     embedder=embedder, detector=detector, device="cpu")
    weights = adapters if adapters is not None else tiny_adapters(pipe.dit, variant)
    gen = LynxGenerator._assemble(pipe, variant, weights, loras, None, embedder, "cpu",
                                  [str(p) for p in sorted(wan.glob("*.safetensors"))], face=face)
    if adapters is None:
        gen.adapter_source = "tiny random adapters (untrained)"
    gen.notes.append("tiny untrained model and stand-in face models: proves the installation, not quality")
    gen.default_overrides = dict(TINY_SETTINGS)
    return gen
