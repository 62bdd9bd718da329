"""Every recipe under recipes/ builds its LightningModule, DataModule, Trainer and callbacks with the recipe's
settings, without loading a weight (``configure_model`` is not called, so the 14B recipes run here too)."""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p for p in ROOT.glob("recipes/**/*.yaml")  # training recipes: not eval definitions or pair files
                 if "trainer" in (yaml.safe_load(p.read_text()) or {}))

# Where an object keeps a recipe key under another name (adapt here when a class renames an attribute).
ALIASES = {"adapters": ("adapter_args",), "optim": ("optim_args",), "loss": ("loss_args",),
           "every_n_train_steps": ("every", "_every_n_train_steps"), "pairs_file": ("_pairs_file",)}
# Keys the test overrides (to run on this machine) rather than checks.
OVERRIDDEN = {"accelerator", "devices", "strategy", "default_root_dir", "init_from"}


def normalise(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return normalise(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def attribute(obj, key: str):
    if isinstance(obj, dict):
        return obj[key]
    for name in (key, *ALIASES.get(key, ())):
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AssertionError(f"{type(obj).__name__} keeps no attribute for the recipe key {key!r}")


def check_settings(obj, settings: dict, where: str) -> None:
    """Every key of ``settings`` (recursively) has its value on ``obj``."""
    for key, want in settings.items():
        if key in OVERRIDDEN:
            continue
        got = attribute(obj, key)
        if isinstance(want, dict) and not isinstance(got, dict):
            check_settings(got, want, f"{where}.{key}")
        else:
            assert normalise(got) == normalise(want), f"{where}.{key}: recipe {want!r}, object {got!r}"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_recipe_builds_its_objects_with_its_settings(recipe, tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    from lynx_ext.cli.fit import make_cli
    from lynx_ext.training.datamodule import LynxDataModule
    from lynx_ext.training.module import LynxModule

    config = yaml.safe_load(recipe.read_text())
    args = ["--config", str(recipe), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.strategy", "auto", "--trainer.default_root_dir", str(tmp_path)]
    if config["model"].get("adapters", {}).get("init_from"):
        export = tmp_path / "stage1.safetensors"
        export.write_bytes(b"")
        args += ["--model.adapters.init_from", str(export)]
    cli = make_cli(args, run=False)
    module, data, trainer = cli.model, cli.datamodule, cli.trainer

    assert isinstance(module, LynxModule) and isinstance(data, LynxDataModule)
    assert module.pipe is None, "building the recipe loaded the model"
    check_settings(module, config["model"], "model")
    check_settings(data, config["data"], "data")
    assert data.seed == config["model"]["seed"], "model.seed is not linked to data.seed"
    trainer_settings = {k: v for k, v in config["trainer"].items()
                        if k not in ("callbacks", "enable_checkpointing", "logger")}
    check_settings(trainer, trainer_settings, "trainer")
    if config["trainer"].get("logger") is True:
        assert isinstance(trainer.logger, TensorBoardLogger), "logger: true is TensorBoard"
    assert trainer.default_root_dir == str(tmp_path)

    specs = config["trainer"].get("callbacks", [])
    for spec in specs:
        module_name, _, class_name = spec["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        matches = [cb for cb in trainer.callbacks if type(cb) is cls]
        assert len(matches) == sum(s["class_path"] == spec["class_path"] for s in specs), spec["class_path"]
        errors = []
        for candidate in matches:  # one instance of the class carries exactly this spec's settings
            try:
                check_settings(candidate, spec.get("init_args", {}), class_name)
                break
            except AssertionError as err:
                errors.append(str(err))
        else:
            raise AssertionError(f"{class_name}: no instance has the recipe's settings: {errors}")
