"""``judge``: the hook for judge models (the paper rated videos with a proprietary VLM).

Off by default and nothing here touches the network: it calls a function *you* name (``scoring.judge:
"my_pkg.my_judge:rate"`` or ``--judge my_pkg.my_judge:rate``) as::

    rate(frames=[PIL.Image, ...], prompt="...", subject=PIL.Image, **scoring.judge_options) -> {"name": number}

with the scored frames, the prompt and the subject photo. Every returned number becomes a report column
``judge/<name>`` (None / null for "not rated"). Whether that function runs a local VLM or calls a service is
up to it.
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Callable, Optional

from PIL import Image

from .base import MetricEnv, MetricScore, MetricUnavailable, ScoredVideo, SubjectFace
from .registry import register_metric


@register_metric
class JudgeMetric:
    name = "judge"
    kind = "judge"
    default = False
    description = "a judge model you plug in (scoring.judge: module:function)"

    def __init__(self):
        self.fn: Optional[Callable[..., Any]] = None
        self.options: dict = {}
        self.target = ""

    def load(self, env: MetricEnv) -> None:
        if not env.judge:
            raise MetricUnavailable("the judge metric needs scoring.judge (or --judge) = 'module:function'.")
        module, _, attr = env.judge.partition(":")
        if not module or not attr:
            raise MetricUnavailable(f"judge {env.judge!r}: write it as module:function, e.g. my_judges.vlm:rate.")
        try:
            self.fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise MetricUnavailable(f"judge {env.judge!r} cannot be imported ({type(err).__name__}: {err}).") from err
        self.options, self.target = dict(env.judge_options), env.judge

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "model": self.target, "description": self.description}

    def score(self, video: ScoredVideo, subject: SubjectFace, prompt: str) -> MetricScore:
        ratings = self.fn(frames=[Image.fromarray(f) for f in video.frames], prompt=prompt,
                          subject=Image.fromarray(subject.image), **self.options)
        if not isinstance(ratings, dict):
            raise TypeError(f"The judge {self.target} returned {type(ratings).__name__}; it must return a mapping "
                            "of names to numbers.")
        extras = {}
        for key, value in ratings.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"The judge {self.target} returned {key}={value!r}; values must be numbers or None.")
            extras[str(key)] = None if value is None or not math.isfinite(value) else float(value)
        return MetricScore(value=None, extras=extras)
