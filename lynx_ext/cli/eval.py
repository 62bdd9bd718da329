"""``diffsynth-ext eval --extension lynx``: run a benchmark definition, or score a folder of existing videos."""
from __future__ import annotations

import argparse
from typing import Optional

from .common import add_alias_flag, add_download_source_flag, add_version_flag, run_command

EPILOG = """examples:
  diffsynth-ext eval --extension lynx --config recipes/eval/paper_protocol_14b.yaml --subjects faces/ --output runs/p
  diffsynth-ext eval --extension lynx --config EVAL.yaml --subjects faces/ --output runs/p --shard 2/8   # GPU 2 of 8
  diffsynth-ext eval --extension lynx --config EVAL.yaml --output runs/p --report-only           # merge the shards
  diffsynth-ext eval --extension lynx --videos other_system/ --subjects faces/ --output runs/other --metrics dlib

--videos DIR needs DIR/manifest.csv with the columns video,subject,prompt (optional: arm, seed). Running the same
command again resumes: finished cases are skipped. See docs/evaluation.md.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffsynth-ext eval --extension lynx", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Identity evaluation: generate a subjects x prompts benchmark with Lynx "
                                            "(or take any system's videos) and score face similarity.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="benchmark definition (YAML), see recipes/eval/")
    what.add_argument("--videos", help="folder of existing videos with manifest.csv (video,subject,prompt)")
    p.add_argument("--subjects", help="folder of subject photos (one per subject, named by file stem)")
    p.add_argument("--output", help="output folder (results/, videos/, report.json/.md/.html)")
    p.add_argument("--shard", default=None, metavar="K/N", help="run only shard K of N (1..N), e.g. one per GPU")
    p.add_argument("--metrics", default=None, metavar="A,B",
                   help="metrics to run (facexlib, insightface, curricularface, dlib, judge); a named metric whose "
                        "model file is missing is an error. Default: every default metric whose files are present")
    add_alias_flag(p, "--face-models", default=None,
                   help="folder with the scoring models (det_10g.onnx, w600k_r50.onnx, recognition_arcface_ir_se50.pth,"
                        " glint360k_curricular_face_r101_backbone.bin)")
    p.add_argument("--detector", choices=("auto", "insightface", "dlib"), default=None,
                   help="scoring face detector (default auto: insightface SCRFD if found, else dlib HOG)")
    p.add_argument("--frames", type=int, default=None, help="frames scored per video, evenly spaced (default 32)")
    p.add_argument("--judge", default=None, metavar="MODULE:FUNCTION", help="judge-model hook (off by default)")
    p.add_argument("--device", default=None, help="device of the scoring models (default: cuda if available)")
    add_alias_flag(p, "--report-only", action="store_true",
                   help="only rebuild the report from the results in --output (e.g. after all shards finished)")
    add_download_source_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar, no DiffSynth loader messages")
    add_version_flag(p)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args),
                       "interrupted; every finished case is saved. Run the same command again to resume.")



def run(args) -> int:
    from dataclasses import replace

    from ..evaluation import (ScoringSettings, load_definition, parse_shard, run_benchmark, score_videos,
                              write_reports)

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.metrics is not None and not metrics:
        raise ValueError("--metrics is empty; name at least one metric, e.g. --metrics dlib.")
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}.")
    overrides = {k: v for k, v in (("face_models", args.face_models), ("detector", args.detector),
                                   ("frames", args.frames), ("judge", args.judge), ("device", args.device))
                 if v is not None}
    shard = parse_shard(args.shard)
    if args.videos:
        if args.shard:
            raise ValueError("--shard applies to --config runs; split the manifest to share videos across machines.")
        if not args.subjects or not args.output:
            raise ValueError("--videos needs --subjects DIR and --output DIR.")
        if args.report_only:
            _report_only(args.output, write_reports)
            return 0
        score_videos(args.videos, args.subjects, args.output, scoring=replace(ScoringSettings(), **overrides),
                     metrics=metrics, progress=not args.quiet)
        return 0
    definition = load_definition(args.config)  # every key is checked here, before any model loads
    definition.scoring = replace(definition.scoring, **overrides)
    if args.report_only:
        from pathlib import Path

        _report_only(args.output or definition.output or Path("outputs") / "eval" / definition.name, write_reports)
        return 0
    run_benchmark(definition, output=args.output, subjects_dir=args.subjects, shard=shard, metrics=metrics,
                  progress=not args.quiet)
    return 0


def _report_only(output, write_reports) -> None:
    paths = write_reports(output)
    print(f"report: {paths['html']}  ({paths['json'].name}, {paths['markdown'].name})")
