"""The cases of an evaluation (arm x subject x prompt x seed, or manifest rows) and how shards split them."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .strict_fields import DefinitionError


@dataclass(frozen=True)
class Case:
    """One scored video: ``video`` is set for existing videos, generated into the output folder otherwise."""

    arm: str
    subject: str
    prompt_id: str
    prompt: str
    seed: Optional[int] = None
    video: Optional[str] = None

    @property
    def id(self) -> str:
        """Stable, human-readable id (``arm/subject/prompt/s42`` or ``arm/video/subject``)."""
        if self.video is not None:
            return f"{self.arm}/{self.video}/{self.subject}"
        return f"{self.arm}/{self.subject}/{self.prompt_id}/s{self.seed}"

    @property
    def slug(self) -> str:
        return slug_of(self.id)

    @property
    def group(self) -> str:
        """What the case is paired on across arms: subject, prompt and seed."""
        return f"{self.subject}/{self.prompt_id}/{self.seed}"


def slug_of(case_id: str) -> str:
    """A file-name-safe form of a case id (with a short hash, so different ids never share a file)."""
    safe = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", case_id.replace("/", "__")).strip("_")[:150]
    return f"{safe}-{hashlib.sha1(case_id.encode()).hexdigest()[:8]}"


def enumerate_cases(arms: Sequence[str], subjects: Sequence[str], prompts: Sequence,
                    seeds: Sequence[int]) -> list[Case]:
    """Every arm x subject x prompt x seed, in that nesting order (arms outermost, so one model loads per arm)."""
    return [Case(arm=a, subject=s, prompt_id=p.id, prompt=p.text, seed=int(seed))
            for a in arms for s in subjects for p in prompts for seed in seeds]


def parse_shard(text: Optional[str]) -> tuple[int, int]:
    """``"K/N"`` (1 <= K <= N) -> ``(K, N)``; None -> ``(1, 1)``."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise DefinitionError(f"--shard {text!r}: write K/N, e.g. 1/4 for the first of four shards.")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise DefinitionError(f"--shard {text!r}: shards are numbered 1..N (got shard {k} of {n}).")
    return k, n


def select_shard(cases: Sequence[Case], shard: tuple[int, int]) -> list[Case]:
    """Shard K of N takes every N-th case starting at the K-th (round robin, so every shard gets every arm)."""
    k, n = shard
    return [case for i, case in enumerate(cases) if i % n == k - 1]
