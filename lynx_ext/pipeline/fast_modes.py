"""Per-generation speed options: how each DiT forward computes, step caching and guidance-branch reuse.

`FastOptions` is what a generation asks for (built from `GenerationSettings`); `FastModeRun` is its state for one
``pipe(...)`` call (created fresh by the pipeline's ``__call__``, so nothing carries over between videos) and is
what `model_fn_lynx` consults once per denoising step.

- ``compute`` (`ComputeOptions`): attention kernel, fused projections, float8 linear layers.
- ``step_cache`` (a threshold): a TeaCache-style rule per guidance branch. At each step the relative L1 change of
  the timestep modulation ``t_mod`` since the previous step (rescaled by the host's TeaCache polynomial where
  the DiT is a Wan2.1-T2V model the host calibrated) is accumulated; while the sum stays under the threshold the
  branch skips its 40 blocks and adds its residual (blocks' output minus input) from the last computed step to
  the new input. The residual includes the Lynx branches, so identity conditioning is kept. The first
  ``step_cache_warmup`` steps and the last step are always computed, and so is any step whose adapter step
  window state differs from the cached residual's.
- ``guidance_reuse`` (``uncond`` / ``identity`` / ``both``): every other step the named guidance branch is not
  run; its prediction is the conditional prediction minus the difference between the two measured at the last
  computed step (the guidance direction changes slowly; the conditional branch is always fresh).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..adapters.compute import EXACT, ComputeOptions, check_available

from ..validation.generation import GUIDANCE_REUSE  # noqa: E402 - the one list of choices


@dataclass(frozen=True)
class FastOptions:
    """What one generation asks for; the default is the exact path."""

    compute: ComputeOptions = EXACT
    step_cache: Optional[float] = None
    step_cache_warmup: int = 1
    guidance_reuse: Optional[str] = None

    def __post_init__(self):
        if self.step_cache is not None and not (float(self.step_cache) > 0):
            raise ValueError(f"step_cache is a positive threshold (e.g. 0.1-0.3), got {self.step_cache!r}.")
        if int(self.step_cache_warmup) < 1:
            raise ValueError(f"step_cache_warmup must be >= 1, got {self.step_cache_warmup!r}.")
        if self.guidance_reuse is not None and self.guidance_reuse not in GUIDANCE_REUSE:
            raise ValueError(f"guidance_reuse must be one of {', '.join(GUIDANCE_REUSE)}; got {self.guidance_reuse!r}.")

    @property
    def is_default(self) -> bool:
        return self == FastOptions()


def calibration(dit) -> Optional[list[float]]:
    """The host's TeaCache rescaling polynomial for this DiT, when it has the shape of a model the host
    calibrated (Wan2.1-T2V-14B / -1.3B); None otherwise (the raw relative change is used)."""
    from diffsynth.pipelines.wan_video import TeaCache

    shapes = {(5120, 40): "Wan2.1-T2V-14B", (1536, 30): "Wan2.1-T2V-1.3B"}
    model_id = shapes.get((getattr(dit, "dim", None), len(getattr(dit, "blocks", ()))))
    if model_id is None or getattr(dit, "has_image_input", False):
        return None
    return list(TeaCache(1, 1.0, model_id).coefficients)


class StepCacheRule:
    """Decides once per step, for all guidance branches, whether the blocks run (see the module docstring)."""

    def __init__(self, threshold: float, warmup: int, coefficients: Optional[list[float]] = None):
        self.threshold, self.warmup, self.coefficients = float(threshold), int(warmup), coefficients
        self.step, self.total = -1, 0
        self.accumulated = 0.0
        self.previous: Optional[torch.Tensor] = None
        self.decisions: dict[int, bool] = {}

    def begin_step(self, index: int, total: int) -> None:
        self.step, self.total = index, total

    def rescale(self, change: float) -> float:
        if self.coefficients is None:
            return change
        value = 0.0
        for c in self.coefficients:  # Horner's rule, highest power first (as numpy.poly1d)
            value = value * change + c
        return value

    def compute_now(self, t_mod: torch.Tensor) -> bool:
        """True when the blocks must run at the current step (memoised per step)."""
        if self.step in self.decisions:
            return self.decisions[self.step]
        t_mod = t_mod.detach().float()
        if self.step < self.warmup or self.step >= self.total - 1 or self.previous is None:
            compute = True
        else:
            change = float((t_mod - self.previous).abs().mean() / self.previous.abs().mean().clamp(min=1e-12))
            self.accumulated += self.rescale(change)
            compute = self.accumulated >= self.threshold
        if compute:
            self.accumulated = 0.0
        self.previous = t_mod
        self.decisions[self.step] = compute
        return compute


class BranchStepCache:
    """One guidance branch's residual, handed to the host's model function as its ``tea_cache`` (the host calls
    ``check`` before the blocks, then ``update`` when skipping or ``store`` after running them)."""

    def __init__(self, rule: StepCacheRule):
        self.rule = rule
        self.residual: Optional[torch.Tensor] = None
        self.residual_active: Optional[bool] = None
        self.active: Optional[bool] = None
        self.input: Optional[torch.Tensor] = None
        self.computed = self.skipped = 0

    def check(self, dit, x: torch.Tensor, t_mod: torch.Tensor) -> bool:
        compute = self.rule.compute_now(t_mod)
        if self.residual is None or self.residual.shape != x.shape or self.residual_active != self.active:
            compute = True
        if compute:
            self.input = x
            self.computed += 1
        else:
            self.skipped += 1
        return not compute

    def update(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual

    def store(self, x: torch.Tensor) -> None:
        self.residual = x - self.input
        self.residual_active = self.active
        self.input = None


@dataclass
class FastModeRun:
    """The state of the fast modes during one generation (one ``pipe(...)`` call)."""

    options: FastOptions
    rule: Optional[StepCacheRule] = None
    caches: dict[str, BranchStepCache] = field(default_factory=dict)
    deltas: dict[str, tuple[torch.Tensor, bool]] = field(default_factory=dict)
    step: int = -1
    reused: int = 0

    @property
    def compute(self) -> ComputeOptions:
        return self.options.compute

    def begin_step(self, dit, index: Optional[int], total: int) -> None:
        """Called by `model_fn_lynx` once per denoising step (``index`` None: no schedule, no caching)."""
        self.step = -1 if index is None else index
        if self.compute.fp8 and dit is not None:
            from .speed import enable_fp8_ffn

            enable_fp8_ffn(dit)
        if self.options.step_cache is not None and index is not None:
            if self.rule is None:
                self.rule = StepCacheRule(self.options.step_cache, self.options.step_cache_warmup, calibration(dit))
            self.rule.begin_step(index, total)

    def host_kwargs(self, branch: str, active: bool) -> dict:
        """Extra keyword arguments for the host model function running ``branch`` (its step cache)."""
        if self.rule is None or self.step < 0:
            return {}
        cache = self.caches.setdefault(branch, BranchStepCache(self.rule))
        cache.active = active
        return {"tea_cache": cache}

    def guided(self, branch: str, cond: torch.Tensor, active: bool, run: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The prediction of guidance ``branch``: run it, or on reuse steps derive it from ``cond``."""
        mode = self.options.guidance_reuse
        wanted = mode is not None and (mode == "both" or mode == branch) and self.step >= 0
        held = self.deltas.get(branch)
        if wanted and self.step % 2 == 1 and held is not None and held[1] == active:
            self.reused += 1
            return cond - held[0]
        pred = run()
        if wanted:
            self.deltas[branch] = (cond - pred, active)
        return pred

    def stats(self) -> dict:
        return {"step_cache": {name: {"computed": c.computed, "skipped": c.skipped} for name, c in self.caches.items()},
                "guidance_reused": self.reused}


def start_run(options: Optional[FastOptions], device, dtype: torch.dtype) -> Optional[FastModeRun]:
    """Fresh state for one generation on ``device``/``dtype``, or None for the exact path."""
    if options is None or options.is_default:
        return None
    check_available(options.compute, device)
    if options.compute.fp8 and torch.device(device).type == "cuda" and dtype != torch.bfloat16:
        raise ValueError(f"fp8 compute on CUDA needs a bf16 pipeline (this one is {dtype}); use --dtype bf16.")
    return FastModeRun(options)
