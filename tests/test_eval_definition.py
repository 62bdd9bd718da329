"""Benchmark definitions: every shipped recipe loads; bad files fail before any model loads, naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lynx_ext.cli.eval import main as eval_main
from lynx_ext.evaluation import DefinitionError, enumerate_cases, load_definition, parse_shard, select_shard

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes" / "eval").glob("*.yaml"))
DEFINITIONS = [p for p in RECIPES if "prompts" not in p.stem]


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_every_shipped_definition_loads(path):
    definition = load_definition(path)
    arms = definition.resolved_arms()
    assert arms and definition.prompt_list()
    if definition.scoring.baseline:
        assert definition.scoring.baseline in [a.name for a in arms]


def test_paper_protocol_and_grid():
    paper = load_definition(ROOT / "recipes/eval/paper_protocol_14b.yaml")
    assert [a.name for a in paper.resolved_arms()] == ["full", "lite"]
    lite = paper.resolved_arms()[1]
    assert lite.model.variant == "lite" and lite.model.adapters == "hub:lite" and lite.model.preset == "wan2.1-t2v-14b"
    prompts = paper.prompt_list()
    assert len(prompts) == 20 and len({p.id for p in prompts}) == 20 and len({p.text for p in prompts}) == 20
    grid = load_definition(ROOT / "recipes/eval/scale_grid_14b.yaml").resolved_arms()
    assert len(grid) == 6
    by_name = {a.name: a.generation for a in grid}
    assert by_name["official.id_scale=0.5,ref_scale=1"].id_scale == 0.5
    assert by_name["official.id_scale=0.5,ref_scale=1"].ref_scale == 1.0


def write(tmp_path, data, name="bench.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"name": "t", "prompts": ["a person smiling", "a person walking"], "seeds": [1, 2]}


@pytest.mark.parametrize("patch, needle", [
    ({"promts": ["x"]}, "unknown key 'promts'. Did you mean 'prompts'?"),
    ({"scoring": {"frame": 8}}, "scoring: unknown key 'frame'. Did you mean 'frames'?"),
    ({"arms": [{"name": "a", "generation": {"id_scael": 1}}]}, "arms[a].generation: unknown key 'id_scael'"),
    ({"model": {"variant": "medium"}}, "model.variant must be one of 'full', 'lite'"),
    ({"seeds": 42}, "seeds must be a list"),
    ({"seeds": [1, 1]}, "lists a seed twice"),
    ({"scoring": {"frames": 0}}, "scoring.frames must be >= 1"),
    ({"grid": {"idscale": [1, 2]}}, "grid key 'idscale' is not a generation setting"),
    ({"arms": [{"name": "a b"}]}, "may use only letters"),
    ({"arms": [{"name": "a"}, {"name": "a"}]}, "is used twice"),
    ({"scoring": {"baseline": "nope"}}, "scoring.baseline 'nope' is not an arm"),
    ({"prompts": ["A person  smiling", "a person walking", "a PERSON smiling"]}, "duplicates prompt 0 (p01)"),
    ({"prompts": [{"id": "x", "text": "one"}, {"id": "x", "text": "two"}]}, "the prompt id 'x' is used twice"),
    ({"prompts": []}, "no prompts"),
    ({"generation": {"cfg_scale_i": "none"}}, "cfg_scale_i must be a number, 'default' or null"),
])
def test_bad_definitions_are_refused(tmp_path, patch, needle):
    path = write(tmp_path, {**BASE, **patch})
    with pytest.raises(DefinitionError) as err:
        load_definition(path)
    assert needle in str(err.value)


def test_cli_refuses_unknown_key_before_loading_anything(tmp_path, capsys, monkeypatch):
    import lynx_ext.evaluation.generation as generation
    import lynx_ext.evaluation.scorer as scorer

    def boom(*args, **kwargs):
        raise AssertionError("a model was loaded before the definition was checked")

    monkeypatch.setattr(generation, "build_generator", boom)
    monkeypatch.setattr(scorer.Scorer, "load", boom)
    path = write(tmp_path, {**BASE, "generation": {"num_frame": 9}})
    rc = eval_main(["--config", str(path), "--subjects", str(tmp_path), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown key 'num_frame'" in err and "num_frames" in err
    assert not (tmp_path / "out").exists()


def test_prompt_file_is_relative_to_the_definition(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"prompts": [{"id": "a", "text": "one"}, "two"]}))
    definition = load_definition(write(tmp_path, {**BASE, "prompts": "p.yaml"}))
    assert [(p.id, p.text) for p in definition.prompt_list()] == [("a", "one"), ("p02", "two")]


def test_cases_and_shards(tmp_path):
    definition = load_definition(write(tmp_path, {**BASE, "arms": [{"name": "x"}, {"name": "y"}]}))
    arms = [a.name for a in definition.resolved_arms()]
    cases = enumerate_cases(arms, ["s1", "s 2/odd"], definition.prompt_list(), definition.seeds)
    assert len(cases) == 2 * 2 * 2 * 2 and cases[0].id == "x/s1/p01/s1" and cases[-1].arm == "y"
    assert len({c.slug for c in cases}) == len(cases) and all("/" not in c.slug and " " not in c.slug for c in cases)
    shards = [select_shard(cases, (k, 3)) for k in (1, 2, 3)]
    assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in cases)
    assert all(set(a).isdisjoint(b) for i, a in enumerate(shards) for b in shards[i + 1:])
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) == (1, 1)
    for bad in ("0/3", "4/3", "1/0", "a/b", "2"):
        with pytest.raises(DefinitionError):
            parse_shard(bad)


def test_manifest_saved_by_a_spreadsheet_program_is_read(tmp_path):
    """Excel and LibreOffice save CSV as UTF-8 with a byte-order mark and CRLF line ends: the first column is
    still ``video``, and cells keep their non-ASCII text."""
    from lynx_ext.evaluation.manifest import read_manifest

    text = "video,subject,prompt,arm,seed\r\nclip.mp4,zoë,une femme sourit à la caméra,sys_a,3\r\n"
    (tmp_path / "manifest.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (case,) = read_manifest(tmp_path)
    assert (case.video, case.subject, case.prompt, case.arm, case.seed) == (
        "clip.mp4", "zoë", "une femme sourit à la caméra", "sys_a", 3)
