"""On-disk caches of the frozen encoders' outputs in a prepared folder: umT5 prompt encodings and VAE latents.

The host's data-process/train split is the model (DiffSynth runs its frozen units once and trains on their saved
outputs); here ``diffsynth-ext prepare --recipe`` writes them and training reads them back::

    OUTPUT/encodings.json            what was cached: encoder fingerprints, the recipe's sample spec, counts
    OUTPUT/text/<key>.safetensors    {"context": [1, L, D]} per unique caption   key = sha256(text fingerprint, text)
    OUTPUT/latents/<key>.safetensors {"latents": [1, C, f, h, w]} per row      key = sha256(VAE fingerprint, row id,
                                                                                        frame indices, height, width)

A fingerprint identifies the encoder's weights (names, shapes, dtypes and a strided sample of every tensor) and, for
text, the tokenizer; a cache made by another encoder or dtype is simply never hit. Training keeps at most a small LRU
of prompt encodings in CPU memory and moves each to the GPU only for its step.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from safetensors.torch import load_file, save_file

from ..atomic_write import atomic_path, write_text_atomic

INDEX_NAME = "encodings.json"
TEXT_DIR = "text"
LATENTS_DIR = "latents"
TEXT_LRU_SIZE = 64
"""Prompt encodings kept in CPU memory (an umT5-xxl encoding is about 4 MiB in bf16: 256 MiB)."""
_SAMPLES_PER_TENSOR = 16


def has_text_encodings(folder: Optional[str | Path]) -> bool:
    """Whether the prepared folder ``folder`` holds cached prompt encodings (``prepare --recipe``)."""
    text = Path(folder) / TEXT_DIR if folder is not None else None
    return text is not None and text.is_dir() and any(text.iterdir())
_TOKENIZER_PROBE = "a person smiling at the camera, 2 cats; ÄÖÜ — 你好"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """Identifies a module's weights cheaply: every tensor's name, shape and dtype and 16 of its values."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
        flat = t.reshape(-1)
        if flat.numel():
            idx = torch.linspace(0, flat.numel() - 1, min(flat.numel(), _SAMPLES_PER_TENSOR)).long().to(flat.device)
            h.update(flat[idx].float().cpu().numpy().tobytes())
    return h.hexdigest()[:32]


def text_encoder_fingerprint(pipe) -> str:
    """The prompt encoder of ``pipe``: umT5 weights (and dtype) plus the tokenizer's output on a probe text."""
    if pipe.text_encoder is None or pipe.tokenizer is None:
        raise RuntimeError("This pipeline has no text encoder/tokenizer, so its prompt encodings cannot be cached.")
    ids = pipe.tokenizer(_TOKENIZER_PROBE, return_mask=True, add_special_tokens=True)[0]
    tok = hashlib.sha256(json.dumps([int(i) for i in ids.reshape(-1).tolist()]).encode()).hexdigest()
    return hashlib.sha256(f"{weights_fingerprint(pipe.text_encoder)}|{tok}".encode()).hexdigest()[:32]


def vae_fingerprint(pipe) -> str:
    """The VAE of ``pipe`` (weights, dtype)."""
    return weights_fingerprint(pipe.vae)


def text_key(fingerprint: str, prompt: str) -> str:
    return hashlib.sha256(f"{fingerprint}\0{prompt}".encode()).hexdigest()[:40]


def latent_key(fingerprint: str, row_id: str, frame_indices: Sequence[int], height: int, width: int) -> str:
    spec = json.dumps([fingerprint, row_id, [int(i) for i in frame_indices], int(height), int(width)])
    return hashlib.sha256(spec.encode()).hexdigest()[:40]


def vae_latents(pipe, video: torch.Tensor) -> torch.Tensor:
    """The host VAE's latents ``[1, C, f, h, w]`` of a clip ``[3, F, H, W]`` in [-1, 1] (the one encoding road of
    training and of the latent cache)."""
    dev, dt = pipe.device, pipe.torch_dtype
    with torch.no_grad():
        return pipe.vae.encode([video.to(device=dev, dtype=dt)], device=dev).to(device=dev, dtype=dt)


def read_index(folder: str | Path) -> dict:
    """``encodings.json`` of a prepared folder ({} when nothing was cached)."""
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is unreadable ({err}); run prepare with --recipe again to rewrite it.") from None
    return index if isinstance(index, dict) else {}


def write_index(folder: str | Path, index: dict) -> None:
    write_text_atomic(Path(folder) / INDEX_NAME, json.dumps(index, indent=2, sort_keys=True) + "\n")


def save_tensor(path: Path, name: str, tensor: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        save_file({name: tensor.detach().cpu().contiguous()}, str(tmp))


def load_tensor(path: Path, name: str) -> torch.Tensor:
    return load_file(str(path))[name]


class TextEncodingCache:
    """Prompt encodings of one text encoder, on the CPU: an LRU of ``capacity``, then ``<folder>/text/``, then
    ``encode`` (the text encoder, called only on a miss).

    Args:
        folder: a prepared folder (None: no disk cache).
        fingerprint: `text_encoder_fingerprint` of the encoder in use.
        encode: prompt -> ``[1, L, D]`` tensor (the on-the-fly encoding).
        capacity: entries kept in memory.
    """

    def __init__(self, folder: Optional[str | Path], fingerprint: str, encode: Callable[[str], torch.Tensor],
                 capacity: int = TEXT_LRU_SIZE):
        self.folder = Path(folder) / TEXT_DIR if folder is not None else None
        self.fingerprint, self.encode, self.capacity = fingerprint, encode, int(capacity)
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = {"memory": 0, "disk": 0, "encoded": 0}
        self._warned = False

    def path(self, prompt: str) -> Optional[Path]:
        return self.folder / f"{text_key(self.fingerprint, prompt)}.safetensors" if self.folder is not None else None

    def get(self, prompt: str) -> torch.Tensor:
        """The encoding of ``prompt`` (a CPU tensor)."""
        if prompt in self.memory:
            self.memory.move_to_end(prompt)
            self.hits["memory"] += 1
            return self.memory[prompt]
        path = self.path(prompt)
        if path is not None and path.is_file():
            value = load_tensor(path, "context")
            self.hits["disk"] += 1
        else:
            if path is not None and self.folder.is_dir() and not self._warned:
                self._warned = True
                warnings.warn(f"A caption is not in the prompt-encoding cache {self.folder} (cached for other captions "
                              "or another text encoder); encoding such captions on the fly. Run `diffsynth-ext prepare "
                              "--recipe` with this run's recipe to cache them.", stacklevel=2)
            with torch.no_grad():
                value = self.encode(prompt).detach().cpu()
            self.hits["encoded"] += 1
        self.memory[prompt] = value
        if len(self.memory) > self.capacity:
            self.memory.popitem(last=False)
        return value
