"""Observation helpers for the wiring tests: what each DiT forward receives, seen at the modules.

Everything here watches *modules* (the host DiT's sub-modules and the adapter layers ``pipe.lynx.id_layers[b].to_k_ip``
/ ``pipe.lynx.ref_layers[b].to_k_ref``) through forward hooks, or wraps the host's public ``pipe.model_fn``. Nothing
reads Lynx's internal per-forward state, so the tests that use these helpers survive refactors of the internals;
if the observation points themselves move, adapt them here, in one place.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image

REF_PROMPT = "image of a face"  # the official reference-pass prompt (lynx_spec.md §2.5)


# ----------------------------------------------------------------------------------------------- forward records
@dataclass
class ForwardRecord:
    """What one DiT forward received, block by block.

    ``latents`` / ``time_inputs``: inputs of ``dit.patch_embedding`` / ``dit.time_embedding`` since the previous
    forward (one per sample in a packed forward); ``text``: block -> input of ``cross_attn.k`` (the embedded text);
    ``attn_inputs``: block -> input of ``self_attn`` (in a reference pass: the features it records);
    ``id_tokens`` / ``ref_features``: block -> input of that block's ``to_k_ip`` / ``to_k_ref`` (absent: the
    adapter layer did not run); ``output``: ``dit.head``'s output; ``step``: index of the ``pipe.model_fn`` call
    the forward ran in (None: outside one, e.g. a reference pass or a training forward).
    """

    step: Optional[int]
    latents: list = field(default_factory=list)
    time_inputs: list = field(default_factory=list)
    text: dict = field(default_factory=dict)
    attn_inputs: dict = field(default_factory=dict)
    id_tokens: dict = field(default_factory=dict)
    ref_features: dict = field(default_factory=dict)
    output: Optional[torch.Tensor] = None

    @property
    def is_recomputation(self) -> bool:
        """Gradient checkpointing re-running blocks during ``backward()`` (no new input reached the DiT; blocks
        re-run last to first, so only block 0 lands in such a record)."""
        return not self.latents

    @property
    def adapter_blocks(self) -> tuple[set, set]:
        """(blocks whose ID layer ran, blocks whose Ref layer ran)."""
        return set(self.id_tokens), set(self.ref_features)

    def is_reference_pass(self, dit) -> bool:
        """A forward at t = 0 (the Ref adapter's reference pass; denoising never runs at exactly 0)."""
        return bool(self.time_inputs) and all(torch.equal(t, time_input(dit, 0.0, t)) for t in self.time_inputs)


@dataclass
class StepRecord:
    """One ``pipe.model_fn`` call: the forwards it ran and the prediction it returned to the host's loop."""

    index: int
    records: list
    prediction: torch.Tensor


class WiringProbe:
    """Context manager recording every DiT forward of ``pipe`` (see `ForwardRecord`) and every ``model_fn`` call.

        with WiringProbe(pipe) as probe:
            pipe(...)
        probe.steps[0].records, probe.outside()
    """

    def __init__(self, pipe, keep_attn_inputs: bool = True):
        self.pipe, self.keep_attn_inputs = pipe, keep_attn_inputs
        self.records: list[ForwardRecord] = []
        self.steps: list[StepRecord] = []
        self._pending = {"latents": [], "time": []}
        self._step: Optional[int] = None
        self._handles = []
        self._model_fn = None

    # ------------------------------------------------------------------ hooks
    def _current(self) -> ForwardRecord:
        if not self.records:  # a block ran before any forward started (should not happen)
            self._start()
        return self.records[-1]

    def _start(self) -> None:
        rec = ForwardRecord(step=self._step, latents=self._pending["latents"], time_inputs=self._pending["time"])
        self._pending = {"latents": [], "time": []}
        self.records.append(rec)

    def _pre(self, module, fn):
        def hook(_module, args):
            fn(args[0].detach().clone())  # returns None: the inputs pass on unchanged

        self._handles.append(module.register_forward_pre_hook(hook))

    def __enter__(self) -> "WiringProbe":
        dit = self.pipe.dit
        self._pre(dit.patch_embedding, lambda x: self._pending["latents"].append(x))
        self._pre(dit.time_embedding, lambda x: self._pending["time"].append(x))
        self._handles.append(dit.blocks[0].register_forward_pre_hook(lambda _m, _a: self._start()))
        for b, block in enumerate(dit.blocks):
            self._pre(block.cross_attn.k, lambda x, b=b: self._current().text.setdefault(b, x))
            if self.keep_attn_inputs:
                self._pre(block.self_attn, lambda x, b=b: self._current().attn_inputs.setdefault(b, x))
        self._handles.append(dit.head.register_forward_hook(
            lambda _m, _a, out: setattr(self._current(), "output", out.detach().clone())))
        lynx = getattr(self.pipe, "lynx", None)
        if lynx is not None:
            for b, layer in lynx.id_layers.items():
                self._pre(layer.to_k_ip, lambda x, b=int(b): self._current().id_tokens.setdefault(b, x))
            for b, layer in lynx.ref_layers.items():
                self._pre(layer.to_k_ref, lambda x, b=int(b): self._current().ref_features.setdefault(b, x))
        self._model_fn = inner = self.pipe.model_fn

        def recording_model_fn(*args, **kwargs):
            self._step = index = len(self.steps)
            first = len(self.records)
            try:
                out = inner(*args, **kwargs)
            finally:
                self._step = None
            self.steps.append(StepRecord(index, self.records[first:], out.detach().clone()))
            return out

        self.pipe.model_fn = recording_model_fn
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.pipe.model_fn = self._model_fn

    # ---------------------------------------------------------------- queries
    def outside(self) -> list[ForwardRecord]:
        """Forwards that ran outside ``pipe.model_fn`` (reference passes, training forwards)."""
        return [r for r in self.records if r.step is None]


def time_input(dit, t: float, like: torch.Tensor) -> torch.Tensor:
    """The host's sinusoidal timestep input of ``dit.time_embedding`` for timestep ``t``."""
    from diffsynth.models.wan_video_dit import sinusoidal_embedding_1d

    ts = torch.full((like.shape[0],), float(t), dtype=like.dtype, device=like.device)
    return sinusoidal_embedding_1d(dit.freq_dim, ts).to(like.dtype)


# ---------------------------------------------------------------------------------------- expected values
def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    a, b = a.float().cpu(), b.float().cpu()
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol * max(1.0, float(b.abs().max()))))


def which(x: torch.Tensor, candidates: dict, tol: float = 1e-5) -> str:
    """The name of the one candidate ``x`` equals (within ``tol``), or ``"?"``."""
    hits = [name for name, c in candidates.items() if close(x, c, tol)]
    return hits[0] if len(hits) == 1 else "?"


def which_everywhere(per_block: dict, candidates: dict, tol: float = 1e-5) -> str:
    """Like `which` for ``{block: tensor}``, with ``candidates`` of ``{name: {block: tensor}}``; ``"-"`` if empty.
    Every block must agree, else ``"mixed"``."""
    if not per_block:
        return "-"
    names = {which(x, {n: c[b] for n, c in candidates.items() if b in c}, tol) for b, x in per_block.items()}
    return names.pop() if len(names) == 1 else "mixed"


@torch.no_grad()
def embedded_text(pipe, text: str) -> torch.Tensor:
    """``dit.text_embedding`` of the host's own prompt encoding of ``text`` (what ``cross_attn.k`` receives)."""
    from diffsynth.pipelines.wan_video import WanVideoUnit_PromptEmbedder

    pipe.load_models_to_device(("text_encoder",))
    raw = WanVideoUnit_PromptEmbedder().encode_prompt(pipe, text)
    pipe.load_models_to_device(("dit",))
    return pipe.dit.text_embedding(raw.to(device=pipe.device, dtype=pipe.torch_dtype))


@torch.no_grad()
def official_reference_latent(vae, image: Image.Image, seed: int, dtype=torch.float32, drop: bool = False,
                              device="cpu") -> torch.Tensor:
    """The official reference latent (lynx_spec.md §2.5), computed independently of lynx_ext.

    ``x = uint8/255*2-1`` (``x*0`` when dropped); ``z = mean + exp(0.5*clamp(logvar, -30, 20)) * eps`` with ``eps``
    from a CPU ``torch.Generator().manual_seed(seed)`` in the VAE dtype; then ``(z - latents_mean) / latents_std``.
    The posterior's mean comes from the host's ``vae.encode`` (which returns it normalised), ``logvar`` from the
    encoder's last projection (``conv1``), whose output the host splits into ``(mu, logvar)``.
    """
    x = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255 * 2 - 1
    if drop:
        x = x * 0
    x = x[:, None].to(dtype)
    outs = []
    handle = vae.model.conv1.register_forward_hook(lambda _m, _i, o: outs.append(o))
    try:
        mean_normalised = vae.encode([x], device=device, tiled=False)
    finally:
        handle.remove()
    logvar = outs[-1].chunk(2, dim=1)[1]
    eps = torch.randn(mean_normalised.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    std = vae.std.to(device=logvar.device, dtype=logvar.dtype).view(1, -1, 1, 1, 1)
    noise = torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * eps.to(logvar.device)
    return (mean_normalised.to(logvar.device) + noise / std).to(dtype)


def face_image(size: int = 64, seed: int = 0) -> Image.Image:
    """A deterministic RGB image to use as the aligned reference crop."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------- training (subprocesses)
def prepare_tiny_training_data(root: Path) -> Path:
    """The tiny astronaut training set, prepared with dlib (as tests/test_training.py does). Returns the cache."""
    from lynx_ext.training.data.prepare import prepare_dataset
    from lynx_ext.training.tiny_data import build_tiny_dataset

    dataset = build_tiny_dataset(Path(root) / "dataset")
    prepare_dataset(dataset, Path(root) / "prepared", embedder="dlib", detector="dlib", device="cpu", progress=False,
                    verbose=False)
    return Path(root) / "prepared"


class StepLog(pl.Callback):
    """Appends ``{"step", "epoch", "ids"}`` (global step and the sample ids of the batch) to a JSON-lines file at the
    start of every training batch: where in the run and in the data each step is."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(trainer.global_step), "epoch": int(trainer.current_epoch),
                                "ids": [str(s["id"]) for s in batch]}) + "\n")


class HangAfterStep(pl.Callback):
    """After optimisation step ``step``: touch ``marker`` and wait forever (until the test kills the process)."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = int(step), marker

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            Path(self.marker).write_text(str(os.getpid()))
            while True:
                time.sleep(1)


def tiny_recipe_for(root: Path, generations: bool) -> Path:
    """The tiny recipe over the tiny data in ``root`` (its ``outputs/tiny_data/`` paths replaced); without
    ``generations`` the sample and validation callbacks (and the checkpoint they rank) are left out, for speed."""
    import yaml

    tiny = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "tiny_cpu.yaml"
    config = yaml.safe_load(tiny.read_text().replace("outputs/tiny_data/", f"{root}/"))
    if not generations:
        config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"]
                                          if not c["class_path"].endswith(("SampleVideos", "FaceSimilarityValidation"))
                                          and "val/" not in str(c.get("init_args", {}).get("monitor"))]
    path = root / ("tiny_cpu.yaml" if generations else "tiny_cpu_fast.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
