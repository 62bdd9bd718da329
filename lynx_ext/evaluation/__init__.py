"""Evaluation: the subjects x prompts protocol, face-similarity metrics and reports (``diffsynth-ext eval``).

    from lynx_ext.evaluation import load_definition, run_benchmark, score_videos
    run_benchmark(load_definition("recipes/eval/paper_protocol_14b.yaml"), "outputs/eval", subjects_dir="faces/")
    score_videos("other_system/", "faces/", "outputs/other")    # manifest.csv: video,subject,prompt

See docs/evaluation.md.
"""
from __future__ import annotations

from .cases import Case, enumerate_cases, parse_shard, select_shard
from .definition import BenchmarkDefinition, GenerationSettings, ModelSettings, ScoringSettings, load_definition
from .metrics import Metric, MetricScore, metric_names, register_metric
from .report import build_report, write_reports
from .runner import run_benchmark, score_videos
from ..conditioners.similarity import cosine_similarity
from .strict_fields import DefinitionError

__all__ = [
    "BenchmarkDefinition", "ModelSettings", "GenerationSettings", "ScoringSettings", "load_definition",
    "DefinitionError", "Case", "enumerate_cases", "parse_shard", "select_shard", "run_benchmark", "score_videos",
    "build_report", "write_reports", "Metric", "MetricScore", "register_metric", "metric_names", "cosine_similarity",
]
