"""How the adapted attention forwards compute: attention kernel, fused projections, FP8 linear layers.

`ComputeOptions` are set for the duration of one DiT forward (`compute_options`, a context variable, so nothing
leaks into the next forward or another thread). The default, `EXACT`, is the host's own computation. The
options change *how* the same function is computed:

- ``attention``: which kernel runs the attentions of the DiT — ``auto`` (the host's choice), ``flash`` /
  ``cudnn`` / ``efficient`` / ``math`` (PyTorch SDPA trying that backend first, the others only for shapes it
  cannot run) or ``sage`` (SageAttention's 8-bit QK kernel for the blocks' own attentions, a fast mode: not
  exact).
- ``fuse_projections``: the self-attention's q/k/v as one matmul over the three weights concatenated per forward
  (the parameters stay where they are: LoRA fusing, VRAM maps and state dicts see the host's layers), the text
  k/v and each adapter's k/v pairs likewise.

Compiled pipelines (`lynx_ext.pipeline.speed.compile_dit`) also compute the norms and RoPE through the compiled
`kernel`s: RoPE in float32 real arithmetic instead of the host's float64 complex one (equal after the cast back
to bf16 up to rounding).
- ``fp8``: the DiT's large linear layers (self-attention q/k/v/o, cross-attention q/o, FFN) in float8 e4m3 with
  per-row scales (`torch._scaled_mm` on CUDA): a fast mode, not exact.
"""
from __future__ import annotations

import contextlib
import contextvars
import weakref
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

SDPA_BACKENDS = ("flash", "cudnn", "efficient", "math")
ATTENTION_KERNELS = ("auto",) + SDPA_BACKENDS + ("sage",)
FP8_MAX = 448.0  # largest finite float8 e4m3fn value


@dataclass(frozen=True)
class ComputeOptions:
    """How one DiT forward computes (see the module docstring)."""

    attention: str = "auto"
    fuse_projections: bool = False
    fp8: bool = False

    def __post_init__(self):
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_KERNELS)}; got {self.attention!r}.")

    @property
    def own_projections(self) -> bool:
        """Whether the projections leave the host's modules (fused and/or float8)."""
        return self.fuse_projections or self.fp8


EXACT = ComputeOptions()
_CURRENT: contextvars.ContextVar[ComputeOptions] = contextvars.ContextVar("lynx_compute_options", default=EXACT)


def current_options() -> ComputeOptions:
    return _CURRENT.get()


@contextlib.contextmanager
def compute_options(options: ComputeOptions) -> Iterator[None]:
    """Run the enclosed DiT forwards with ``options`` (PyTorch SDPA trying the chosen backend first)."""
    token = _CURRENT.set(options)
    try:
        if options.attention in SDPA_BACKENDS:
            from torch.nn.attention import SDPBackend

            backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                       "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[options.attention]
            with _sdpa_preferring(backend):
                yield
        else:
            yield
    finally:
        _CURRENT.reset(token)


def _sdpa_preferring(backend):
    """SDPA with ``backend`` tried first; the others stay as fallbacks for shapes it cannot run (PyTorch without
    backend priorities: ``backend`` alone)."""
    import inspect

    from torch.nn.attention import SDPBackend, sdpa_kernel

    if "set_priority" not in inspect.signature(sdpa_kernel).parameters:
        return sdpa_kernel([backend])
    order = [backend] + [b for b in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                                     SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH) if b != backend]
    return sdpa_kernel(order, set_priority=True)


def check_available(options: ComputeOptions, device: torch.device) -> None:
    """A clear error for options this device or installation cannot run."""
    device = torch.device(device)
    if options.attention in ("cudnn", "efficient", "sage") and device.type != "cuda":
        raise ValueError(f"attention={options.attention!r} needs a CUDA device (this pipeline runs on {device}); "
                         "use auto, flash or math.")
    if options.attention == "sage":
        try:
            import sageattention  # noqa: F401
        except ImportError:
            raise ValueError("attention='sage' needs the sageattention package (pip install sageattention).") from None


# ------------------------------------------------------------------------------------------------ attention
def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Attention on ``[B, S, heads*head_dim]`` tensors with the current kernel (SDPA backends are chosen by the
    `compute_options` context around the forward; ``sage`` calls SageAttention)."""
    if current_options().attention == "sage":
        from sageattention import sageattn

        out = sageattn(*(t.unflatten(2, (num_heads, -1)) for t in (q, k, v)), tensor_layout="NHD", is_causal=False)
        return out.flatten(2)
    from diffsynth.models.wan_video_dit import flash_attention

    return flash_attention(q=q, k=k, v=v, num_heads=num_heads)


# ------------------------------------------------------------------------------------------------ RoPE / norms
_ROPE_CACHE: dict = {}


def rope_table(freqs: torch.Tensor) -> torch.Tensor:
    """The host's complex RoPE table ``[S, 1, d/2]`` as float32 ``[S, 1, d/2, 2]`` (cos, sin), cached per table."""
    key = (freqs.data_ptr(), freqs.shape, freqs.device)
    hit = _ROPE_CACHE.get("table")
    if hit is not None and hit[0] == key and hit[1]() is freqs:
        return hit[2]
    table = torch.view_as_real(freqs).to(torch.float32).contiguous()
    _ROPE_CACHE["table"] = (key, weakref.ref(freqs), table)
    return table


def rope_fp32(x: torch.Tensor, table: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The host's `rope_apply` in float32 real arithmetic (the host computes it in float64 complex numbers)."""
    xf = x.float().unflatten(2, (num_heads, -1, 2))
    x1, x2 = xf[..., 0], xf[..., 1]
    cos, sin = table[..., 0], table[..., 1]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(2).to(x.dtype)


def rms(x: torch.Tensor, weight: torch.Tensor, eps: float, torch_norm: bool = False) -> torch.Tensor:
    """The host `RMSNorm` forward on tensors (``torch_norm``: its ``use_torch_norm`` branch)."""
    if torch_norm:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)).to(x.dtype) * weight


def normed_rope(q, k, wq, wk, eps: float, torch_norm: bool, table, num_heads: int):
    """Self-attention after its projections: ``norm_q(q)``, and RoPE of it and of ``norm_k(k)``."""
    q = rms(q, wq, eps, torch_norm)
    return q, rope_fp32(q, table, num_heads), rope_fp32(rms(k, wk, eps, torch_norm), table, num_heads)


def rms_norm(norm: nn.Module, x: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """A host `RMSNorm` module applied through `kernel("rms")`."""
    return kernel("rms", compiled)(x, norm.weight, norm.eps, bool(getattr(norm, "use_torch_norm", False)))


# ------------------------------------------------------------------------------------------------ kernels
_COMPILED: dict = {}


def kernel(name: str, compiled: bool = False):
    """An elementwise piece of the attention forwards; its compiled form when ``compiled`` (see `compile_kernels`)."""
    return (_COMPILED.get(name) if compiled else None) or _KERNELS[name]


def compile_kernels(**compile_kwargs) -> None:
    """Compile the elementwise pieces (norms, RoPE, float8 quantisation) with ``torch.compile``, once per process:
    they are pure tensor functions, so every block shares one compiled graph per input layout."""
    for name, fn in _KERNELS.items():
        if name not in _COMPILED:
            _COMPILED[name] = torch.compile(fn, dynamic=True, **compile_kwargs)


# ------------------------------------------------------------------------------------------------ projections
@dataclass
class _Fp8Weight:
    key: tuple
    weight: torch.Tensor  # [out, in] float8_e4m3fn
    scale: torch.Tensor  # [out, 1] float32


_FP8_WEIGHTS: "weakref.WeakKeyDictionary[nn.Linear, _Fp8Weight]" = weakref.WeakKeyDictionary()


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row float8 e4m3 quantisation: ``x ~= q * scale`` with ``scale`` ``[rows, 1]`` float32."""
    xf = x.float()
    scale = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    return (xf / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale


def fp8_weight(linear: nn.Linear) -> _Fp8Weight:
    """The float8 copy of ``linear.weight``, made once and remade whenever the weight changes (LoRA fusing,
    `load_state_dict`, an optimiser step: anything that replaces or writes the tensor in place)."""
    w = linear.weight
    key = (w.data_ptr(), w._version, w.device, w.dtype, tuple(w.shape))
    entry = _FP8_WEIGHTS.get(linear)
    if entry is None or entry.key != key:
        with torch.no_grad():
            q, scale = quantize_rows(w.detach())
        entry = _Fp8Weight(key, q, scale)
        _FP8_WEIGHTS[linear] = entry
    return entry


def fp8_matmul(x: torch.Tensor, w8: torch.Tensor, w_scale: torch.Tensor, bias: Optional[torch.Tensor],
               compiled: bool = False) -> torch.Tensor:
    """``x @ W.T + b`` with ``x`` quantised per row and ``W`` given as float8 rows with their scales."""
    shape = x.shape
    x8, x_scale = kernel("quantize_rows", compiled)(x.reshape(-1, shape[-1]))
    if x.is_cuda:
        out = torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale.t(), out_dtype=x.dtype)
    else:  # the same arithmetic without the Hopper kernel (CPU tests)
        out = ((x8.float() * x_scale) @ (w8.float() * w_scale).t()).to(x.dtype)
    if bias is not None:
        out = out + bias
    return out.reshape(*shape[:-1], w8.shape[0])


def check_plain_linear(linear: nn.Module, what: str) -> None:
    if type(linear) is not nn.Linear:
        raise ValueError(f"{what} needs plain torch Linear layers with their weights on the device; this DiT's are "
                         f"{type(linear).__name__} (VRAM management). Drop --vram-limit/--offload, or this option.")


def project(x: torch.Tensor, linears: Sequence[nn.Linear], options: Optional[ComputeOptions] = None,
            fp8: bool = False, compiled: bool = False) -> list[torch.Tensor]:
    """``[lin(x) for lin in linears]``; fused into one matmul when ``options.fuse_projections``, in float8 when
    ``fp8`` (and ``options.fp8``)."""
    options = options or current_options()
    fp8 = fp8 and options.fp8
    if not options.fuse_projections and not fp8:
        return [lin(x) for lin in linears]
    for lin in linears:
        check_plain_linear(lin, "fuse_projections / fp8 compute")
    biases = [lin.bias for lin in linears]
    has_bias = all(b is not None for b in biases)
    if any(b is not None for b in biases) and not has_bias:
        return [lin(x) for lin in linears]  # mixed bias: not worth a special case
    groups = [list(linears)] if options.fuse_projections else [[lin] for lin in linears]
    outs = []
    for group in groups:
        bias = torch.cat([lin.bias for lin in group]) if has_bias and len(group) > 1 else (
            group[0].bias if has_bias else None)
        if fp8:
            entries = [fp8_weight(lin) for lin in group]
            w8 = entries[0].weight if len(entries) == 1 else torch.cat(
                [e.weight.view(torch.uint8) for e in entries]).view(torch.float8_e4m3fn)
            ws = entries[0].scale if len(entries) == 1 else torch.cat([e.scale for e in entries])
            y = fp8_matmul(x, w8, ws, bias, compiled)
        else:
            w = group[0].weight if len(group) == 1 else torch.cat([lin.weight for lin in group])
            y = F.linear(x, w, bias)
        outs += list(y.split([lin.out_features for lin in group], dim=-1)) if len(group) > 1 else [y]
    return outs


def fp8_linear_forward(self: nn.Linear, x: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """Per-instance forward of a DiT linear layer (FFN): float8 while ``fp8`` compute is on, else ``nn.Linear``'s."""
    if current_options().fp8:
        entry = fp8_weight(self)
        return fp8_matmul(x, entry.weight, entry.scale, self.bias, compiled)
    return F.linear(x, self.weight, self.bias)


_KERNELS = {"rms": rms, "normed_rope": normed_rope, "quantize_rows": quantize_rows}
