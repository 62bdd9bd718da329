"""``diffsynth-ext fit``'s first errors point the right way: a recipe's missing data names the step that builds it,
and a GPU recipe on a machine without a GPU says what it needs and which recipe runs on a CPU."""
from __future__ import annotations

from pathlib import Path

import pytest

from lynx_ext.cli import fit

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny" / "tiny_cpu.yaml"
GPU_RECIPES = sorted(p for p in (ROOT / "recipes" / "wan2.1-t2v-14b").rglob("*_stage*.yaml"))


def test_tiny_recipe_without_its_data_names_the_tiny_data_step(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the recipe's relative data paths, with nothing built there
    assert fit.main(["--config", str(TINY)]) == 2
    err = capsys.readouterr().err
    assert "python -m lynx_ext.training.tiny_data outputs/tiny_data" in err, err
    assert "--dataset DIR" not in err  # not the generic prepare of a real dataset
    assert fit.main(["--config", str(TINY), "--data.cache", str(tmp_path / "mine" / "prepared")]) == 2
    err = capsys.readouterr().err
    assert f"python -m lynx_ext.training.tiny_data {tmp_path / 'mine'}`" in err, err
    assert fit.main(["--config", str(TINY), "--data.cache", str(tmp_path / "my_cache")]) == 2  # a cache of your own
    err = capsys.readouterr().err
    assert "diffsynth-ext prepare --extension lynx --dataset DIR" in err and "tiny_data" not in err, err


def test_tiny_data_step_builds_what_the_recipe_reads(tmp_path):
    """The step the message names really writes the recipe's cache and validation pairs."""
    import yaml

    from lynx_ext.training import tiny_data
    from lynx_ext.training.data.prepare import read_prepared

    recipe = yaml.safe_load(TINY.read_text())
    out = tmp_path / "outputs" / "tiny_data"
    assert tiny_data.main(str(out)) == 0
    assert read_prepared(tmp_path / recipe["data"]["cache"])
    pairs = {(c.get("init_args") or {}).get("pairs_file") for c in recipe["trainer"]["callbacks"]} - {None}
    assert pairs and all((tmp_path / p).is_file() for p in pairs)


@pytest.mark.parametrize("recipe", GPU_RECIPES, ids=lambda p: p.name)
def test_gpu_recipe_without_a_gpu_says_what_it_needs(recipe, monkeypatch, capsys):
    from lynx_ext.training import preflight

    if preflight.gpu_present():  # a machine with a GPU would go on to load the 14B model: pretend it has none
        monkeypatch.setattr(preflight, "gpu_present", lambda mps=True: False)
    assert fit.main(["--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "trains on a CUDA GPU" in err and "recipes/tiny/tiny_cpu.yaml" in err, err
    assert "No supported gpu backend" not in err
