"""Issue 12, class 5 (promises the code must keep) and the security rules, through the CLI and the API: offline
and skip-download runs name the files to place; hub revisions; ``--face-models`` honoured by every detector /
embedder pair; atomic ``last/`` exports; safe, checked training checkpoints and resumption; prepared caches and
parity folders read strictly; kill-and-resume under two-process DDP."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wiring_probes import prepare_tiny_training_data, tiny_recipe_for
import torch
from PIL import Image

from lynx_ext.errors import LynxFileError, LynxFormatError, LynxUsageError, LynxValueError, ModelFilesMissingError

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny" / "tiny_cpu.yaml"
SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))


@pytest.fixture
def offline_world(tmp_path, monkeypatch):
    """Empty model folders; any network probe fails the test (offline must be known without the network)."""
    import lynx_ext.models.hub as hub

    monkeypatch.setenv("DIFFSYNTH_MODEL_BASE_PATH", str(tmp_path / "models"))
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(hub, "_PROBED", {})

    def no_network(*args, **kwargs):
        raise AssertionError("the network was probed although the environment says offline")

    monkeypatch.setattr(hub, "unreachable", no_network)
    return tmp_path


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


# ------------------------------------------------------------------------------------------- offline model files
def test_offline_main_command_names_every_file_to_place(offline_world, face_png, monkeypatch, capsys):
    from lynx_ext.cli.generate import main as generate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(offline_world / "user"))  # no insightface pack, no facexlib weights
    monkeypatch.setenv("XDG_CACHE_HOME", str(offline_world / "user" / ".cache"))
    rc = generate(["--variant", "full", "--image", str(face_png), "--prompt", "a woman in a market",
                   "--adapters", "hub:full", "--output", str(offline_world / "out" / "market.mp4")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    models = offline_world / "models" / "Wan-AI" / "Wan2.1-T2V-14B"
    for needle in ("HF_HUB_OFFLINE=1 is set", "diffusion_pytorch_model*.safetensors of Wan-AI/Wan2.1-T2V-14B from https://",
                   f"Wan-AI/Wan2.1-T2V-14B -> {models}", "Wan2.1_VAE.pth", "google/umt5-xxl/", "lynx_full/resampler.safetensors",
                   "lynx_full/ref_layers.safetensors", str(offline_world / "home" / "lynx" / "lynx_full"),
                   # the face models too, in the same run, each with its folder and its source
                   f"det_10g.onnx from https://github.com/deepinsight/insightface/releases/download/model-zoo/"
                   f"buffalo_l.zip -> {offline_world / 'user' / '.insightface' / 'models' / 'buffalo_l'}",
                   f"recognition_arcface_ir_se50.pth from https://github.com/xinntao/facexlib/releases/download/"
                   f"v0.1.0/recognition_arcface_ir_se50.pth -> {offline_world / 'user' / '.cache' / 'lynx_ext' / 'facexlib'}",
                   "--face-models DIR"):
        assert needle in err, (needle, err)
    assert not (offline_world / "out").exists()


def test_skip_download_switch_names_missing_files_through_the_api(offline_world, monkeypatch):
    import lynx_ext.models.hub as hub
    from lynx_ext.models.build import build_wan_pipe

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LYNX_EXT_OFFLINE", raising=False)
    monkeypatch.setenv("DIFFSYNTH_SKIP_DOWNLOAD", "True")
    with pytest.raises(ModelFilesMissingError) as info:
        build_wan_pipe(preset="custom", model_id_with_origin_paths=["Org/Model:dit*.safetensors"])
    text = str(info.value)
    assert "DIFFSYNTH_SKIP_DOWNLOAD=True is set" in text and "cannot detect" not in text.lower()
    assert f"dit*.safetensors of Org/Model from https://modelscope.cn/models/Org/Model -> " \
        f"{offline_world / 'models' / 'Org' / 'Model'}" in text
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.missing[0][0] == "dit*.safetensors of Org/Model from https://modelscope.cn/models/Org/Model"
    # Files on disk are used as they are, without the network and without DiffSynth's downloader.
    folder = offline_world / "models" / "Org" / "Model"
    folder.mkdir(parents=True)
    for name in ("dit-1.safetensors", "dit-2.safetensors"):
        (folder / name).write_bytes(b"x")
    (folder / "tok").mkdir()
    (folder / "tok" / "vocab.json").write_text("{}")
    located = hub.locate_model_files(["Org/Model:dit*.safetensors", "Org/Model:tok/"])
    assert located == [{"path": [str(folder / "dit-1.safetensors"), str(folder / "dit-2.safetensors")]},
                       {"path": str(folder / "tok")}]
    with pytest.raises(LynxValueError, match="must be written model_id:file_pattern"):
        hub.locate_model_files(["just-a-name"])


def test_unreachable_host_is_detected_quickly_and_named(tmp_path, monkeypatch):
    import socket

    import lynx_ext.models.hub as hub

    for name in hub.OFFLINE_ENV:  # conftest switches DiffSynth's downloads off; here the network itself is away
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "_PROBED", {})
    calls = []

    def refuse(address, timeout):
        calls.append((address, timeout))
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(hub.socket, "create_connection", refuse)
    with pytest.raises(ModelFilesMissingError, match="huggingface.co cannot be reached: Temporary failure"):
        hub.download_official_adapters("lite")
    with pytest.raises(ModelFilesMissingError):
        hub.download_official_adapters("full")
    # each hub probed once per run (ModelScope, the default source, first), with a short timeout
    assert calls == [(("www.modelscope.cn", 443), hub.PROBE_SECONDS), (("huggingface.co", 443), hub.PROBE_SECONDS)]


def test_hub_revisions_are_pinned(tmp_path, monkeypatch):
    import huggingface_hub

    import lynx_ext.models.hub as hub

    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path))
    for name in hub.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "offline_reason", lambda *a, **k: None)
    seen = {}

    def fake_snapshot(repo_id, allow_patterns, local_dir, revision):
        seen.update(repo_id=repo_id, revision=revision)
        folder = Path(local_dir) / "lynx_lite"
        folder.mkdir(parents=True)
        for name in hub.ADAPTER_FILES["lite"]:
            (folder / name).write_bytes(b"")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    folder = hub.download_official_adapters("lite@1a2b3c")
    assert folder == tmp_path / "lynx" / "rev-1a2b3c" / "lynx_lite" and seen == {"repo_id": "ByteDance/lynx",
                                                                                  "revision": "1a2b3c"}
    assert hub.download_official_adapters("lite", revision="1a2b3c") == folder  # cached: no second download
    assert hub.parse_hub("hub:full@v1.0") == ("full", "v1.0") and hub.parse_hub("full") == ("full", None)
    for spec, needle in [("hub:full@a b", "is not a commit, tag or branch"), ("hub:full@a", "give one of them")]:
        with pytest.raises(LynxValueError, match=needle):
            hub.parse_hub(spec, revision="b" if needle.startswith("give") else None)


def test_pinned_revision_is_named_offline_through_the_cli(offline_world, face_png, monkeypatch, capsys):
    from lynx_ext.cli.generate import main as generate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = generate(["--image", str(face_png), "--prompt", "x", "--adapters-revision", "deadbeef", "--output",
                   str(offline_world / "o.mp4")])
    err = capsys.readouterr().err
    assert rc == 2 and "https://huggingface.co/ByteDance/lynx/tree/deadbeef" in err
    assert str(offline_world / "home" / "lynx" / "rev-deadbeef" / "lynx_full") in err
    rc = generate(["--image", str(face_png), "--prompt", "x", "--adapters", "hub:lite@v2", "--variant", "lite",
                   "--output", str(offline_world / "o.mp4")])
    assert rc == 2 and str(offline_world / "home" / "lynx" / "rev-v2" / "lynx_lite") in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ face models
@pytest.mark.parametrize("detector,embedder", [("insightface", "insightface"), ("insightface", "facexlib"),
                                               ("dlib", "insightface"), ("dlib", "facexlib")])
def test_face_models_folder_is_honoured_by_every_pair(detector, embedder, tmp_path, monkeypatch, face_png, capsys):
    from lynx_ext.cli.generate import main as generate
    from lynx_ext.conditioners import FaceAnalyzer, FaceModelsMissingError
    from lynx_ext.tiny.face_models import write_standin_pack

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no facexlib weights in the caches
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))
    given = tmp_path / "my_face_models"
    given.mkdir()
    if detector == "insightface":
        write_standin_pack(given)
        (given / "w600k_r50.onnx").unlink()
    with pytest.raises(FaceModelsMissingError) as info:
        FaceAnalyzer.from_options(models=str(given), detector=detector, embedder=embedder, offline_ok=True,
                                  providers=["CPUExecutionProvider"])
    assert str(given) in str(info.value) and ".insightface" not in str(info.value), str(info.value)
    monkeypatch.setenv("LYNX_EXT_OFFLINE", "1")
    rc = generate(["--preset", "tiny", "--image", str(face_png), "--prompt", "x", "--face-models", str(given),
                   "--detector", detector, "--embedder", embedder, "--output", str(tmp_path / "o.mp4"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and str(given) in err and ".insightface" not in err, err


def test_dlib_models_come_from_the_given_folder(tmp_path, monkeypatch):
    import lynx_ext.conditioners.model_files as mf
    from lynx_ext.conditioners import FaceAnalyzer

    asked, real = [], mf.resolve_dlib_file

    def spy(kind, model_dir=None):
        asked.append(model_dir)
        return real(kind, model_dir)

    monkeypatch.setattr(mf, "resolve_dlib_file", spy)
    FaceAnalyzer.from_options(models=str(tmp_path), detector="dlib", embedder="dlib")
    assert asked and all(Path(d) == tmp_path for d in asked)


def test_missing_face_model_folder_is_named_before_loading(tmp_path, face_png, capsys, monkeypatch):
    import lynx_ext.models.build as build
    from lynx_ext.cli.generate import main as generate

    monkeypatch.setattr(build, "build_wan_pipe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    rc = generate(["--preset", "tiny", "--image", str(face_png), "--prompt", "x", "--face-models",
                   str(tmp_path / "nope"), "--detector", "dlib", "--embedder", "dlib", "--output",
                   str(tmp_path / "o.mp4")])
    assert rc == 2 and f"Face model folder {tmp_path / 'nope'} (--face-models) does not exist" in \
        capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- adapter export
def test_last_export_is_replaced_atomically(tmp_path, monkeypatch):
    import lynx_ext.callbacks.adapter_export as export

    for step in (1, 2, 3):
        (tmp_path / f"step-{step}").mkdir()
        (tmp_path / f"step-{step}" / "w").write_text(str(step))
    last = tmp_path / "last"
    export.refresh_last(last, tmp_path / "step-1")
    seen, real = [], export._exchange

    def watched(a, b):  # the old last/ is still there right up to the one-step swap
        seen.append((last / "w").read_text())
        return real(a, b)

    monkeypatch.setattr(export, "_exchange", watched)
    export.refresh_last(last, tmp_path / "step-2")
    assert seen == ["1"] and (last / "w").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last", "step-1", "step-2", "step-3"]
    # Without an exchange call: the new copy is renamed in before the old one is deleted.
    monkeypatch.setattr(export, "_exchange", lambda a, b: False)
    export.refresh_last(last, tmp_path / "step-3")
    assert (last / "w").read_text() == "3" and not (tmp_path / ".last.old").exists()
    # A run killed between the two renames left only .last.old: the next export restores, then replaces it.
    last.rename(tmp_path / ".last.old")
    real_rename, order = Path.rename, []
    monkeypatch.setattr(Path, "rename", lambda self, target: (order.append((self.name, Path(target).name)),
                                                                real_rename(self, target))[1])
    export.refresh_last(last, tmp_path / "step-1")
    assert order[0] == (".last.old", "last") and (last / "w").read_text() == "1"


# -------------------------------------------------------------------------------------------- checkpoints (API)
def fake_checkpoint(path: Path, step: int) -> Path:
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {"w": torch.full((2,), float(step))},
                "global_step": step, "optimizer_states": [], "loops": {}}, str(path))
    return path


def test_checkpoints_are_checked_and_never_unpickled_unsafely(tmp_path):
    from lynx_ext.training.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    good = fake_checkpoint(tmp_path / "good.ckpt", 3)
    assert io.load_checkpoint(good)["global_step"] == 3
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(LynxFormatError, match="cut.ckpt is a damaged zip archive .* not a training checkpoint"):
        io.load_checkpoint(cut)
    adapters = tmp_path / "a.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(adapters))
    with pytest.raises(LynxFormatError, match="a safetensors file of 1 tensor"):
        io.load_checkpoint(adapters)

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    evil = tmp_path / "evil.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {}, "optimizer_states": [], "x": Boom()},
               str(evil))
    with pytest.raises(LynxFormatError, match="could not be read as a training checkpoint"):
        io.load_checkpoint(evil)
    assert not (tmp_path / "owned").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load_checkpoint(tmp_path / "absent.ckpt")


def test_resume_takes_a_newer_complete_step_checkpoint_and_cleans_temporaries(tmp_path):
    from lynx_ext.training.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    fake_checkpoint(tmp_path / "last.ckpt", 2)
    fake_checkpoint(tmp_path / "epoch=0-step=2.ckpt", 2)
    fake_checkpoint(tmp_path / "epoch=0-step=4.ckpt", 4)
    (tmp_path / "epoch=1-step=6.ckpt").write_bytes(b"PK\x03\x04 cut short")  # newer but damaged: skipped
    partial = tmp_path / ".last.ckpt.x1y2.tmp.ckpt"
    partial.write_bytes(b"half")
    with pytest.warns(UserWarning, match=r"last.ckpt is at step 2, but epoch=0-step=4.ckpt \(step 4\) is newer"):
        ckpt = io.load_checkpoint(tmp_path / "last.ckpt")
    assert ckpt["global_step"] == 4 and not partial.exists()
    assert io.load_checkpoint(tmp_path / "epoch=0-step=2.ckpt")["global_step"] == 2  # an explicit step: as asked
    partial.write_bytes(b"half")
    io.save_checkpoint({"state_dict": {}}, tmp_path / "last.ckpt")
    assert not partial.exists() and not list(tmp_path.glob(".*.tmp.ckpt"))


# ----------------------------------------------------------------------------------------- training through fit
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return prepare_tiny_training_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    if "LYNX_EXT_HOME" not in os.environ:
        monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


def fit_args(cache, root, steps, extra=()):
    return ["--config", str(tiny_recipe_for(Path(cache).parent, False)), "--data.cache", str(cache), "--trainer.default_root_dir", str(root),
            "--trainer.max_steps", str(steps), "--trainer.enable_progress_bar", "false", "--data.token_budget", "70",
            *extra]


def test_fit_refuses_foreign_and_damaged_checkpoints_before_loading(cache, tmp_path, capsys, monkeypatch):
    import lynx_ext.models.build as build
    from lynx_ext.cli.fit import main

    monkeypatch.setattr(build, "build_wan_pipe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    cut = tmp_path / "last.ckpt"
    cut.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    rc = main(fit_args(cache, tmp_path, 2, ["--ckpt_path", str(cut)]))
    assert rc == 2 and "last.ckpt is a damaged zip archive" in capsys.readouterr().err
    from safetensors.torch import save_file

    save_file({"resampler.latents": torch.zeros(1)}, str(tmp_path / "adapters.safetensors"))
    rc = main(fit_args(cache, tmp_path, 2, [f"--ckpt_path={tmp_path / 'adapters.safetensors'}"]))
    err = capsys.readouterr().err
    assert rc == 2 and "not a training checkpoint written by `diffsynth-ext fit`" in err and err.count("\n") == 1


def test_fit_checks_data_adapters_and_embedder_before_loading(cache, tmp_path, capsys, monkeypatch):
    import lynx_ext.models.build as build
    from lynx_ext.cli.fit import main

    monkeypatch.setattr(build, "build_wan_pipe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    rc = main(fit_args(cache, tmp_path, 2, ["--model.adapters.embedding_dim", "512"]))
    err = capsys.readouterr().err
    assert rc == 2 and [line for line in err.splitlines() if line.startswith("error")] == err.splitlines()[-1:], err
    assert "dlib-resnet-v1 (used by `prepare` for" in err and "gives 128-d embeddings but the recipe's adapters " \
        "(model.adapters.embedding_dim 512) take 512-d" in err
    rc = main(fit_args(tmp_path / "no_cache", tmp_path, 2))
    assert rc == 2 and "no_cache does not exist: it is not a prepared dataset" in capsys.readouterr().err


def test_resume_from_stale_last_ckpt_uses_the_newer_step_and_stays_exact(cache, tmp_path):
    from safetensors.torch import load_file

    from lynx_ext.cli.fit import make_cli

    def fit(root, steps, extra=()):
        make_cli(["fit", *fit_args(cache, root, steps, extra)])

    fit(tmp_path / "straight", 6)
    fit(tmp_path / "cut", 4)
    ckpts = tmp_path / "cut" / "lightning_logs" / "version_0" / "checkpoints"
    step2, step4 = (next(ckpts.glob(f"step{n:07d}.ckpt")) for n in (2, 4))  # the recipe's by-step checkpoints
    shutil.copy(step2, ckpts / "last.ckpt")  # killed before last.ckpt was refreshed
    (ckpts / ".step0000006.ckpt.abcd.tmp.ckpt").write_bytes(b"partial")
    with pytest.warns(UserWarning, match=f"is newer and complete; resuming from {step4.name}"):
        fit(tmp_path / "cut", 6, ["--ckpt_path", str(ckpts / "last.ckpt")])
    assert not list(ckpts.glob(".*.tmp.ckpt"))
    a = load_file(str(tmp_path / "straight" / "adapters" / "latest" / "lynx_adapters.safetensors"))
    b = load_file(str(tmp_path / "cut" / "adapters" / "latest" / "lynx_adapters.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill_and_resume_under_two_process_ddp_is_exact(cache, tmp_path):
    from safetensors.torch import load_file

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]

    def fit(root, steps, extra=()):
        proc = subprocess.run([SCRIPT, "fit", "--extension", "lynx", *fit_args(cache, root, steps, [*ddp, *extra])],
                              capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    fit(tmp_path / "straight", 5)
    fit(tmp_path / "cut", 2)
    last = tmp_path / "cut" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    fit(tmp_path / "cut", 5, ["--ckpt_path", str(last)])
    a = load_file(str(tmp_path / "straight" / "adapters" / "latest" / "lynx_adapters.safetensors"))
    b = load_file(str(tmp_path / "cut" / "adapters" / "latest" / "lynx_adapters.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------------------ caches and fixtures
def test_prepared_cache_damage_is_named(cache, tmp_path):
    from lynx_ext.training.dataset import LynxTrainingDataset, usable_rows

    copy = tmp_path / "prepared"
    shutil.copytree(cache, copy)
    rows = usable_rows(copy)
    victim = copy / rows[0]["embedding"]
    import numpy as np

    shape = np.load(victim).shape
    victim.write_bytes(b"\x93NUMPY garbage")
    dataset = LynxTrainingDataset(copy, rows=rows)
    dataset.augment.cross_sample_identity = 0.0
    with pytest.raises(LynxFormatError, match=f"Cached embedding of row {rows[0]['id']} {victim} is damaged"):
        dataset[0]
    np.save(victim, np.full(shape, np.nan, np.float32))
    with pytest.raises(LynxFormatError, match="NaN or infinite"):
        dataset[0]
    lines = (copy / "prepared.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["embedding"] = "../../etc/passwd"
    (copy / "prepared.jsonl").write_text("\n".join([json.dumps(record)] + lines[1:]) + "\n")
    with pytest.raises(LynxFileError, match=r"embedding ../../etc/passwd points outside"):
        usable_rows(copy)


def test_parity_folder_with_malformed_json(fixtures_dir, tmp_path):
    from lynx_ext.parity.runner import ParityCase

    folder = tmp_path / "lite"
    shutil.copytree(fixtures_dir / "lite", folder)
    (folder / "call_params.json").write_text('{"guidance_scale": 5.0,\n "seed": }\n')
    with pytest.raises(LynxFormatError, match=r"call_params.json is not valid JSON \(line 2, column 10"):
        ParityCase(folder)
    proc = subprocess.run([sys.executable, "-m", "lynx_ext.parity", str(folder), str(tmp_path / "absent")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: " in proc.stdout and "is not valid JSON (line 2" in proc.stdout
    assert "Parity folder" in proc.stdout and "absent does not exist" in proc.stdout and "Traceback" not in proc.stderr
    (folder / "call_params.json").write_text("{}")
    (folder / "inputs.safetensors").write_bytes((folder / "inputs.safetensors").read_bytes()[:100])
    with pytest.raises(LynxFormatError, match="inputs.safetensors is a damaged safetensors file"):
        ParityCase(folder)
    assert issubclass(LynxFormatError, LynxUsageError)


@pytest.mark.parametrize("embedder, detector, files", [
    ("facexlib", "insightface", ["det_10g.onnx", "recognition_arcface_ir_se50.pth"]),
    ("insightface", "insightface", ["det_10g.onnx", "w600k_r50.onnx"]),
])
def test_offline_face_models_are_named_all_at_once(embedder, detector, files, tmp_path, monkeypatch):
    """`FaceAnalyzer.from_options` (prepare, generate, the training callbacks) offline: one error names every face
    model file the options need, with its folder and source, instead of one per run."""
    from lynx_ext.conditioners import FaceAnalyzer, FaceModelsMissingError

    monkeypatch.setenv("LYNX_EXT_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user" / ".cache"))
    with pytest.raises(FaceModelsMissingError) as info:
        FaceAnalyzer.from_options(embedder=embedder, detector=detector)
    text = str(info.value)
    for name in files:
        assert f"{name} -> {tmp_path / 'user'}" in text, text
    assert text.count("https://") == len(files) and "--face-models DIR" in text
