"""The rules of every generation option (one place): `GenerationSettings`, `LynxSettings`, `install`/`set_scales`,
the CLI, batch files and evaluation sweeps all check their values here.

`check_setting` checks one option's value and returns it normalised (integral floats -> int, lists -> tuples,
blocks sorted); `parse_setting` reads one from text (a CLI value, a CSV cell) first. `check_blocks_fit` checks a
block selection against a DiT's depth.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..errors import LynxCompatibilityError, LynxValueError
from .values import check_bool, check_choice, check_float, check_int, check_text, parse_bool, parse_float, parse_int

SAMPLERS = ("unipc", "euler")
VARIANT_DEFAULT = "default"
"""``cfg_scale_i`` value meaning "the variant's" (None means two-branch guidance)."""

MAX_SEED = 2**63 - 2  # the reference pass uses seed + 1; torch generators take 64-bit seeds
MAX_SIDE = 8192  # pixels
MAX_FRAMES = 2049
MAX_STEPS = 1000  # the schedule has 1000 training timesteps
MAX_FPS = 240
MAX_GUIDANCE = 30.0
MAX_SCALE = 10.0
MAX_SHIFT = 100.0

GUIDANCE_TODO = "The official value is 5 (identity guidance: 2); values above 10 saturate the video."
SCALE_TODO = "1 is the trained strength; 0 switches the branch off."


def check_seed(value: Any, field: str = "seed") -> int:
    return check_int(value, field, 0, MAX_SEED)


def check_guidance(value: Any, field: str) -> float:
    return check_float(value, field, 0.0, MAX_GUIDANCE, todo=GUIDANCE_TODO)


def check_scale(value: Any, field: str) -> float:
    return check_float(value, field, 0.0, MAX_SCALE, todo=SCALE_TODO)


def check_window(value: Any, field: str = "step_window") -> Optional[tuple[float, float]]:
    """``(start, end)`` fractions of the steps with 0 <= start <= end <= 1 (start == end: the adapters never act)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise LynxValueError.of(field, f"needs two fractions (start, end) of the steps, e.g. (0, 0.6); got {value!r}.")
    start = check_float(value[0], f"{field} start", 0.0, 1.0)
    end = check_float(value[1], f"{field} end", 0.0, 1.0)
    if start > end:
        raise LynxValueError.of(field, f"is reversed: start {start:g} is after end {end:g}. Give (start, end) with "
                                       "start <= end, e.g. (0, 0.6).")
    return start, end


def check_blocks(value: Any, field: str = "blocks") -> Optional[tuple[int, ...]]:
    """Sorted distinct block indices (>= 0); an empty selection switches the adapters off."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise LynxValueError.of(field, f"must be a list of block indices such as [0, 1, 2], got {value!r}.")
    return tuple(sorted({check_int(b, f"{field} entry", 0) for b in value}))


def check_blocks_fit(blocks: Optional[tuple[int, ...]], num_blocks: int, field: str = "blocks",
                     model: str = "this DiT") -> None:
    """Refuse block indices beyond the DiT's ``num_blocks`` blocks."""
    outside = [b for b in (blocks or ()) if b >= num_blocks]
    if outside:
        raise LynxCompatibilityError(
            f"{field} {list(outside)} {'is' if len(outside) == 1 else 'are'} outside the blocks of {model} "
            f"(0-{num_blocks - 1}, {num_blocks} blocks). Choose indices below {num_blocks}.")


def check_guidance_pair(cfg_scale: Any, cfg_scale_i: Any) -> None:
    """Identity guidance runs inside text guidance: a ``cfg_scale_i`` needs ``cfg_scale`` > 1 (a rule between two
    settings: the error names both, so a caller renames both, e.g. to ``--cfg-scale-i`` and ``--cfg-scale``)."""
    if cfg_scale_i in (None, VARIANT_DEFAULT) or cfg_scale is None or cfg_scale > 1:
        return
    raise LynxValueError.of("cfg_scale_i", f"{cfg_scale_i:g} (identity guidance) needs cfg_scale > 1, got cfg_scale "
                            f"{cfg_scale:g}. Raise cfg_scale (the official value is 5), or set cfg_scale_i to none for "
                            "two-branch guidance.", others=("cfg_scale_i", "cfg_scale"))


def _optional(check: Callable) -> Callable:
    return lambda value, field: None if value is None else check(value, field)


def _cfg_scale_i(value, field):
    if value is None or value == VARIANT_DEFAULT:
        return value
    if isinstance(value, str):
        raise LynxValueError.of(field, f"must be a number, '{VARIANT_DEFAULT}' or null/none (two-branch guidance), "
                                       f"got {value!r}.")
    return check_guidance(value, field)


def _step_cache(value, field):
    threshold = check_float(value, field, todo="A relative-change threshold; 0.1-1 is typical.")
    if threshold <= 0:
        raise LynxValueError.of(field, f"must be a positive threshold, got {threshold:g}. 0.1-1 is typical; leave it "
                                       "unset for no step cache.")
    return threshold


GUIDANCE_REUSE = ("uncond", "identity", "both")  # which guidance branch a step may reuse from the previous one

RULES: dict[str, Callable[[Any, str], Any]] = {
    "seed": _optional(check_seed),
    "num_frames": _optional(lambda v, f: check_int(v, f, 1, MAX_FRAMES, todo="Frames are of the form 4n+1 "
                                                                             "(e.g. 81); others are rounded.")),
    "height": _optional(lambda v, f: check_int(v, f, 1, MAX_SIDE)),
    "width": _optional(lambda v, f: check_int(v, f, 1, MAX_SIDE)),
    "fps": _optional(lambda v, f: check_int(v, f, 1, MAX_FPS)),
    "num_inference_steps": _optional(lambda v, f: check_int(v, f, 1, MAX_STEPS)),
    "cfg_scale": _optional(check_guidance),
    "cfg_scale_i": _cfg_scale_i,
    "id_scale": _optional(check_scale),
    "ref_scale": _optional(check_scale),
    "step_window": check_window,
    "blocks": check_blocks,
    "sampler": _optional(lambda v, f: check_choice(v, f, SAMPLERS)),
    "sigma_shift": _optional(lambda v, f: check_float(v, f, 1e-3, MAX_SHIFT, todo="The official value is 3.")),
    "negative_prompt": _optional(lambda v, f: check_text(v, f, allow_empty=True)),
    "tiled": check_bool,
    "attention": _optional(lambda v, f: check_choice(v, f, _attention_kernels())),
    "fuse_projections": check_bool,
    "fp8_compute": check_bool,
    "step_cache": _optional(_step_cache),
    "guidance_reuse": _optional(lambda v, f: check_choice(v, f, GUIDANCE_REUSE)),
}


def _attention_kernels() -> tuple[str, ...]:
    from ..adapters.compute import ATTENTION_KERNELS

    return ATTENTION_KERNELS


def check_setting(field: str, value: Any) -> Any:
    """``value`` of generation option ``field`` checked and normalised (see the module docstring)."""
    return RULES[field](value, field)


def parse_blocks(text: Any, field: str = "blocks") -> Optional[tuple[int, ...]]:
    """``'0-19'`` / ``'0,2,4'`` / ``'0-9,20-29'`` -> sorted block indices (a list is checked as is)."""
    if text is None or not isinstance(text, str):
        return check_blocks(text, field)
    blocks: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                a, b = int(a), int(b)
                if b < a:
                    raise LynxValueError.of(field, f"range {part!r} is reversed; write it as '{b}-{a}'.")
                blocks += list(range(a, b + 1))
            else:
                blocks.append(int(part))
        except ValueError as err:
            if isinstance(err, LynxValueError):
                raise
            raise LynxValueError.of(field, f"{text!r}: use indices and ranges such as '0-19' or '0,2,4'.") from None
    return check_blocks(blocks, field)


def _parse_window(text: str, field: str):
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) != 2:
        raise LynxValueError.of(field, f"needs two fractions 'START END' (e.g. '0 0.6'), got {text!r}.")
    return tuple(parse_float(p, field) for p in parts)


def _parse_cfg_i(text: str, field: str):
    value = text.strip().lower()
    if value in ("none", "null", "off"):
        return None
    if value == VARIANT_DEFAULT:
        return VARIANT_DEFAULT
    return parse_float(text, field)


PARSERS: dict[str, Callable[[str, str], Any]] = {
    **{name: parse_int for name in ("seed", "num_frames", "height", "width", "fps", "num_inference_steps")},
    **{name: parse_float for name in ("cfg_scale", "id_scale", "ref_scale", "sigma_shift")},
    "cfg_scale_i": _parse_cfg_i, "step_window": _parse_window, "blocks": parse_blocks, "tiled": parse_bool,
}


def parse_setting(field: str, value: Any) -> Any:
    """A generation option from text (a CLI value, a CSV cell); non-text values pass through unchanged."""
    if isinstance(value, str) and field in PARSERS:
        return PARSERS[field](value, field)
    return value
