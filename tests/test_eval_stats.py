"""Statistics, frame sampling, temporal consistency, aggregation and strict JSON of the evaluation reports."""
from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from lynx_ext.evaluation.aggregate import compare_arms, summarize_rows
from lynx_ext.evaluation.sampling import sample_indices
from lynx_ext.conditioners.similarity import cosine_similarity
from lynx_ext.evaluation.stats import bootstrap_ci, paired_difference, summarize
from lynx_ext.outputs import dumps_strict
from lynx_ext.evaluation.temporal import temporal_consistency


def test_sampling_rule():
    idx = sample_indices(81, 32)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 80 and idx == sorted(set(idx))
    assert idx == [int(np.floor(x)) for x in np.linspace(0, 80, 32)]
    assert sample_indices(5, 32) == [0, 1, 2, 3, 4] and sample_indices(7, None) == list(range(7))
    assert sample_indices(0, 32) == []


def test_cosine_and_temporal_consistency():
    a, b = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    assert cosine_similarity(a, b) == pytest.approx(math.sqrt(0.5))
    assert cosine_similarity(a, None) is None and cosine_similarity(None, b) is None
    c = np.array([0.0, 1.0])
    # frames without a face are passed over: pairs (a, b) and (b, c)
    assert temporal_consistency([a, None, b, c]) == pytest.approx(math.sqrt(0.5))
    assert temporal_consistency([a, None]) is None


def test_summary_leaves_out_missing_values():
    s = summarize([0.5, None, 0.7, float("nan")], samples=500)
    assert s["n"] == 2 and s["n_missing"] == 2 and s["mean"] == pytest.approx(0.6)
    assert s["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summarize([0.4])["ci_low"] is None and summarize([])["mean"] is None


def test_bootstrap_interval_matches_the_normal_approximation():
    values = np.random.default_rng(1).normal(0.6, 0.1, size=400)
    lo, hi = bootstrap_ci(values, samples=4000, confidence=0.95)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert lo == pytest.approx(values.mean() - half, abs=0.003) and hi == pytest.approx(values.mean() + half, abs=0.003)
    assert bootstrap_ci(values, samples=500) == bootstrap_ci(values, samples=500)  # fixed seed: reproducible


def half_width_in_standard_errors(interval, values) -> float:
    """Half the interval's width in units of the bootstrap distribution's spread, std(ddof=0) / sqrt(n)."""
    lo, hi = interval
    return (hi - lo) / 2 / (np.std(values) / math.sqrt(len(values)))


def z(confidence: float) -> float:
    return NormalDist().inv_cdf((1 + confidence) / 2)


# n = 1000 values, 20000 resamples: the bootstrap means are normal to well under 1 %, and each quantile is
# estimated to about 1 % of the half width; 90 % and 95 % intervals differ by 16 % (z 1.645 vs 1.960).
N_VALUES, RESAMPLES, Z_TOLERANCE = 1000, 20000, 0.05
VALUES = np.random.default_rng(2).normal(0.5, 0.2, size=N_VALUES)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_bootstrap_interval_has_the_width_of_its_confidence(confidence):
    """The interval spans the stated share of the resampled means: z(confidence) standard errors either side."""
    lo, hi = bootstrap_ci(VALUES, samples=RESAMPLES, confidence=confidence)
    assert half_width_in_standard_errors((lo, hi), VALUES) == pytest.approx(z(confidence), abs=Z_TOLERANCE)
    assert (lo + hi) / 2 == pytest.approx(VALUES.mean(), abs=0.05 * (hi - lo))


def test_every_summary_defaults_to_a_95_percent_interval():
    """Defaults of each entry point (and of the definitions that label the report) are the 95 % interval."""
    from lynx_ext.evaluation.definition import ScoringSettings

    assert ScoringSettings().confidence == 0.95
    want = z(0.95)
    assert half_width_in_standard_errors(bootstrap_ci(VALUES, samples=RESAMPLES), VALUES) == pytest.approx(
        want, abs=Z_TOLERANCE)
    s = summarize(list(VALUES), samples=RESAMPLES)
    assert half_width_in_standard_errors((s["ci_low"], s["ci_high"]), VALUES) == pytest.approx(want, abs=Z_TOLERANCE)
    base = {f"k{i}": 0.0 for i in range(N_VALUES)}
    other = {f"k{i}": float(v) for i, v in enumerate(VALUES)}
    d = paired_difference(base, other, samples=RESAMPLES)
    assert half_width_in_standard_errors((d["ci_low"], d["ci_high"]), VALUES) == pytest.approx(want, abs=Z_TOLERANCE)


def write_scored_folder(folder, values_a, values_b, confidence):
    """An evaluation output folder (``run.json`` + one result per case) as `diffsynth-ext eval` leaves it."""
    folder.mkdir(parents=True)
    (folder / "results").mkdir()
    scoring = {"bootstrap_samples": RESAMPLES, "confidence": confidence, "available": [{"name": "dlib"}],
               "unavailable": [], "detector": "dlib"}
    run = {"mode": "videos", "arms": ["a", "b"], "scoring": scoring, "video_root": str(folder), "subjects": [],
           "prompts": {"p1": "a prompt"}}
    (folder / "run.json").write_text(json.dumps(run))
    for arm, values in (("a", values_a), ("b", values_b)):
        for i, v in enumerate(values):
            r = row(arm, f"s{i:04d}", "p1", 1, float(v))
            (folder / "results" / f"{arm}_{i:04d}.json").write_text(json.dumps(r))


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_report_intervals_are_computed_at_the_confidence_they_are_labelled_with(tmp_path, confidence):
    """A report's overall and difference intervals are as wide as the confidence its tables name."""
    from lynx_ext.evaluation.report import build_report
    from lynx_ext.evaluation.tables import report_tables

    values_b = VALUES + np.random.default_rng(3).normal(0.0, 0.1, size=N_VALUES)
    write_scored_folder(tmp_path / "out", VALUES, values_b, confidence)
    report = build_report(tmp_path / "out")
    report["assets"] = {"case_plots": {}}
    overall = report["summary"]["overall"]["a"]["face_similarity/dlib"]
    assert overall["n"] == N_VALUES
    width = half_width_in_standard_errors((overall["ci_low"], overall["ci_high"]), VALUES)
    assert width == pytest.approx(z(confidence), abs=Z_TOLERANCE)
    diff = next(r for r in report["comparison"]["rows"] if r["metric"] == "face_similarity/dlib")
    width = half_width_in_standard_errors((diff["ci_low"], diff["ci_high"]), values_b - VALUES)
    assert width == pytest.approx(z(confidence), abs=Z_TOLERANCE)
    tables = {t.key: t for t in report_tables({**report, "cases": []})}
    assert f"{confidence:.0%} CI" in tables["overall"].header
    assert f"{confidence:.0%} CI of difference" in tables["difference"].header


def test_paired_difference_and_noise():
    rng = np.random.default_rng(0)
    base = {f"k{i}": float(v) for i, v in enumerate(rng.normal(0.6, 0.1, 40))}
    better = {k: v + 0.05 + float(rng.normal(0, 0.01)) for k, v in base.items()}
    same = {k: v + float(rng.normal(0, 0.01)) for k, v in base.items()}
    up = paired_difference(base, better)
    assert up["n_pairs"] == 40 and up["difference"] == pytest.approx(0.05, abs=0.01) and up["exceeds_noise"] is True
    assert paired_difference(base, same)["exceeds_noise"] is False
    worse = {k: v - 0.05 + float(rng.normal(0, 0.01)) for k, v in base.items()}
    down = paired_difference(base, worse)  # a worse arm is beyond noise too: the interval lies below 0
    assert down["difference"] == pytest.approx(-0.05, abs=0.01) and down["ci_high"] < 0
    assert down["exceeds_noise"] is True
    partial = paired_difference(base, {"k0": 1.0, "k1": None, "zz": 0.3})
    assert partial["n_pairs"] == 1 and partial["exceeds_noise"] is None


def row(arm, subject, prompt, seed, value, status="ok"):
    return {"case_id": f"{arm}/{subject}/{prompt}/s{seed}", "arm": arm, "subject": subject, "prompt_id": prompt,
            "seed": seed, "status": status, "face_similarity": {"dlib": value}, "temporal_consistency": {"dlib": None},
            "metrics": {"judge": {"value": None, "extras": {"realism": 3.0}}}}


def test_aggregation_per_subject_prompt_seed_and_arms():
    rows = [row("a", "s1", "p1", 1, 0.8), row("a", "s1", "p1", 2, 0.6), row("a", "s2", "p1", 1, None, "no_face"),
            row("a", "s2", "p1", 2, None, "unreadable"),
            row("b", "s1", "p1", 1, 0.9), row("b", "s1", "p1", 2, 0.7), row("b", "s2", "p1", 1, 0.5)]
    summary = summarize_rows(rows, ["a", "b"], samples=200)
    assert summary["columns"][:2] == ["face_similarity/dlib", "temporal_consistency/dlib"]
    assert "judge/realism" in summary["columns"] and "judge" not in summary["columns"]
    overall = summary["overall"]["a"]["face_similarity/dlib"]
    assert overall["mean"] == pytest.approx(0.7) and overall["n"] == 2 and overall["n_missing"] == 2
    assert summary["per_subject"]["a"]["s2"]["face_similarity/dlib"]["mean"] is None
    assert summary["counts"]["a"] == {"cases": 4, "ok": 2, "no_face": 1, "unreadable": 1, "generation_failed": 0}
    assert summary["no_face_cases"]["a"] == ["a/s2/p1/s1"]
    spread = summary["seed_spread"]["a"]["face_similarity/dlib"]
    assert spread["groups"] == 1 and spread["mean_std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    comparison = compare_arms(rows, ["a", "b"], None, samples=200)
    first = next(r for r in comparison["rows"] if r["metric"] == "face_similarity/dlib")
    assert comparison["baseline"] == "a" and first["n_pairs"] == 2 and first["difference"] == pytest.approx(0.1)


def test_strict_json_has_no_nan():
    text = dumps_strict({"a": float("nan"), "b": [np.float32(0.5), np.inf], "c": np.int64(3), "d": np.bool_(True)})

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [0.5, None], "c": 3, "d": True}
