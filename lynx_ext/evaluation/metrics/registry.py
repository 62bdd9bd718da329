"""The registry of named metrics: ``register_metric`` adds one (a new metric is one file that calls it)."""
from __future__ import annotations

from typing import Callable, TypeVar

from .base import Metric, MetricUnavailable

_METRICS: dict[str, Callable[[], Metric]] = {}
T = TypeVar("T")


def register_metric(factory: T) -> T:
    """Register a metric class (or any zero-argument factory with a ``name`` attribute); usable as a decorator.

    Raises:
        ValueError: another metric already uses the name.
    """
    name = getattr(factory, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{factory!r} has no 'name'; give the metric class a name attribute.")
    if name in _METRICS and _METRICS[name] is not factory:
        raise ValueError(f"A metric named {name!r} is already registered ({_METRICS[name]!r}).")
    _METRICS[name] = factory
    return factory


def metric_names(default_only: bool = False) -> list[str]:
    """Registered metric names, in registration order."""
    return [n for n, f in _METRICS.items() if not default_only or getattr(f, "default", False)]


def create_metric(name: str) -> Metric:
    """A fresh instance of the metric ``name``."""
    if name not in _METRICS:
        raise MetricUnavailable(f"Unknown metric {name!r}; known metrics: {', '.join(_METRICS)}.")
    return _METRICS[name]()
