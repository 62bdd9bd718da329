"""Learning check: does training make the ID adapter carry identity?

A small Wan-architecture DiT (dim 384, 8 blocks) and Lynx-lite ID adapters are trained *together* from scratch on
aligned faces (each training photo augmented into short clips and stills), with the resampler fed by a real
offline face embedder (dlib's 128-d ResNet). Photos held out from training then condition generations; each
generated face is embedded by the same dlib model and matched against the identities' training photos
(retrieval top-1). The same generations with the adapters switched off (``id_scale=0``) give the control.

The latent space is a fixed linear "VAE" with the Wan VAE's interface (8x spatial, 4x temporal, 16 channels): the
top-16 PCA components of 8x8 RGB patches of the training faces, so that no pretrained VAE is needed.

    python benchmarks/learning_check.py prepare --faces FACES_DIR --out runs/learning_check   # CPU, dlib
    python benchmarks/learning_check.py train --out runs/learning_check --minutes 8            # one GPU
    python benchmarks/learning_check.py evaluate --out runs/learning_check                     # CPU, dlib
    python benchmarks/learning_check.py all --faces FACES_DIR --out runs/learning_check
    python benchmarks/learning_check.py sweep --out runs/learning_check --model runs/model --device cpu
        # every fast mode's identity retrieval on a model trained with --save-model runs/model

FACES_DIR holds single-identity photos named ``<identity>_<n>.jpg`` (group_*/partial_* are skipped).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 128
PROMPT = "a photo of a person"


# ------------------------------------------------------------------------------------------------ prepare (CPU)
def prepare(faces: Path, out: Path) -> None:
    """Align every photo (dlib detector + ArcFace template), embed with dlib, split train / held-out."""
    from PIL import Image

    from lynx_ext.conditioners import FaceAnalyzer
    from lynx_ext.conditioners.alignment import arcface_crop
    from lynx_ext.conditioners.dlib_resnet import DlibResNetEmbedder

    analyzer = FaceAnalyzer.from_options(models=None, embedder="dlib", detector="dlib", device="cpu")
    embedder = DlibResNetEmbedder()
    photos = sorted(p for p in faces.glob("*.jpg") if re.fullmatch(r"[a-z_]+_\d+", p.stem))
    crops, embeds, ids, names = [], [], [], []
    for p in photos:
        res = analyzer.analyze(str(p))
        rgb = np.asarray(Image.open(p).convert("RGB"))
        crop = Image.fromarray(arcface_crop(rgb, res.kps, size=224)).resize((SIZE, SIZE), Image.LANCZOS)
        crops.append(np.asarray(crop))
        embeds.append(embedder.embed_aligned(np.asarray(crop)))  # same degradation as generated faces
        ids.append(p.stem.rsplit("_", 1)[0])
        names.append(p.name)
    ids_arr = np.array(ids)
    held = np.zeros(len(ids), bool)
    for ident in sorted(set(ids)):
        idx = np.where(ids_arr == ident)[0]
        if len(idx) >= 2:
            held[idx[-1]] = True  # the last photo of every identity with two or more is held out
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "faces.npz", crops=np.stack(crops), embeds=np.stack(embeds), ids=ids_arr,
                        names=np.array(names), held_out=held)
    print(f"{len(ids)} photos, {len(set(ids))} identities, {held.sum()} held out -> {out / 'faces.npz'}")


# ----------------------------------------------------------------------------------------------- the PCA "VAE"
class PCAVAE:
    """A fixed linear autoencoder with the Wan VAE's interface (8x spatial, 4x temporal, 16 channels)."""

    upsampling_factor, z_dim, patch = 8, 16, 8

    def __init__(self, components: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor):
        self.components, self.mean, self.scale = components, mean, scale  # [16, 192], [192], [16]

    @classmethod
    def fit(cls, images: torch.Tensor) -> "PCAVAE":
        """``images`` [N, 3, H, W] in [-1, 1]."""
        patches = F.unfold(images.float(), cls.patch, stride=cls.patch).transpose(1, 2).reshape(-1, 192)
        mean = patches.mean(0)
        _, s, v = torch.linalg.svd(patches - mean, full_matrices=False)
        comps = v[:16]
        scale = (s[:16] / math.sqrt(patches.shape[0])).clamp_min(1e-4)
        return cls(comps, mean, scale)

    def to(self, device):
        return PCAVAE(self.components.to(device), self.mean.to(device), self.scale.to(device))

    def encode(self, videos, device, tiled=False, **kw) -> torch.Tensor:
        out = []
        for video in videos:  # [3, F, H, W]
            frames = video[:, ::4].permute(1, 0, 2, 3).float().to(device)  # keep frames 0, 4, 8, ...
            t, _, h, w = frames.shape
            p = F.unfold(frames, self.patch, stride=self.patch).transpose(1, 2)  # [T, hw, 192]
            z = (p - self.mean) @ self.components.T / self.scale  # [T, hw, 16]
            out.append(z.permute(2, 0, 1).reshape(16, t, h // self.patch, w // self.patch))
        return torch.stack(out)

    def decode(self, latents: torch.Tensor, device=None, **kw) -> torch.Tensor:
        b, c, t, h, w = latents.shape
        z = latents.float().permute(0, 2, 3, 4, 1).reshape(b * t, h * w, 16)
        p = z * self.scale @ self.components + self.mean  # [BT, hw, 192]
        img = F.fold(p.transpose(1, 2), (h * self.patch, w * self.patch), self.patch, stride=self.patch)
        return img.reshape(b, t, 3, h * self.patch, w * self.patch).permute(0, 2, 1, 3, 4).clamp(-1, 1)


# ---------------------------------------------------------------------------------------------------- training
def augment(base: torch.Tensor, frames: int, g: torch.Generator) -> torch.Tensor:
    """A short synthetic camera move (shift/zoom/rotation/flip/brightness) over one face: [3, F, S, S]."""
    dev = base.device

    def draw():
        r = torch.rand(5, generator=g).tolist()
        return dict(dx=(r[0] - .5) * .12, dy=(r[1] - .5) * .12, s=1 + (r[2] - .5) * .12, a=(r[3] - .5) * .2,
                    b=(r[4] - .5) * .2)

    p0, p1 = draw(), draw()
    flip = -1.0 if torch.rand(1, generator=g).item() < 0.5 else 1.0
    thetas, shifts = [], []
    for k in range(frames):
        u = k / max(frames - 1, 1)
        q = {key: p0[key] * (1 - u) + p1[key] * u for key in p0}
        c, s = math.cos(q["a"]) / q["s"], math.sin(q["a"]) / q["s"]
        thetas.append([[c * flip, -s, q["dx"]], [s * flip, c, q["dy"]]])
        shifts.append(q["b"])
    theta = torch.tensor(thetas, device=dev)  # all frames in one warp
    grid = F.affine_grid(theta, (frames, 3, SIZE, SIZE), align_corners=False)
    img = F.grid_sample(base[None].expand(frames, -1, -1, -1), grid, padding_mode="border", align_corners=False)
    img = (img + torch.tensor(shifts, device=dev)[:, None, None, None]).clamp(-1, 1)
    return img.permute(1, 0, 2, 3).contiguous()


class FixedEncoding:
    """Stands in for the training module's prompt-encoding cache: every prompt gets the same encoding."""

    def __init__(self, context: torch.Tensor):
        self.context = context

    def get(self, prompt: str) -> torch.Tensor:
        return self.context


def build(dev, embedding_dim=128):
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    from lynx_ext.adapters import LynxAdapterConfig, LynxAdapters, ResamplerConfig
    from lynx_ext.pipeline import install

    torch.manual_seed(0)
    pipe = WanVideoPipeline(device=dev, torch_dtype=torch.bfloat16)
    pipe.dit = WanModel(dim=384, in_dim=16, ffn_dim=1536, out_dim=16, text_dim=32, freq_dim=64, eps=1e-6,
                        patch_size=(1, 2, 2), num_heads=8, num_layers=8, has_image_input=False).to(dev)
    res = ResamplerConfig(dim=256, depth=2, dim_head=64, heads=4, num_queries=16, embedding_dim=embedding_dim,
                          output_dim=256)
    config = LynxAdapterConfig.official("lite", dim=384, num_blocks=8, resampler=res)
    install(pipe, LynxAdapters(config, init="zero"))
    pipe.dit.float()
    pipe.lynx.float()
    return pipe


def train(out: Path, minutes: float, batch: int, lr: float, seed: int = 0, dev: str = "cuda", seeds: int = 8,
          base_minutes: float = 0.0, adapter_lr: float | None = None, save_base: Path | None = None,
          load_base: Path | None = None, save_model_to: Path | None = None, gen_steps: int = 30,
          optimizer: str = "torch.optim.AdamW", fp8_base: bool = False) -> None:
    """Train and generate. ``base_minutes > 0`` follows the real recipe: the base DiT is first pre-trained on the
    faces with no identity (adapters absent), then frozen while the adapters train for ``minutes``. With
    ``base_minutes == 0`` base and adapters train together (the earlier protocol).

    ``save_base``: write the pre-trained base (and its log) there; with ``minutes == 0`` stop after the base.
    ``load_base``: start from such a base (frozen) instead of pre-training one, so that several adapter runs can
    share one base. ``optimizer`` (a class path) and ``fp8_base`` (the frozen base stored in float8) are the
    training module's memory options, applied to the adapter phase as a recipe would."""
    from lynx_ext.training.args import AdapterArgs, BaseModelArgs, LossArgs, OptimArgs
    from lynx_ext.training.fp8_base import restore_linears, store_frozen_linears_fp8
    from lynx_ext.training.module import LynxModule
    from lynx_ext.training.optimizers import build_optimizer

    data = np.load(out / "faces.npz")
    train_idx = np.where(~data["held_out"])[0]
    crops = torch.from_numpy(data["crops"]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(dev)
    embeds = torch.from_numpy(data["embeds"]).float().to(dev)
    ids = data["ids"]
    pipe = build(dev, embeds.shape[1])
    base_log, base_steps = [], 0
    if load_base is not None:
        saved = json.loads((load_base / "base.json").read_text())
        pipe.dit.load_state_dict({k[4:]: v.to(dev) for k, v in load_parts(load_base, "base").items()})
        base_minutes, base_log, base_steps = saved["base_minutes"], saved["log"], saved["steps"]
    pipe.vae = PCAVAE.fit(crops[train_idx]).to(dev)
    pipe.scheduler.set_timesteps(1000, training=True, shift=3.0)
    module = LynxModule(base=BaseModelArgs(preset="custom"), adapters=AdapterArgs(variant="lite"),
                        optim=OptimArgs(lr=lr), loss=LossArgs(sigma_shift=3.0), train_dit=True,
                        gradient_checkpointing=False)
    module.pipe = pipe
    module.train()
    torch.manual_seed(seed)
    context = torch.randn(1, 8, 32, device=dev)
    module.text_cache = FixedEncoding(context)  # one prompt, a fixed random encoding (no text encoder here)
    same_id = {i: [j for j in train_idx if ids[j] == ids[i] and j != i] for i in train_idx}
    g = torch.Generator().manual_seed(seed)
    pretrain = base_minutes > 0 and load_base is None
    phases = ([("base", base_minutes, list(pipe.dit.parameters()), lr)] if pretrain else []) + [
        ("adapters" if base_minutes > 0 else "joint", minutes,
         list(pipe.lynx.parameters()) + ([] if base_minutes > 0 else list(pipe.dit.parameters())),
         adapter_lr or lr)]
    t_all, step, log = time.time(), 0, list(base_log)
    for phase, phase_minutes, params, phase_lr in phases:
        if phase != "base" and save_base is not None:
            save_parts({f"dit.{k}": v for k, v in pipe.dit.state_dict().items()}, save_base, "base", torch.bfloat16)
            (save_base / "base.json").write_text(json.dumps({"base_minutes": base_minutes, "log": log, "steps": step,
                                                             "device": torch.cuda.get_device_name() if dev == "cuda"
                                                             else dev}))
            print(f"base after {step} steps -> {save_base}", flush=True)
            if minutes <= 0:
                return
        pipe.dit.requires_grad_(phase != "adapters")
        pipe.lynx.requires_grad_(phase != "base")
        if phase == "adapters" and fp8_base:
            store_frozen_linears_fp8(pipe.dit.blocks)
        opt = build_optimizer(params, optimizer if phase == "adapters" else "torch.optim.AdamW", {}, phase_lr, 0.01,
                              (0.9, 0.999))
        t0, phase_step = time.time(), 0
        while time.time() - t0 < phase_minutes * 60:
            pack = []
            for _ in range(batch):
                i = int(train_idx[torch.randint(len(train_idx), (1,), generator=g)])
                cond = same_id[i] if same_id[i] and torch.rand(1, generator=g).item() < 0.7 else [i]
                j = cond[int(torch.randint(len(cond), (1,), generator=g))]
                drop = phase == "base" or torch.rand(1, generator=g).item() < 0.1  # base: no identity at all
                frames = 5 if torch.rand(1, generator=g).item() < 0.5 else 1
                pack.append({"video": augment(crops[i], frames, g), "prompt": PROMPT,
                             "id_embed": embeds[j] * (0.0 if drop else 1.0)})
            for group in opt.param_groups:
                group["lr"] = phase_lr * min(1.0, (phase_step + 1) / (50 if phase == "adapters" else 200))
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss = module.pack_loss(pack, g)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, phase_step = step + 1, phase_step + 1
            if step % 100 == 0:
                log.append((phase, step, round(time.time() - t_all, 1), float(loss)))
                print(f"{phase} step {step} t={time.time() - t_all:.0f}s loss={float(loss):.4f}", flush=True)
    train_s = time.time() - t_all
    restore_linears(pipe.dit)  # an fp8-stored base back to its dequantised float32 weights (same values)
    if save_model_to is not None:
        save_model(pipe, context, save_model_to)
        print(f"trained model -> {save_model_to}", flush=True)
    samples = generate(pipe, context, embeds, data["held_out"], dev, seeds=seeds, steps=gen_steps)
    np.savez_compressed(out / "samples.npz", **samples)
    (out / "train_log.json").write_text(json.dumps({
        "steps": step, "base_steps": base_steps or None, "train_s": train_s, "batch": batch, "lr": lr, "adapter_lr": adapter_lr or lr,
        "base_minutes": base_minutes, "adapter_minutes": minutes, "optimizer": optimizer, "fp8_base": fp8_base, "protocol": "pretrained base, frozen" if
        base_minutes > 0 else "joint", "log": log,
        "device": torch.cuda.get_device_name() if dev == "cuda" else dev}, indent=1))
    print(f"trained {step} steps in {train_s:.0f} s; samples -> {out / 'samples.npz'}")


@torch.no_grad()
def generate(pipe, context, embeds, held_out, dev, seeds=8, steps=30, cfg=3.0, fast=None, modes=("on", "off")):
    """For every held-out photo: ``seeds`` faces with the adapters on (ID guidance ``cfg``, the zero face's tokens as
    the unconditional branch) and off. ``fast``: a `FastOptions` (fast modes) for the generations with adapters."""
    from diffsynth.diffusion import FlowMatchScheduler

    from lynx_ext.pipeline import LynxGuidance
    from lynx_ext.pipeline.fast_modes import start_run

    pipe.dit.eval()
    pipe.lynx.eval()
    sched = FlowMatchScheduler("Wan")
    out, stats = {}, {}
    for mode in modes:
        scale = 1.0 if mode == "on" else 0.0
        images = []
        for i in np.where(held_out)[0]:
            tok = pipe.lynx.encode_identity(embeds[i][None].expand(seeds, -1))
            tok0 = pipe.lynx.encode_identity(torch.zeros_like(embeds[i][None]).expand(seeds, -1))
            x = torch.randn(seeds, 16, 1, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(int(i))).to(dev)
            sched.set_timesteps(steps, shift=3.0)
            ctx = context.expand(seeds, -1, -1)
            guide = LynxGuidance(cfg, None, ctx, tok0) if scale > 0 else None
            run = start_run(fast, dev, torch.bfloat16) if scale > 0 else None
            for k, t in enumerate(sched.timesteps):
                with torch.autocast(dev, dtype=torch.bfloat16):
                    v = pipe.model_fn(dit=pipe.dit, lynx=pipe.lynx, latents=x, timestep=t[None].to(dev), context=ctx,
                                      lynx_id_tokens=tok, lynx_id_scale=scale, lynx_guidance=guide,
                                      lynx_timesteps=sched.timesteps, lynx_fast=run)
                x = sched.step(v.float(), sched.timesteps[k], x)
            if run is not None:
                stats[int(i)] = run.stats()
            img = pipe.vae.decode(x)[:, :, 0]  # [S, 3, H, W]
            images.append(((img + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy())
        out[mode] = np.stack(images)  # [identities, seeds, H, W, 3]
    generate.last_stats = stats
    return out


# ------------------------------------------------------------------------------------- trained model on disk
def save_parts(state: dict, folder: Path, prefix: str, dtype: torch.dtype, max_bytes: int = 15 * 2**20) -> None:
    """``state`` as ``<prefix>-NN.safetensors`` files of at most ``max_bytes`` each (floats in ``dtype``): small
    enough to come back from a GPU machine one file at a time."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    part, size, n = {}, 0, 0
    for key, value in state.items():
        value = value.detach().to("cpu", dtype if value.is_floating_point() else value.dtype).contiguous()
        if part and size + value.nbytes > max_bytes:
            save_file(part, str(folder / f"{prefix}-{n:02d}.safetensors"))
            part, size, n = {}, 0, n + 1
        part[key], size = value, size + value.nbytes
    save_file(part, str(folder / f"{prefix}-{n:02d}.safetensors"))


def load_parts(folder: Path, prefix: str) -> dict:
    from safetensors.torch import load_file

    state = {}
    for f in sorted(folder.glob(f"{prefix}-*.safetensors")):
        state.update(load_file(str(f)))
    if not state:
        raise FileNotFoundError(f"No {prefix}-*.safetensors in {folder}.")
    return state


def save_model(pipe, context, folder: Path) -> None:
    """The trained DiT, adapters and prompt encoding as safetensors parts (bf16)."""
    state = {f"dit.{k}": v for k, v in pipe.dit.state_dict().items()}
    state.update({f"lynx.{k}": v for k, v in pipe.lynx.state_dict().items()})
    state["context"] = context
    save_parts(state, folder, "model", torch.bfloat16)


def load_model(pipe, folder: Path, dev) -> torch.Tensor:
    """Load what `save_model` wrote into ``pipe`` (float32 weights); returns the prompt encoding."""
    state = load_parts(folder, "model")
    pipe.dit.load_state_dict({k[4:]: v.float() for k, v in state.items() if k.startswith("dit.")})
    pipe.lynx.load_state_dict({k[5:]: v.float() for k, v in state.items() if k.startswith("lynx.")})
    return state["context"].float().to(dev)


# ------------------------------------------------------------------------------- fast modes on the trained model
FAST_MODES = ("exact", "fp8_compute", "step_cache=1.0", "step_cache=2.0", "guidance_reuse=uncond",
              "fp8_compute+step_cache=1.0+guidance_reuse=uncond")


def fast_options(mode: str):
    """``exact``, or ``+``-joined ``fp8_compute`` / ``fuse_projections`` / ``step_cache=T`` / ``guidance_reuse=B``."""
    from lynx_ext.adapters.compute import ComputeOptions
    from lynx_ext.pipeline.fast_modes import FastOptions

    if mode == "exact":
        return None
    compute, rest = {}, {}
    for part in mode.split("+"):
        key, _, value = part.partition("=")
        if key in ("fp8_compute", "fuse_projections"):
            compute["fp8" if key == "fp8_compute" else key] = True
        elif key == "step_cache":
            rest["step_cache"] = float(value)
        elif key == "guidance_reuse":
            rest["guidance_reuse"] = value
        else:
            raise ValueError(f"Unknown fast mode {part!r} in {mode!r}.")
    return FastOptions(ComputeOptions(**compute), **rest)


def sweep(out: Path, model: Path, modes=FAST_MODES, seeds: int = 16, dev: str = "cpu", steps: int = 30) -> dict:
    """Every fast mode's identity retrieval on the trained model (generated on ``dev``, scored with dlib)."""
    data = np.load(out / "faces.npz")
    train_idx = np.where(~data["held_out"])[0]
    crops = torch.from_numpy(data["crops"]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(dev)
    embeds = torch.from_numpy(data["embeds"]).float().to(dev)
    pipe = build(dev, embeds.shape[1])
    pipe.vae = PCAVAE.fit(crops[train_idx]).to(dev)
    context = load_model(pipe, model, dev)
    result = {"device": dev, "seeds": seeds, "steps": steps, "modes": {}}
    with torch.no_grad():
        exact = None
        for mode in modes:
            t = time.time()
            samples = generate(pipe, context, embeds, data["held_out"], dev, seeds=seeds, steps=steps,
                               fast=fast_options(mode),
                               modes=("on", "off") if mode == "exact" else ("on",))
            seconds = time.time() - t
            scores = retrieval(data, samples["on"])
            if mode == "exact":
                exact = samples["on"].astype(np.float64)
                result["adapters_off"] = retrieval(data, samples["off"])
            diff = samples["on"].astype(np.float64) - exact
            scores["rel_image_change_vs_exact"] = float(np.linalg.norm(diff) / np.linalg.norm(exact))
            scores["generation_s"] = round(seconds, 1)
            scores["fast_stats_first_identity"] = next(iter(generate.last_stats.values()), None)
            result["modes"][mode] = scores
            print(mode, json.dumps({k: v for k, v in scores.items() if k != "fast_stats_first_identity"}), flush=True)
    result["chance_top1"] = 1 / len(set(data["ids"]))
    (out / "fast_modes.json").write_text(json.dumps(result, indent=2))
    return result


# ------------------------------------------------------------------------------------------------ evaluation
def retrieval(data, images: np.ndarray) -> dict:
    """Top-1 identity retrieval of generated faces ``[identities, seeds, H, W, 3]`` (one row per held-out photo)
    against the identities' mean training embeddings (dlib), and the mean cosines to the own / other identities."""
    from lynx_ext.conditioners.dlib_resnet import DlibResNetEmbedder

    embedder = retrieval.embedder = getattr(retrieval, "embedder", None) or DlibResNetEmbedder()
    ids, held, embeds = data["ids"], data["held_out"], data["embeds"]
    names = sorted(set(ids))
    gallery = np.stack([embeds[(ids == n) & ~held].mean(0) for n in names])
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    hits, own, other = [], [], []
    for k, ident in enumerate(ids[i] for i in np.where(held)[0]):
        for img in images[k]:
            s = gallery @ embedder.embed_aligned(img)
            hits.append(names[int(np.argmax(s))] == ident)
            own.append(float(s[names.index(ident)]))
            other.append(float(np.mean(np.delete(s, names.index(ident)))))
    return {"top1": float(np.mean(hits)), "n_generated": len(hits), "cos_to_own_identity": float(np.mean(own)),
            "cos_to_other_identities": float(np.mean(other))}


def evaluate(out: Path) -> dict:
    from PIL import Image

    data, samples = np.load(out / "faces.npz"), np.load(out / "samples.npz")
    held = data["held_out"]
    names = sorted(set(data["ids"]))
    result = {"identities": names, "held_out": [str(data["names"][i]) for i in np.where(held)[0]],
              "chance_top1": 1 / len(names)}
    for mode in ("on", "off"):
        r = retrieval(data, samples[mode])
        result[f"top1_adapters_{mode}"] = r["top1"]
        result[f"n_generated_{mode}"] = r["n_generated"]
        result[f"cos_to_own_identity_{mode}"] = r["cos_to_own_identity"]
        result[f"cos_to_other_identities_{mode}"] = r["cos_to_other_identities"]
    # picture grid: held-out photo | 4 samples with adapters | 4 samples without
    rows = []
    for k, i in enumerate(np.where(held)[0]):
        tiles = [data["crops"][i]] + list(samples["on"][k][:4]) + list(samples["off"][k][:4])
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out / "learning_check_grid.png")
    (out / "learning_check.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("prepare", "train", "evaluate", "all", "sweep"))
    ap.add_argument("--faces", type=Path, default=Path("../shared/data/faces"))
    ap.add_argument("--out", type=Path, default=Path("runs/learning_check"))
    ap.add_argument("--minutes", type=float, default=8.0, help="adapter training (joint training without --base-minutes)")
    ap.add_argument("--base-minutes", type=float, default=0.0,
                    help="pre-train the base on the faces without identity first, then freeze it (the real recipe)")
    ap.add_argument("--save-base", type=Path, default=None, help="save the pre-trained base there (--minutes 0: only that)")
    ap.add_argument("--save-model", type=Path, default=None, help="write the trained model there (train)")
    ap.add_argument("--model", type=Path, default=None, help="a model written by --save-model (sweep)")
    ap.add_argument("--modes", nargs="+", default=list(FAST_MODES), help="fast modes to sweep")
    ap.add_argument("--load-base", type=Path, default=None, help="start from a base saved by --save-base (frozen)")
    ap.add_argument("--adapter-lr", type=float, default=None, help="learning rate of the adapter phase (default --lr)")
    ap.add_argument("--optimizer", default="torch.optim.AdamW", help="class path of the adapter phase's optimiser")
    ap.add_argument("--fp8-base", action="store_true", help="adapter phase: the frozen base stored in float8")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=8, help="generations per held-out photo and mode")
    ap.add_argument("--steps", type=int, default=30, help="sampling steps of each generation")
    args = ap.parse_args()
    if args.stage in ("prepare", "all"):
        prepare(args.faces, args.out)
    if args.stage in ("train", "all"):
        train(args.out, args.minutes, args.batch, args.lr, seed=args.seed, dev=args.device, seeds=args.seeds,
              base_minutes=args.base_minutes, adapter_lr=args.adapter_lr, save_base=args.save_base,
              load_base=args.load_base, save_model_to=args.save_model, gen_steps=args.steps,
              optimizer=args.optimizer, fp8_base=args.fp8_base)
    if args.stage in ("evaluate", "all"):
        evaluate(args.out)
    if args.stage == "sweep":
        sweep(args.out, args.model or args.out / "model", args.modes, seeds=args.seeds, dev=args.device,
              steps=args.steps)


if __name__ == "__main__":
    main()
