"""Training never loses or hides a user's results: every run writes under its own version folder (a re-run never
overwrites an earlier run's exports), `fit` ends by saying where everything is, and a run resumed after a kill
logs every step from its checkpoint on."""
from __future__ import annotations

import glob
import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from safetensors.torch import load_file

from test_training import base_args, cache, recipe_of  # noqa: F401  (the module-scoped tiny data fixture)


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


def versions(root: Path) -> list[Path]:
    return sorted((root / "lightning_logs").glob("version_*"))


def test_a_rerun_never_overwrites_the_first_runs_exports_and_fit_says_where_they_are(cache, tmp_path, capsys,  # noqa: F811
                                                                                    monkeypatch):
    from lynx_ext.cli.fit import main

    monkeypatch.chdir(tmp_path)
    run = Path("run")
    assert main(["--config", str(recipe_of(cache)), *base_args(cache, run, steps=2)]) == 0
    first_out = capsys.readouterr().out
    v0 = run / "lightning_logs" / "version_0"
    first = load_file(str(v0 / "adapters" / "last" / "lynx_adapters.safetensors"))
    assert (v0 / "adapters" / "step-0000002" / "lynx_adapters.safetensors").is_file()
    latest = run / "adapters" / "latest"
    assert latest.resolve() == (v0 / "adapters" / "last").resolve()
    # The end of `fit` names the run's folder, checkpoints, exports, log dir, config, and how to repeat/resume it.
    for line in (f"run folder:", f"{v0}", f"{v0 / 'checkpoints'}", f"{v0 / 'adapters'}", f"{run / 'adapters' / 'latest'}",
                 f"tensorboard --logdir {v0}",
                 f"diffsynth-ext fit --extension lynx --config {v0 / 'config.yaml'}",
                 f"--ckpt_path {v0 / 'checkpoints' / 'last.ckpt'}"):
        assert line in first_out, (line, first_out[-2000:])

    # The saved config repeats the run into version_1, with other weights (another learning rate): version_0's
    # exports stay as they were, and adapters/latest now leads to version_1's.
    assert main(["--config", str(v0 / "config.yaml"), "--model.optim.lr", "0.05"]) == 0
    second_out = capsys.readouterr().out
    v1 = run / "lightning_logs" / "version_1"
    assert [p.name for p in versions(run)] == ["version_0", "version_1"]
    second = load_file(str(v1 / "adapters" / "last" / "lynx_adapters.safetensors"))
    again = load_file(str(v0 / "adapters" / "last" / "lynx_adapters.safetensors"))
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the second run's export differs ...
    assert all(torch.equal(first[k], again[k]) for k in first)  # ... and the first run's is untouched
    step = load_file(str(v0 / "adapters" / "step-0000002" / "lynx_adapters.safetensors"))
    assert all(torch.equal(first[k], step[k]) for k in first)
    assert latest.resolve() == (v1 / "adapters" / "last").resolve()
    assert all(torch.equal(second[k], v) for k, v in load_file(str(latest / "lynx_adapters.safetensors")).items())
    assert f"{v1 / 'adapters'}" in second_out and f"{v0}" not in second_out.replace(f"{v0}/", "")


def test_latest_pointer_is_swapped_atomically_and_kept_as_a_copy_without_symlinks(tmp_path):
    from lynx_ext.callbacks.adapter_export import point_latest

    a, b = tmp_path / "v0" / "last", tmp_path / "v1" / "last"
    for folder, text in ((a, "a"), (b, "b")):
        folder.mkdir(parents=True)
        (folder / "x.txt").write_text(text)
    latest = tmp_path / "adapters" / "latest"
    point_latest(latest, a)
    assert latest.is_symlink() and (latest / "x.txt").read_text() == "a"
    point_latest(latest, b)
    assert latest.is_symlink() and (latest / "x.txt").read_text() == "b"
    assert not os.path.isabs(os.readlink(latest))  # relative: the run folder can be moved as a whole
    assert sorted(p.name for p in latest.parent.iterdir()) == ["latest"]  # no temporary left
    latest.unlink()
    latest.mkdir()  # a copy made where symlinks did not work stays a copy, refreshed
    (latest / "x.txt").write_text("old")
    point_latest(latest, a)
    assert not latest.is_symlink() and (latest / "x.txt").read_text() == "a"
    assert (a / "x.txt").read_text() == "a" and (b / "x.txt").read_text() == "b"  # the exports are untouched


def scalars(folders: list[Path], tag: str) -> list[tuple[int, float]]:
    """Every (step, value) of ``tag`` in the TensorBoard event files of ``folders``, sorted."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = []
    for folder in folders:
        for path in glob.glob(str(folder / "events.out.tfevents.*")):
            events = EventAccumulator(path)
            events.Reload()
            if tag in events.Tags()["scalars"]:
                found += [(e.step, e.value) for e in events.Scalars(tag)]
    return sorted(found)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no `except Exception` catches it)."""


@pytest.mark.parametrize("every", [1, 3])
def test_resumed_log_has_every_step_once_after_a_kill_while_last_ckpt_was_written(cache, tmp_path, monkeypatch,  # noqa: F811
                                                                                  every, capsys):
    """The run dies while writing ``last.ckpt`` at step 2, after ``step0000002.ckpt`` is complete: that checkpoint
    holds step 2's update, but Lightning had not yet logged the loss of the batch that made it (TensorBoard step 1).
    The run resumed from it must log it, so that the two runs' logs hold every logged step once (those that
    ``log_every_n_steps`` logs), with the values of an uninterrupted run."""
    from test_training import fit

    from lynx_ext.callbacks.pending_log import KEY
    from lynx_ext.training.checkpoint_io import AtomicCheckpointIO

    class SaveAtEpochEnd(pl.Callback):  # outside a batch's end every step metric is logged: nothing pending
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.save_checkpoint(tmp_path / "epoch_end.ckpt")

    args = ["--trainer.log_every_n_steps", str(every)]
    cli = fit(base_args(cache, tmp_path / "straight", steps=4) + args, run=False)
    cli.trainer.callbacks.append(SaveAtEpochEnd())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    straight = {tag: scalars(versions(tmp_path / "straight"), tag) for tag in ("train/loss", "epoch")}
    logged = [s for s, _ in straight["train/loss"]]
    assert logged == ([0, 1, 2, 3] if every == 1 else [2])  # every 3rd step
    step2 = torch.load(versions(tmp_path / "straight")[0] / "checkpoints" / "step0000002.ckpt", weights_only=False)
    if every == 1:
        assert step2[KEY]["step"] == 1
        assert step2[KEY]["metrics"]["train/loss"] == pytest.approx(straight["train/loss"][1][1], rel=1e-6)
    else:
        assert KEY not in step2  # step 1 is not one that is logged
    assert KEY not in torch.load(tmp_path / "epoch_end.ckpt", weights_only=False)
    cli.trainer.save_checkpoint(tmp_path / "after.ckpt")  # after the run: nothing pending, and no error
    assert KEY not in torch.load(tmp_path / "after.ckpt", weights_only=False)

    save = AtomicCheckpointIO.save_checkpoint

    def killed_at_last_ckpt(self, checkpoint, path, storage_options=None):
        if Path(path).name == "last.ckpt" and checkpoint["global_step"] == 2:
            raise Killed
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", killed_at_last_ckpt)
    capsys.readouterr()
    with pytest.raises(Killed):
        fit(base_args(cache, tmp_path / "cut", steps=4) + args)
    said = capsys.readouterr().out  # a failed run also says where its files are
    assert f"checkpoints:" in said and str(tmp_path / "cut" / "lightning_logs" / "version_0" / "checkpoints") in said
    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save)
    ckpt = tmp_path / "cut" / "lightning_logs" / "version_0" / "checkpoints" / "step0000002.ckpt"
    assert not ckpt.with_name("last.ckpt").exists() and torch.load(ckpt, weights_only=False)["global_step"] == 2
    assert [s for s, _ in scalars(versions(tmp_path / "cut"), "train/loss")] == [s for s in logged if s < 1]

    fit(base_args(cache, tmp_path / "cut", steps=4) + args + ["--ckpt_path", str(ckpt)])
    resumed = scalars(versions(tmp_path / "cut")[1:], "train/loss")
    assert [s for s, _ in resumed] == [s for s in logged if s >= 1]  # from the checkpoint on, every step once
    for tag, want in straight.items():  # the union: the uninterrupted run's log, "epoch" included
        union = scalars(versions(tmp_path / "cut"), tag)
        assert [s for s, _ in union] == [s for s, _ in want], tag
        for (step, value), (_, expected) in zip(union, want):
            assert value == pytest.approx(expected, rel=1e-6), (tag, step)


def test_without_a_logger_each_run_still_exports_into_a_version_folder_of_its_own(cache, tmp_path, capsys):  # noqa: F811
    from lynx_ext.cli.fit import main

    import yaml

    config = yaml.safe_load(recipe_of(cache).read_text())  # without the learning-rate monitor, which needs a logger
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"]
                                      if not c["class_path"].endswith("LearningRateMonitor")]
    recipe = tmp_path / "no_logger.yaml"
    recipe.write_text(yaml.safe_dump(config, sort_keys=False))
    root = tmp_path / "run"
    args = ["--config", str(recipe), *base_args(cache, root, steps=1), "--trainer.logger", "false"]
    for n in (0, 1):
        assert main(args) == 0
        folder = root / "lightning_logs" / f"version_{n}" / "adapters"
        assert (folder / "step-0000001" / "lynx_adapters.safetensors").is_file()
        assert (root / "adapters" / "latest").resolve() == (folder / "last").resolve()
        assert f"{folder.parent}\n" in capsys.readouterr().out  # the run folder line names this run's
    assert [p.name for p in versions(root)] == ["version_0", "version_1"]


def test_the_summary_names_latest_only_when_it_leads_to_this_runs_export(tmp_path, monkeypatch):
    """A run that failed (or exported elsewhere) leaves adapters/latest leading to an earlier run: not named then."""
    from types import SimpleNamespace

    from lynx_ext.callbacks.adapter_export import point_latest
    from lynx_ext.training.run_folder import describe_run

    monkeypatch.chdir(tmp_path)
    v0, v1 = (Path("lightning_logs") / f"version_{n}" for n in (0, 1))
    for v in (v0, v1):
        (v / "adapters" / "step-0000001").mkdir(parents=True)
        (v / "adapters" / "last").mkdir()
    exporter = SimpleNamespace(run_folder=v1, last_export=v1 / "adapters" / "step-0000001")
    trainer = SimpleNamespace(default_root_dir=".", loggers=[], checkpoint_callbacks=[], callbacks=[exporter])
    point_latest(Path("adapters") / "latest", v0 / "adapters" / "last")
    text = describe_run(trainer)
    assert f"run folder:" in text and f"{v1 / 'adapters'} (newest export step-0000001/" in text
    assert "latest" not in text, text
    point_latest(Path("adapters") / "latest", v1 / "adapters" / "last")
    assert f"latest adapters: {Path('adapters') / 'latest'}" in describe_run(trainer)


def test_a_failure_to_list_the_outputs_never_hides_the_runs_own_result(monkeypatch, capsys):
    from types import SimpleNamespace

    import lynx_ext.training.run_folder as run_folder
    from lynx_ext.cli.fit import say_where_the_run_is

    def broken(trainer):
        raise OSError("disk gone")

    monkeypatch.setattr(run_folder, "describe_run", broken)
    say_where_the_run_is(SimpleNamespace(is_global_zero=True))
    assert "could not list the run's outputs: OSError: disk gone" in capsys.readouterr().out
    say_where_the_run_is(SimpleNamespace(is_global_zero=False))  # other processes print nothing
    assert capsys.readouterr().out == ""
