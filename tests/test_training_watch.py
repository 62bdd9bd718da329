"""Training you can watch and repeat: the tiny recipe's TensorBoard run, its checkpoints, the progress bar, the saved
config re-running the run, and the validation pair files."""
from __future__ import annotations

import glob
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from test_training import base_args, cache  # noqa: F401  (the module-scoped tiny data fixture)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


def scalars_and_images(log_dir: Path) -> tuple[dict, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(glob.glob(str(log_dir / "events.out.tfevents.*"))[0], size_guidance={"images": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return scalars, events.Tags()["images"]


def test_tiny_recipe_logs_to_tensorboard_and_its_saved_config_repeats_the_run(cache, tmp_path, capsys):  # noqa: F811
    from lynx_ext.cli.fit import main

    recipe = cache.parent / "tiny_cpu.yaml"  # the tiny recipe as shipped, over this tiny data
    run = tmp_path / "run"
    assert main(["--config", str(recipe), "--trainer.default_root_dir", str(run)]) == 0
    bar = capsys.readouterr().out  # Lightning's tqdm bars write to stdout
    assert "4/4" in bar and "Epoch 1/-2" not in bar  # one bar over the run's max_steps
    log_dir = run / "lightning_logs" / "version_0"
    scalars, images = scalars_and_images(log_dir)
    for tag in ("train/loss", "train/grad_norm", "lr-AdamW", "train/tokens_per_s", "train/samples_per_s",
                "train/step_time_s", "val/face_detect_rate"):
        assert tag in scalars, (tag, sorted(scalars))
    assert [s for s, _ in scalars["train/loss"]] == [0, 1, 2, 3]
    assert all(v > 0 for _, v in scalars["train/tokens_per_s"])
    assert scalars["lr-AdamW"][0][1] == pytest.approx(1e-3)
    assert [s for s, _ in scalars["val/face_detect_rate"]] == [4]
    if "val/face_similarity" in scalars:  # only when a face was found in the generated frames
        assert -1.0 <= scalars["val/face_similarity"][0][1] <= 1.0
    assert images == ["samples/pair-0"]
    checkpoints = sorted(p.name for p in (log_dir / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and "step0000002.ckpt" in checkpoints and "step0000004.ckpt" in checkpoints
    best = [n for n in checkpoints if n.startswith("best-")]
    if "val/face_similarity" in scalars:  # the best checkpoint is named by the similarity measured at its step
        assert best == [f"best-step0000004-sim{scalars['val/face_similarity'][0][1]:.3f}.ckpt"], checkpoints
    else:  # no face found: no "best" checkpoint, never one named by a stand-in number (sim-1.000)
        assert best == [], checkpoints

    # The saved config parses and repeats the run: the same weights at step 2.
    saved = log_dir / "config.yaml"
    again = tmp_path / "again"
    assert main(["--config", str(saved), "--trainer.default_root_dir", str(again), "--trainer.max_steps", "2"]) == 0
    first = torch.load(log_dir / "checkpoints" / "step0000002.ckpt", weights_only=False)["state_dict"]
    second_ckpt = again / "lightning_logs" / "version_0" / "checkpoints" / "step0000002.ckpt"
    second = torch.load(second_ckpt, weights_only=False)["state_dict"]
    assert first.keys() == second.keys() and first
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_saved_config_keeps_no_unparseable_value(cache, tmp_path):  # noqa: F811
    """What made `fit --config <saved>` exit 2: an instance in the defaults (the checkpoint-IO plugin) was saved as
    'Unable to serialize instance'; the linked data.seed must not be saved either."""
    from lynx_ext.cli.fit import main, make_cli

    recipe = cache.parent / "tiny_cpu_fast.yaml"
    assert main(["--config", str(recipe), *base_args(cache, tmp_path, steps=1)]) == 0
    saved = tmp_path / "lightning_logs" / "version_0" / "config.yaml"
    text = saved.read_text()
    assert "Unable to serialize" not in text
    config = yaml.safe_load(text)
    assert "seed" not in config["data"]
    assert config["trainer"]["plugins"] == [{"class_path": "lynx_ext.training.checkpoint_io.AtomicCheckpointIO"}]
    cli = make_cli(["--config", str(saved)], run=False)  # the Python API parses it too
    from lynx_ext.training.checkpoint_io import AtomicCheckpointIO

    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert cli.datamodule.seed == cli.model.seed


def test_progress_total_is_the_run_not_the_epoch():
    from lynx_ext.callbacks.progress import run_total_steps

    assert run_total_steps(SimpleNamespace(max_steps=20000, estimated_stepping_batches=7)) == 20000
    assert run_total_steps(SimpleNamespace(max_steps=-1, estimated_stepping_batches=30)) == 30
    assert run_total_steps(SimpleNamespace(max_steps=-1, estimated_stepping_batches=float("inf"))) is None


def test_throughput_counts_dit_tokens_of_the_pack():
    from lynx_ext.training.packing import latent_tokens, pack_tokens

    pack = [{"video": torch.zeros(3, 5, 64, 64)}, {"video": torch.zeros(3, 1, 48, 80)},
            {"latents": torch.zeros(1, 16, 2, 8, 8)}]
    assert pack_tokens(pack) == latent_tokens(5, 64, 64) + latent_tokens(1, 48, 80) + 2 * 4 * 4


# ------------------------------------------------------------------------------------------------ pair files
@pytest.fixture
def face(tmp_path) -> Path:
    from PIL import Image

    (tmp_path / "faces").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "faces" / "a.png")
    return tmp_path / "faces" / "a.png"


def test_pairs_from_yaml_and_csv_with_paths_relative_to_the_file(face, tmp_path):
    from lynx_ext.callbacks.validation_pairs import load_pairs

    (tmp_path / "pairs.yaml").write_text("pairs:\n  - image: faces/a.png\n    prompt: a person smiling\n")
    (tmp_path / "list.yml").write_text(f"- image: {face}\n  prompt: another prompt\n")
    (tmp_path / "pairs.csv").write_text("image,prompt\nfaces/a.png,\"a person, smiling\"\n")
    assert [(p.image, p.prompt) for p in load_pairs(str(tmp_path / "pairs.yaml"))] == [(str(face), "a person smiling")]
    assert load_pairs(str(tmp_path / "list.yml"))[0].prompt == "another prompt"
    assert load_pairs(str(tmp_path / "pairs.csv"))[0].prompt == "a person, smiling"


@pytest.mark.parametrize("text, suffix, match", [
    ("pairs: []\n", ".yaml", "holds no pair"),
    ("- image: faces/a.png\n  prompt: x\n  seed: 3\n", ".yaml", r"unknown \['seed'\]"),
    ("- image: faces/nope.png\n  prompt: x\n", ".yaml", "does not exist"),
    ("- image: faces/a.png\n  prompt: '  '\n", ".yaml", "empty prompt"),
    ("img,prompt\nfaces/a.png,x\n", ".csv", "exactly the columns image,prompt"),
    ("image: faces/a.png\n", ".yaml", "must hold"),
    ("[a, b\n", ".yaml", "not valid YAML"),
    ("x", ".txt", "neither .yaml"),
])
def test_bad_pair_files_are_refused_naming_the_problem(face, tmp_path, text, suffix, match):
    from lynx_ext.callbacks.validation_pairs import load_pairs

    path = tmp_path / f"pairs{suffix}"
    path.write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_pairs(str(path))


def test_shipped_14b_pair_files_are_documented_and_refused_until_filled(tmp_path):
    from lynx_ext.callbacks import FaceSimilarityValidation, SampleVideos

    for recipe in sorted((ROOT / "recipes" / "wan2.1-t2v-14b").glob("*_stage*.yaml")):
        callbacks = yaml.safe_load(recipe.read_text())["trainer"]["callbacks"]
        names = {c["class_path"].rsplit(".", 1)[-1]: c.get("init_args", {}) for c in callbacks}
        assert {"SampleVideos", "FaceSimilarityValidation"} <= set(names), recipe.name
        monitors = [c["init_args"].get("monitor") for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]
        assert "val/face_similarity" in monitors and "train/loss" not in monitors, recipe.name
        for name, cls in (("SampleVideos", SampleVideos), ("FaceSimilarityValidation", FaceSimilarityValidation)):
            pairs_file = ROOT / names[name]["pairs_file"]
            assert pairs_file.is_file() and "image:" in pairs_file.read_text()  # documented
            callback = cls(pairs_file=str(pairs_file))  # the recipe parses before the file is filled ...
            with pytest.raises(ValueError, match="holds no pair"):  # ... and the run stops at its start
                callback.setup(None, None, "fit")
