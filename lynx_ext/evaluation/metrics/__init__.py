"""Evaluation metrics behind one registry (``register_metric``); the built-in ones register on import."""
from __future__ import annotations

# Registration order = report order: the paper's two recognisers, OpenS2V's FaceSim-Cur, the offline one, the hook.
from . import facexlib, insightface, curricularface, dlib, judge  # noqa: F401,I001
from .base import Metric, MetricEnv, MetricScore, MetricUnavailable, ScoredVideo, SubjectFace
from .registry import create_metric, metric_names, register_metric

__all__ = ["Metric", "MetricEnv", "MetricScore", "MetricUnavailable", "ScoredVideo", "SubjectFace",
           "create_metric", "metric_names", "register_metric"]
