"""`LynxModule`: Lightning training of the Lynx adapters on a frozen DiffSynth Wan2.1 pipeline.

The pipe is built in ``configure_model`` (never in ``__init__``, so recipes parse and validate without loading
weights) and the extension is installed through its registered entry point. A training step packs the pack's
samples into one DiT sequence (`packed_forward`, the only forward training runs) and applies DiffSynth's
flow-matching loss per sample (the host scheduler's noising, target and timestep weight).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal, Optional, Union

import lightning.pytorch as pl
import torch

from ..errors import LynxValueError
from .args import AdapterArgs, BaseModelArgs, LossArgs, OptimArgs


class LynxTrainingError(RuntimeError):
    """Training cannot continue (the message says why and what to do)."""


class LynxModule(pl.LightningModule):
    """Trains ``pipe.lynx`` (and optionally a LoRA on, or all of, the DiT) with DiffSynth's flow-matching loss.

    Args:
        base: the frozen Wan2.1 base model.
        adapters: the adapters being trained (variant, shape, ``init_from``).
        optim: optimiser settings.
        loss: timestep range and weighting.
        lora_rank: > 0 adds a peft LoRA of this rank on ``lora_target_modules`` of the DiT, trained too.
        lora_target_modules: comma-separated DiT module names (DiffSynth's convention).
        train_dit: also train the whole DiT (small-model experiments only).
        gradient_checkpointing: recompute DiT blocks in ``backward()`` (torch's non-reentrant checkpointing);
            ``offload``: also keep each block's saved inputs in pinned host memory (`activation_offload`).
        trainable_dtype: the trained weights (and their gradients) in float32, or in bf16 — half the memory, and
            then only with an optimiser that rounds its updates stochastically (``torchao.optim.AdamW8bit`` with
            ``optimizer_args: {bf16_stochastic_round: true}``), since bf16 drops updates below 1/256 of a weight.
        memory_check: before loading, refuse a recipe whose estimated GPU memory exceeds the card
            (`memory_plan.check_fits`), naming the options that would fit.
        compile: compile the DiT blocks regionally, as ``generate --compile`` does (`pipeline.speed.compile_dit`;
            the Lynx attention forwards stay outside the graphs); checkpointed blocks recompute through the compiled
            graphs. The first steps of each new shape pay the compilation.
        seed: the seed every per-step random draw (timesteps, noise, reference samples) derives from.
    """

    def __init__(
        self,
        base: BaseModelArgs = BaseModelArgs(),
        adapters: AdapterArgs = AdapterArgs(),
        optim: OptimArgs = OptimArgs(),
        loss: LossArgs = LossArgs(),
        lora_rank: int = 0,
        lora_target_modules: str = "q,k,v,o,ffn.0,ffn.2",
        train_dit: bool = False,
        gradient_checkpointing: Union[bool, Literal["offload"]] = True,
        trainable_dtype: Literal["fp32", "bf16"] = "fp32",
        memory_check: bool = True,
        compile: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.base, self.adapter_args, self.optim_args, self.loss_args = base, adapters, optim, loss
        self.lora_rank, self.lora_target_modules = int(lora_rank), lora_target_modules
        self.train_dit, self.gradient_checkpointing, self.seed = train_dit, gradient_checkpointing, int(seed)
        self.trainable_dtype = torch.bfloat16 if trainable_dtype == "bf16" else torch.float32
        self.memory_check = bool(memory_check)
        self.compile = bool(compile)
        if gradient_checkpointing not in (True, False, "offload"):
            raise LynxValueError(f"model.gradient_checkpointing must be true, false or offload, got "
                                 f"{gradient_checkpointing!r}.")
        if base.fp8_storage and train_dit:
            raise LynxValueError("model.base.fp8_storage stores the frozen DiT in float8, but model.train_dit trains "
                                 "it: turn one of them off.")
        if trainable_dtype not in ("fp32", "bf16"):
            raise LynxValueError(f"model.trainable_dtype must be fp32 or bf16, got {trainable_dtype!r}.")
        if trainable_dtype == "bf16" and not optim.optimizer_args.get("bf16_stochastic_round"):
            raise LynxValueError(
                "model.trainable_dtype bf16 loses every update smaller than 1/256 of a weight unless the optimiser "
                "rounds stochastically: use model.optim.optimizer torchao.optim.AdamW8bit with "
                "model.optim.optimizer_args {bf16_stochastic_round: true}, or trainable_dtype fp32.")
        from .optimizers import resolve_optimizer

        resolve_optimizer(optim.optimizer, optim.optimizer_args)  # a missing package or a typo: now, not after loading
        if adapters.init_from is not None and not Path(adapters.init_from).exists():
            raise FileNotFoundError(
                f"adapters.init_from = {adapters.init_from} does not exist. A stage-2 recipe starts from the stage-1 "
                "export: run stage 1 first (its AdapterExport callback writes it) or fix the path.")
        self.save_hyperparameters({"base": asdict(base), "adapters": asdict(adapters), "optim": asdict(optim),
                                   "loss": asdict(loss), "lora_rank": lora_rank, "train_dit": train_dit})
        self.strict_loading = False  # checkpoints hold only the trained weights
        self.pipe = None
        self.activation_offload = None  # a `BlockInputOffload` with gradient_checkpointing: offload
        self.text_cache = None  # a `TextEncodingCache`, made on first use (see `use_encoding_cache`)
        self._encoding_folder: Optional[str] = None

    # ------------------------------------------------------------------ model
    def recipe_fingerprint(self) -> str:
        """Identifies what is being trained; a checkpoint of another recipe is refused on resume."""
        base = {k: v for k, v in asdict(self.base).items() if k != "fp8_storage"}  # storage may change on resume
        key = {"base": base, "adapters": {k: v for k, v in asdict(self.adapter_args).items()
                                                        if k != "init_from"},
               "lora_rank": self.lora_rank, "lora_target_modules": self.lora_target_modules,
               "train_dit": self.train_dit}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def build_base_pipe(self):
        """The frozen base pipeline of ``model.base`` (on the CPU; Lightning moves the module afterwards)."""
        from .build import build_pipe

        return build_pipe(self.base, device="cpu")

    def configure_model(self) -> None:
        if self.pipe is not None:
            return
        from ..extension import load_extensions
        from .build import build_adapter_config

        pipe = self.build_base_pipe()
        ext = load_extensions()["lynx"]
        a = self.adapter_args
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # the adapters' initial draw must not depend on what loading drew before
            if a.init_from:
                ext.install(pipe, a.init_from, variant=a.variant)
            else:
                ext.install(pipe, None, config=build_adapter_config(pipe.dit, a), init=a.init)
        pipe.scheduler.set_timesteps(1000, training=True, shift=self.loss_args.sigma_shift)
        pipe.requires_grad_(False)
        pipe.eval()
        pipe.lynx.to(self.trainable_dtype).requires_grad_(True).train()  # mixed precision computes in bf16
        if self.lora_rank > 0:
            from peft import LoraConfig, inject_adapter_in_model

            cfg = LoraConfig(r=self.lora_rank, lora_alpha=self.lora_rank,
                             target_modules=[m.strip() for m in self.lora_target_modules.split(",")])
            inject_adapter_in_model(cfg, pipe.dit)
            for name, p in pipe.dit.named_parameters():
                if "lora_" in name:
                    p.data = p.data.to(self.trainable_dtype)
                    p.requires_grad_(True)
        if self.train_dit:
            pipe.dit.float().requires_grad_(True).train()
        if self.base.fp8_storage:
            from .fp8_base import store_frozen_linears_fp8

            device = self._training_device(pipe)
            for block in pipe.dit.blocks:  # one block at a time on the training device: no bf16 copy of the model
                store_frozen_linears_fp8(block.to(device))
        if self.gradient_checkpointing == "offload":
            from .activation_offload import BlockInputOffload

            self.activation_offload = BlockInputOffload()
        if self.compile:
            from ..pipeline.speed import compile_dit

            compile_dit(pipe)
        self.pipe = pipe

    def _training_device(self, pipe) -> torch.device:
        """Where training will run: the strategy's device under a Trainer, else where the DiT already is."""
        trainer = getattr(self, "_trainer", None)
        return trainer.strategy.root_device if trainer is not None else next(pipe.dit.parameters()).device

    def use_encoding_cache(self, folder: Optional[str | Path]) -> None:
        """Read prompt encodings from the prepared folder ``folder`` (written by ``diffsynth-ext prepare --recipe``);
        None: encode every caption on the fly. Either way at most a small LRU of encodings stays in CPU memory."""
        self._encoding_folder = str(folder) if folder is not None else None
        self.text_cache = None

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        self.use_encoding_cache(getattr(dm, "cache", None))
        self.park_text_encoder()
        dataset = getattr(dm, "dataset", None)
        wanted = getattr(dataset, "latent_fingerprint", None)
        if wanted is not None:
            from .encoding_cache import vae_fingerprint

            mine = vae_fingerprint(self.pipe)
            if mine != wanted:
                raise LynxTrainingError(
                    f"The VAE latents cached in {dm.cache} were encoded by another VAE or dtype (fingerprint {wanted}, "
                    f"this run {mine}). Run `diffsynth-ext prepare ... --recipe RECIPE --cache-latents` again with "
                    "this run's recipe, or delete that folder's latents/ and encodings.json to encode on the fly.")

    def park_text_encoder(self) -> bool:
        """With prompt encodings cached on disk, keep the text encoder (umT5-XXL: 10.6 GiB in bf16) on the CPU;
        captions missing from the cache are then encoded there. Returns whether it was parked."""
        from .encoding_cache import has_text_encodings

        encoder = getattr(self.pipe, "text_encoder", None)
        if encoder is None or not has_text_encodings(self._encoding_folder):
            return False
        weight = next(encoder.parameters(), None)
        if weight is not None and weight.device.type != "cpu":
            encoder.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return True

    def configure_callbacks(self):
        from ..callbacks.data_progress import DataProgress

        return [DataProgress()]

    def trainable_named_parameters(self):
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def configure_optimizers(self):
        params = [p for _, p in self.trainable_named_parameters()]
        if not params:
            raise LynxTrainingError("Nothing to train: no parameter requires gradients.")
        from .optimizers import build_optimizer

        o = self.optim_args
        opt = build_optimizer(params, o.optimizer, o.optimizer_args, o.lr, o.weight_decay, o.betas)
        warm = max(0, int(o.warmup_steps))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------- step
    def step_generator(self) -> torch.Generator:
        rank = self.global_rank if self.trainer is not None else 0
        return torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.global_step) * 101 + rank)

    def context(self, prompt: str) -> torch.Tensor:
        """The umT5 encoding of ``prompt`` on the pipe's device: from the LRU or the disk cache (`TextEncodingCache`),
        encoded on the fly only when neither has it."""
        if self.text_cache is None:
            from ..pipeline.units import encode_prompt
            from .encoding_cache import TextEncodingCache, text_encoder_fingerprint

            self.text_cache = TextEncodingCache(self._encoding_folder, text_encoder_fingerprint(self.pipe),
                                                lambda text: encode_prompt(self.pipe, text))
        return self.text_cache.get(prompt).to(device=self.pipe.device, dtype=self.pipe.torch_dtype)

    def pack_loss(self, pack: list[dict], generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Mean over the pack's samples of DiffSynth's weighted flow-matching loss, in one packed DiT forward."""
        from ..conditioners.vae_sample import sample_reference_latent
        from ..pipeline.units import DEFAULT_REF_PROMPT
        from .encoding_cache import vae_latents
        from .packed_forward import packed_forward

        pipe, lynx = self.pipe, self.pipe.lynx
        g = generator or self.step_generator()
        dev, dt = pipe.device, pipe.torch_dtype
        sched = pipe.scheduler
        lo = int(self.loss_args.min_timestep_boundary * len(sched.timesteps))
        hi = max(lo + 1, int(self.loss_args.max_timestep_boundary * len(sched.timesteps)))
        noisy, targets, weights, timesteps, contexts, tokens, refs = [], [], [], [], [], [], []
        for sample in pack:
            if sample.get("latents") is not None:  # cached by `prepare --cache-latents`
                latents = sample["latents"].to(device=dev, dtype=dt)
            else:
                latents = vae_latents(pipe, sample["video"])
            t = sched.timesteps[int(torch.randint(lo, hi, (1,), generator=g))]
            noise = torch.randn(latents.shape, generator=g).to(device=dev, dtype=dt)
            noisy.append(sched.add_noise(latents, noise, t))
            targets.append(sched.training_target(latents, noise, t))
            weights.append(sched.training_weight(t) if self.loss_args.timestep_weighting else 1.0)
            timesteps.append(float(t))
            contexts.append(self.context(sample["prompt"]))
            tokens.append(torch.as_tensor(sample["id_embed"]).to(device=dev, dtype=torch.float32)[None])
            if lynx.config.has_ref:
                ref_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
                refs.append(sample_reference_latent(pipe.vae, sample["ref_crop"], ref_seed, dev, dt,
                                                    drop=bool(sample.get("drop_ref"))))
        tokens = list(lynx.encode_identity(torch.cat(tokens)).split(1))  # the pack's embeddings in one resampler call
        feats, ref_lens = None, None
        if refs:
            with torch.no_grad():
                ref_ctx = self.context(DEFAULT_REF_PROMPT)
                feats, ref_lens = packed_forward(pipe, refs, torch.zeros(1), [ref_ctx] * len(refs), capture=True)
                feats = {b: f.detach() for b, f in feats.items()}
        preds = packed_forward(pipe, noisy, torch.tensor(timesteps), contexts, id_tokens=tokens,
                               ref_features=feats, ref_lens=ref_lens,
                               use_gradient_checkpointing=bool(self.gradient_checkpointing) and self.training,
                               activation_offload=self.activation_offload)
        losses = [torch.nn.functional.mse_loss(p.float(), tgt.float()) * w for p, tgt, w in zip(preds, targets, weights)]
        return torch.stack(losses).mean()

    def training_step(self, batch: list[dict], batch_idx: int):
        loss = self.pack_loss(batch)
        if not torch.isfinite(loss):
            raise LynxTrainingError(
                f"The loss became {loss.item()} at step {self.global_step}; training stopped. The last good checkpoint "
                "is kept. Lower optim.lr, check the data, or use precision bf16-mixed instead of fp16.")
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/pack_size", float(len(batch)), batch_size=len(batch))
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad for _, p in self.trainable_named_parameters() if p.grad is not None]
        if grads:  # before clipping: what the data and the learning rate do
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
            self.log("train/grad_norm", norm, batch_size=1)

    # -------------------------------------------------------- checkpointing
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep = {n for n, _ in self.trainable_named_parameters()}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["lynx_recipe_fingerprint"] = self.recipe_fingerprint()
        checkpoint["lynx_adapter_config"] = self.pipe.lynx.config.to_json()
        checkpoint["lynx_optimizer"] = self.optim_args.optimizer

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        mine, theirs = self.recipe_fingerprint(), checkpoint.get("lynx_recipe_fingerprint")
        if theirs != mine:
            raise LynxTrainingError(
                f"This checkpoint was written by another recipe (fingerprint {theirs}, this recipe {mine}): its model, "
                "adapters or LoRA settings differ. Resume with the recipe that wrote it, or start this recipe from "
                "its exported adapters with adapters.init_from.")
        theirs = checkpoint.get("lynx_optimizer", "torch.optim.AdamW")
        if checkpoint.get("optimizer_states") and theirs != self.optim_args.optimizer:
            raise LynxTrainingError(
                f"This checkpoint holds the state of {theirs}, but model.optim.optimizer is "
                f"{self.optim_args.optimizer}: its state cannot be resumed by another optimiser. Resume with "
                f"--model.optim.optimizer {theirs}, or start a new run from the exported adapters "
                "(model.adapters.init_from).")
