"""Running an evaluation: generate-and-score a benchmark (resumable, shardable) or score a folder of videos.

Both write one result per finished case into ``OUTPUT/results/`` and then the report (see `write_reports`).
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..atomic_write import write_text_atomic
from ..outputs import dumps_strict
from .cases import Case, enumerate_cases, select_shard
from .definition import BenchmarkDefinition, ScoringSettings, digest
from .generation import GeneratorSlot
from .manifest import read_manifest
from .metrics import SubjectFace
from .report import RUN_FILE, write_reports
from .results import plan_resume, read_result, result_path, write_result
from .scorer import Scorer
from .strict_fields import DefinitionError
from .subjects import file_digest, find_subject_images, safe_name

Log = Callable[[str], None]


def run_benchmark(definition: BenchmarkDefinition, output: Optional[str | os.PathLike] = None,
                  subjects_dir: Optional[str | os.PathLike] = None, shard: tuple[int, int] = (1, 1),
                  metrics: Optional[Sequence[str]] = None, progress: bool = True, report: bool = True,
                  slot: Optional[GeneratorSlot] = None, log: Log = print) -> Path:
    """Generate and score every case of ``definition`` that this shard owns and that is not finished yet.

    Returns:
        The output folder (``report.json``, ``report.md``, ``report.html`` inside when ``report``).
    """
    output = Path(output or definition.output or Path("outputs") / "eval" / definition.name)
    subjects_dir = subjects_dir or _relative(definition.subjects, definition.source)
    if subjects_dir is None:
        raise DefinitionError("No subjects folder: pass --subjects DIR (or set subjects: in the definition).")
    images = find_subject_images(subjects_dir)
    arms = {arm.name: arm for arm in definition.resolved_arms()}
    scorer = Scorer(definition.scoring, metrics).load()
    subjects, subject_info = _check_subjects(scorer, images, log)
    cases = enumerate_cases(list(arms), list(subjects), definition.prompt_list(), definition.seeds)
    digests = {name: file_digest(s.path) for name, s in subjects.items()}
    keys = {c.id: digest([arms[c.arm].fingerprint(), c.prompt, c.seed, digests[c.subject]]) for c in cases}
    mine = select_shard(cases, shard)
    described = scorer.describe()
    todo, rescore, done = plan_resume(output, mine, keys, described["scoring_key"], changed_input_is_error=True)
    rescore, todo = [c for c in rescore if _video_path(output, c).is_file()], todo + [
        c for c in rescore if not _video_path(output, c).is_file()]
    _write_run(output, {
        "mode": "benchmark", "video_root": str(output.resolve()), "arms": list(arms),
        "benchmark": {"name": definition.name, "description": definition.description, "definition": definition.source,
                      "fingerprint": definition.fingerprint(), "seeds": definition.seeds,
                      "arms": {n: {"description": a.description, "model": asdict(a.model),
                                   "generation": asdict(a.generation)} for n, a in arms.items()}},
        "prompts": {p.id: p.text for p in definition.prompt_list()},
        "scoring": _scoring_info(definition.scoring, described), "subjects": subject_info,
        "cases_planned": [c.id for c in cases]})
    k, n = shard
    log(f"{definition.name}: {len(cases)} cases ({len(arms)} arms x {len(subjects)} subjects x "
        f"{len(definition.prompt_list())} prompts x {len(definition.seeds)} seeds)"
        + (f"; shard {k}/{n} has {len(mine)}" if n > 1 else "")
        + f"; {len(done)} already finished, {len(todo)} to generate, {len(rescore)} to re-score.")
    _standin_note(described, log)
    slot = slot or GeneratorSlot()
    bar = _bar(len(todo) + len(rescore), progress)
    try:
        for case in rescore:
            old = read_result(result_path(output, case)) or {}
            row = scorer.score(case, _video_path(output, case), subjects[case.subject], _video_label(case))
            _finish(output, case, {**row, "generation": old.get("generation")}, keys, described, bar)
        for case in todo:
            row = _generate_and_score(slot, arms[case.arm], case, subjects[case.subject], scorer, output)
            _finish(output, case, row, keys, described, bar)
    finally:
        bar.close()
        slot.release()
    if report:
        paths = write_reports(output)
        log(f"report: {paths['html']}  ({paths['json'].name}, {paths['markdown'].name})")
    return output


def score_videos(videos_dir: str | os.PathLike, subjects_dir: str | os.PathLike, output: str | os.PathLike,
                 scoring: Optional[ScoringSettings] = None, metrics: Optional[Sequence[str]] = None,
                 progress: bool = True, report: bool = True, log: Log = print) -> Path:
    """Score the videos listed in ``videos_dir/manifest.csv`` against the subject photos (resumable)."""
    videos_dir, output = Path(videos_dir), Path(output)
    scoring = scoring or ScoringSettings()
    cases = read_manifest(videos_dir)
    images = find_subject_images(subjects_dir)
    unknown = sorted({c.subject for c in cases} - set(images))
    if unknown:
        raise DefinitionError(f"manifest.csv names subject {unknown[0]!r}, which has no photo in {subjects_dir} "
                              f"(subjects: {', '.join(list(images)[:10])}).")
    scorer = Scorer(scoring, metrics).load()
    used = {name: path for name, path in images.items() if any(c.subject == name for c in cases)}
    subjects, subject_info = _check_subjects(scorer, used, log)
    scored = [c for c in cases if c.subject in subjects]
    keys = {c.id: digest([_fingerprint(videos_dir / c.video), c.prompt, c.seed, file_digest(subjects[c.subject].path)])
            for c in scored}
    described = scorer.describe()
    todo, rescore, done = plan_resume(output, scored, keys, described["scoring_key"], changed_input_is_error=False)
    arms = list(dict.fromkeys(c.arm for c in cases))
    _write_run(output, {
        "mode": "videos", "video_root": str(videos_dir.resolve()), "arms": arms,
        "source": {"videos": str(videos_dir), "subjects": str(subjects_dir)},
        "prompts": {c.prompt_id: c.prompt for c in cases}, "scoring": _scoring_info(scoring, described),
        "subjects": subject_info, "cases_planned": [c.id for c in scored]})
    log(f"{len(cases)} manifest rows; {len(cases) - len(scored)} skipped (subject without a usable face); "
        f"{len(done)} already scored, {len(todo) + len(rescore)} to score.")
    _standin_note(described, log)
    work = sorted(todo + rescore, key=lambda c: c.video)  # each video is decoded once for all its subjects
    bar = _bar(len(work), progress)
    try:
        for case in work:
            row = scorer.score(case, videos_dir / case.video, subjects[case.subject], case.video)
            _finish(output, case, row, keys, described, bar)
    finally:
        bar.close()
    if report:
        paths = write_reports(output)
        log(f"report: {paths['html']}  ({paths['json'].name}, {paths['markdown'].name})")
    return output


# -------------------------------------------------------------------------------------------------- helpers
def _generate_and_score(slot: GeneratorSlot, arm, case: Case, subject: SubjectFace, scorer: Scorer,
                        output: Path) -> dict:
    from ..conditioners.errors import LynxInputError

    generator = slot.get(arm.model)
    path = _video_path(output, case)
    try:
        result = generator.generate(subject.path, case.prompt, settings=arm.generation, seed=case.seed,
                                    progress=False, face_similarity=False)
    except LynxInputError as err:  # e.g. the generator's own detector finds no face in the subject photo
        return {**scorer.blank_row(case, _video_label(case)), "status": "generation_failed",
                "error": f"{type(err).__name__}: {err}", "generation": None}
    result.save(path, overwrite=True)
    row = scorer.score(case, path, subject, _video_label(case))
    face = result.report.get("face", {})
    row["generation"] = {"settings": result.report.get("settings"), "timings": result.report.get("timings"),
                         "conditioning_face": {"num_faces": face.get("num_faces"), "warnings": face.get("warnings")}}
    return row


def _finish(output: Path, case: Case, row: dict, keys: dict, described: dict, bar) -> None:
    row.update(input_key=keys[case.id], scoring_key=described["scoring_key"])
    write_result(output, case, row)
    bar.set_postfix_str(case.id[-60:], refresh=False)
    bar.update(1)


def _check_subjects(scorer: Scorer, images: dict[str, Path], log: Log) -> tuple[dict[str, SubjectFace], list[dict]]:
    subjects, info = {}, []
    for name, path in images.items():
        subject, entry = scorer.subject(name, path)
        info.append(entry)
        if subject is None:
            log(f"subject {name}: skipped ({entry['reason']})")
        else:
            subjects[name] = subject
            if entry.get("note"):
                log(f"subject {name}: {entry['note']}")
    if not subjects:
        raise DefinitionError("No subject photo has a usable face: " + "; ".join(
            f"{e['subject']}: {e['reason']}" for e in info))
    return subjects, info


def _standin_note(described: dict, log: Log) -> None:
    """Say at the start when stand-in face models score: their numbers are no metrics."""
    names = [m["name"] for m in described.get("available", []) if m.get("standin")]
    if described.get("detector_standin") or names:
        parts = (["the face detector"] if described.get("detector_standin") else []) + names
        log(f"note: stand-in face models ({', '.join(parts)}; not face models) score this run: the report marks "
            "their numbers 'stand-in'; they test the plumbing and are not metrics.")


def _scoring_info(settings: ScoringSettings, described: dict) -> dict:
    return {**described, "bootstrap_samples": settings.bootstrap_samples, "confidence": settings.confidence,
            "min_effect": settings.min_effect,
            "baseline": settings.baseline, "primary": settings.primary,
            "contact_sheet_cases": settings.contact_sheet_cases, "frame_sampling": "floor(linspace(0, N-1, k))"}


def _write_run(output: Path, run: dict) -> None:
    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output / RUN_FILE, dumps_strict(run))


def _video_label(case: Case) -> str:
    return f"videos/{safe_name(case.arm)}/{safe_name(case.subject)}__{case.prompt_id}__s{case.seed}.mp4"


def _video_path(output: Path, case: Case) -> Path:
    return output / _video_label(case)


def _fingerprint(path: Path) -> str:
    try:
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        return "missing"


def _relative(path: Optional[str], source: Optional[str]) -> Optional[Path]:
    if path is None:
        return None
    path = Path(os.path.expanduser(path))
    return path if path.is_absolute() or source is None else Path(source).parent / path


def _bar(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="eval", unit="case", disable=not show, dynamic_ncols=True)
