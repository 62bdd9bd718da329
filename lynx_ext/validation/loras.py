"""A LoRA option, ``PATH`` or ``PATH:ALPHA``: the one parser of the CLI's ``--lora``, the app's LoRA lines and the
Python API's ``loras=`` (every file check then applies to the path alone)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoraSpec:
    """One LoRA: its file and the alpha it is fused with."""

    path: str
    alpha: float = 1.0

    @classmethod
    def parse(cls, text) -> "LoraSpec":
        """``PATH`` or ``PATH:ALPHA`` (a `LoraSpec` is returned as it is). The text after the last ``:`` is the alpha
        when it reads as a number, so Windows drive letters and other colons stay in the path."""
        if isinstance(text, LoraSpec):
            return text
        text = str(text)
        path, _, alpha = text.rpartition(":")
        if path and _is_float(alpha):
            return cls(path, float(alpha))
        return cls(text, 1.0)


def parse_loras(values) -> list[LoraSpec]:
    """``PATH`` / ``PATH:ALPHA`` strings or `LoraSpec`s -> `LoraSpec`s."""
    return [LoraSpec.parse(value) for value in values or ()]


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
