"""Samplers: DiffSynth's flow-match Euler (default) and the official Lynx sampler, UniPC with flow sigmas.

`UniPCFlowScheduler` is a from-the-paper implementation of UniPC (Zhao et al. 2023) in its multistep
``bh2`` form with data (x0) prediction, order 2, lower order at the final steps, on the shifted flow-matching
sigma schedule the official Lynx code uses. It exposes the interface DiffSynth's loop calls
(``set_timesteps``, ``timesteps``, ``step``, ``add_noise``) so it drops into `WanVideoPipeline.__call__`.
Its state (previous model outputs, the float32 sample) lives on the object, so one instance serves one
generation at a time.
"""
from __future__ import annotations

import contextlib
import math
from typing import Optional

import torch

from ..validation.generation import SAMPLERS  # the one list of sampler names


class UniPCFlowScheduler:
    """UniPC-bh2 multistep sampler for flow-prediction models (the official Lynx sampler)."""

    def __init__(self, num_train_timesteps: int = 1000, solver_order: int = 2, lower_order_final: bool = True):
        if solver_order not in (1, 2, 3):
            raise ValueError(f"solver_order must be 1, 2 or 3, got {solver_order}.")
        self.num_train_timesteps = num_train_timesteps
        self.solver_order = solver_order
        self.lower_order_final = lower_order_final
        self.training = False
        self.timesteps = torch.tensor([])
        self.sigmas = torch.tensor([])

    # ------------------------------------------------------------------ schedule
    def set_timesteps(self, num_inference_steps: int = 50, denoising_strength: float = 1.0, shift: float = 3.0,
                      training: bool = False, **kwargs):
        if training:
            raise ValueError("UniPC is an inference sampler; train with DiffSynth's flow-match scheduler.")
        n = int(num_inference_steps)
        if n < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {n}.")
        t_min = 1.0 / self.num_train_timesteps
        s = 1.0 - torch.linspace(1.0, t_min, n + 1, dtype=torch.float64)
        s = s * float(denoising_strength)
        shifted = torch.flip(shift * s / (1 + (shift - 1) * s), dims=[0])[:-1]
        self.timesteps = (shifted * self.num_train_timesteps).to(torch.int64)
        self.sigmas = torch.cat([shifted, torch.zeros(1, dtype=torch.float64)])
        self._reset()

    def _reset(self):
        self.step_index = 0
        self.model_outputs: list[Optional[torch.Tensor]] = [None] * self.solver_order
        self.lower_order_nums = 0
        self.last_sample: Optional[torch.Tensor] = None
        self.this_order = 1
        self._sample32: Optional[torch.Tensor] = None
        self._returned: Optional[torch.Tensor] = None

    # ---------------------------------------------------------------- helpers
    def _lambda(self, sigma: float) -> float:
        alpha = 1.0 - sigma
        if sigma == 0:
            return math.inf
        return math.log(alpha) - math.log(sigma)

    def _coefficients(self, h: float, rks: list[float], order: int):
        hh = -h  # data prediction
        h_phi_1 = math.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1 if math.isfinite(hh) else -1.0
        factorial = 1
        b_h = math.expm1(hh)  # bh2
        rows, b = [], []
        rk_t = torch.tensor(rks, dtype=torch.float64)
        for i in range(1, order + 1):
            rows.append(rk_t ** (i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = (h_phi_k / hh - 1 / factorial) if math.isfinite(hh) else -1 / factorial
        return torch.stack(rows), torch.tensor(b, dtype=torch.float64), h_phi_1, b_h

    def _update_terms(self, i_t: int, i_s0: int, order: int):
        """Shared terms of a UniPC update from sigma index ``i_s0`` to ``i_t`` using ``order - 1`` earlier outputs
        (``model_outputs[-1]`` is the output at ``i_s0``, ``model_outputs[-(k+1)]`` the one at ``i_s0 - k``)."""
        sigma_t, sigma_s0 = float(self.sigmas[i_t]), float(self.sigmas[i_s0])
        m0 = self.model_outputs[-1]
        lam_s0 = self._lambda(sigma_s0)
        h = self._lambda(sigma_t) - lam_s0
        rks, d1s = [], []
        for k in range(1, order):
            rk = (self._lambda(float(self.sigmas[i_s0 - k])) - lam_s0) / h
            rks.append(rk)
            d1s.append((self.model_outputs[-(k + 1)] - m0) / rk)
        R, b, h_phi_1, b_h = self._coefficients(h, rks + [1.0], order)
        return sigma_t, sigma_s0, 1.0 - sigma_t, m0, d1s, R, b, h_phi_1, b_h

    def _predictor(self, sample: torch.Tensor, order: int) -> torch.Tensor:
        i0 = self.step_index
        sigma_t, sigma_s0, alpha_t, m0, d1s, R, b, h_phi_1, b_h = self._update_terms(i0 + 1, i0, order)
        x_t = (sigma_t / sigma_s0) * sample - alpha_t * h_phi_1 * m0
        if d1s:
            rhos = torch.tensor([0.5], dtype=torch.float64) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
            pred_res = sum(float(r) * d for r, d in zip(rhos, d1s))
            x_t = x_t - alpha_t * b_h * pred_res
        return x_t

    def _corrector(self, model_t: torch.Tensor, last_sample: torch.Tensor, this_sample: torch.Tensor, order: int):
        i0 = self.step_index
        sigma_t, sigma_s0, alpha_t, m0, d1s, R, b, h_phi_1, b_h = self._update_terms(i0, i0 - 1, order)
        rhos = torch.tensor([0.5], dtype=torch.float64) if order == 1 else torch.linalg.solve(R, b)
        x_t = (sigma_t / sigma_s0) * last_sample - alpha_t * h_phi_1 * m0
        corr = sum(float(r) * d for r, d in zip(rhos[:-1], d1s)) if d1s else 0
        return x_t - alpha_t * b_h * (corr + float(rhos[-1]) * (model_t - m0))

    # -------------------------------------------------------------------- step
    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, **kwargs) -> torch.Tensor:
        """One UniPC step from ``sample`` at ``timestep`` given the flow prediction ``model_output``.

        The sampler keeps the sample in float32 between steps (as the official pipeline keeps its latents) and
        returns it in the caller's dtype.
        """
        if len(self.timesteps) == 0:
            raise RuntimeError("Call set_timesteps before step.")
        self.step_index = int(torch.argmin((self.timesteps.float() - float(timestep)).abs()))
        out_dtype = sample.dtype
        x = self._sample32 if (self._returned is sample and self._sample32 is not None) else sample.float()
        sigma = float(self.sigmas[self.step_index])
        x0 = x - sigma * model_output.float()
        if self.step_index > 0 and self.last_sample is not None:
            x = self._corrector(x0, self.last_sample, x, self.this_order)
        self.model_outputs = self.model_outputs[1:] + [x0]
        order = min(self.solver_order, len(self.timesteps) - self.step_index) if self.lower_order_final else self.solver_order
        self.this_order = min(order, self.lower_order_nums + 1)
        self.last_sample = x
        prev = self._predictor(x, self.this_order)
        self.lower_order_nums = min(self.lower_order_nums + 1, self.solver_order)
        self._sample32 = prev
        self._returned = prev.to(out_dtype)
        return self._returned

    def add_noise(self, original_samples, noise, timestep):
        idx = int(torch.argmin((self.timesteps.float() - float(timestep)).abs()))
        sigma = float(self.sigmas[idx])
        return (1 - sigma) * original_samples + sigma * noise


@contextlib.contextmanager
def use_sampler(pipe, sampler: Optional[str]):
    """Temporarily run ``pipe`` with another sampler (``None``/``"euler"`` = the pipeline's own)."""
    if sampler is None or sampler == "euler":
        yield pipe
        return
    if sampler != "unipc":
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    original = pipe.scheduler
    pipe.scheduler = UniPCFlowScheduler()
    try:
        yield pipe
    finally:
        pipe.scheduler = original
