"""Downloads from ModelScope (DiffSynth's default) or the Hugging Face hub: order, caching, offline, failures."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest_faces import CPU, astronaut, standin_pack  # noqa: F401

from lynx_ext.adapters.formats import read_adapters, write_adapters
from lynx_ext.cli.main import main as diffsynth_ext
from lynx_ext.conditioners import FaceAnalyzer, FaceModelsMissingError
from lynx_ext.conditioners import model_files as mf
from lynx_ext.models import hub
from lynx_ext.tiny.adapters import tiny_adapters

SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))
ONLINE = ("LYNX_EXT_OFFLINE", "HF_HUB_OFFLINE", "DIFFSYNTH_SKIP_DOWNLOAD", "DIFFSYNTH_DOWNLOAD_SOURCE")


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Downloads allowed (tests default to offline), caches in tmp_path, the source unset."""
    for key in ONLINE:  # set first so that the test's own changes (e.g. by --download-source) are undone too
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DIFFSYNTH_MODEL_BASE_PATH", str(tmp_path / "diffsynth_models"))


@pytest.fixture(scope="module")
def official_full(tiny_wan_dir, tmp_path_factory):
    """Tiny adapters written in the official lynx_full/ layout (what the hub repository holds)."""
    from lynx_ext.tiny.wan import load_tiny_pipe

    folder = tmp_path_factory.mktemp("published") / "lynx_full"
    adapters = tiny_adapters(load_tiny_pipe(tiny_wan_dir).dit, "full", seed=3)
    write_adapters(adapters, folder, "official")
    return folder, adapters


class FakeHub:
    """An injected downloader: records each call; serves ``published`` from the sources in ``serving``."""

    def __init__(self, published: dict, serving=("modelscope", "huggingface")):
        self.published, self.serving, self.calls = published, serving, []

    def __call__(self, source, repo_id, patterns, local_dir):
        self.calls.append((source, repo_id, tuple(patterns)))
        if source not in self.serving:
            raise ConnectionError(f"{source} unreachable")
        for folder, src in self.published.items():
            shutil.copytree(src, Path(local_dir) / folder, dirs_exist_ok=True)


def test_source_follows_the_host_variable_and_the_flag(monkeypatch):
    monkeypatch.delenv("DIFFSYNTH_DOWNLOAD_SOURCE", raising=False)
    assert hub.download_source() == "modelscope" and hub.source_order() == ("modelscope", "huggingface")
    monkeypatch.setenv("DIFFSYNTH_DOWNLOAD_SOURCE", "HuggingFace")  # the host's own spelling
    assert hub.source_order() == ("huggingface", "modelscope")
    assert hub.download_source("ms") == "modelscope"  # an explicit source wins over the variable
    with pytest.raises(ValueError, match=r"--download-source 'github'.*modelscope or huggingface"):
        hub.download_source("github")
    monkeypatch.setenv("DIFFSYNTH_DOWNLOAD_SOURCE", "s3")
    with pytest.raises(ValueError, match=r"\$DIFFSYNTH_DOWNLOAD_SOURCE 's3'"):
        hub.download_source()


def test_official_adapters_from_modelscope_then_cached(online, official_full):
    fake = FakeHub({"lynx_full": official_full[0]})
    folder = hub.download_official_adapters("full", downloader=fake)
    assert fake.calls == [("modelscope", "ByteDance/lynx", ("lynx_full/*",))]
    assert folder == Path(hub.adapter_cache_dir()) / "lynx_full"
    assert torch.equal(read_adapters(folder).state_dict()["resampler.latents"],
                       official_full[1].state_dict()["resampler.latents"])
    assert hub.download_official_adapters("full", downloader=fake) == folder and len(fake.calls) == 1  # cached


def test_falls_back_to_the_other_hub_and_reports_every_failure(online, official_full, monkeypatch):
    fake = FakeHub({"lynx_full": official_full[0]}, serving=("huggingface",))
    assert hub.download_official_adapters("full", downloader=fake).is_dir()
    assert [c[0] for c in fake.calls] == ["modelscope", "huggingface"]

    monkeypatch.setenv("DIFFSYNTH_DOWNLOAD_SOURCE", "huggingface")
    nowhere = FakeHub({}, serving=())
    with pytest.raises(FileNotFoundError) as info:
        hub.download_official_adapters("lite", downloader=nowhere)
    msg = str(info.value)
    assert [c[0] for c in nowhere.calls] == ["huggingface", "modelscope"]
    assert "huggingface: ConnectionError: huggingface unreachable" in msg and "modelscope: ConnectionError" in msg
    assert "resampler.safetensors, ip_layers.safetensors" in msg and "ref_layers" not in msg  # lite has no Ref
    assert str(hub.adapter_cache_dir() / "lynx_lite") in msg
    assert "https://huggingface.co/ByteDance/lynx" in msg and "https://modelscope.cn/models/ByteDance/lynx" in msg


def test_a_download_missing_a_file_is_not_accepted(online, official_full, tmp_path):
    partial = tmp_path / "partial" / "lynx_full"
    shutil.copytree(official_full[0], partial)
    (partial / "ref_layers.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="download finished without ref_layers.safetensors"):
        hub.download_official_adapters("full", downloader=FakeHub({"lynx_full": partial}))


def test_offline_never_calls_the_downloader(online, monkeypatch):
    monkeypatch.setenv("DIFFSYNTH_SKIP_DOWNLOAD", "True")  # the host's switch counts too
    with pytest.raises(FileNotFoundError, match=r"Downloads are off.*place them in .*lynx_full"):
        hub.download_official_adapters("full", downloader=lambda *a: pytest.fail("must not download"))


def test_the_real_hub_client_without_network_fails_fast_and_clearly(online, tmp_path):
    """huggingface_hub's own client, offline (conftest sets HF_HUB_OFFLINE before it is imported; the repository
    does not exist either, so even a machine with internet downloads nothing)."""
    missing = hub.HubFolder(repos={s: "lynx-ext-tests/no-such-repository" for s in hub.SOURCES}, folder="lynx_full",
                            files=hub.ADAPTER_FILES["full"])
    with pytest.raises(Exception) as info:
        hub.hub_snapshot("huggingface", missing.repos["huggingface"], ["lynx_full/*"], tmp_path / "hf")
    assert not isinstance(info.value, (ImportError, TypeError))  # the client ran and refused
    only_hf = lambda source, *a: hub.hub_snapshot("huggingface", *a)  # noqa: E731 - modelscope's client retries
    with pytest.raises(FileNotFoundError, match=r"resampler.safetensors.*huggingface: \w+: .*place them in"):
        hub.fetch_folder("Adapters", missing, tmp_path / "x", source="hf", downloader=only_hf, offline_ok=False)


def test_convert_hub_source_from_the_command_line(online, official_full, tmp_path, monkeypatch, capsys):
    fake = FakeHub({"lynx_full": official_full[0]})
    monkeypatch.setattr(hub, "hub_snapshot", fake)
    out = tmp_path / "mine.safetensors"
    rc = diffsynth_ext(["convert", "hub:full", "--to", "lynx-ext", "--output", str(out), "--download_source", "hf"])
    assert rc == 0, capsys.readouterr().err
    assert fake.calls[0][0] == "huggingface" and out.is_file()
    assert torch.equal(read_adapters(out).state_dict()["resampler.proj_in.weight"],
                       official_full[1].state_dict()["resampler.proj_in.weight"])


def test_console_script_offline_names_the_files_and_the_folder(tmp_path):
    env = {**__import__("os").environ, "LYNX_EXT_OFFLINE": "1", "LYNX_EXT_HOME": str(tmp_path)}
    proc = subprocess.run([SCRIPT, "convert", "--extension", "lynx", "hub:lite", "--to", "lynx-ext", "--output",
                           str(tmp_path / "x.safetensors"), "--download-source", "modelscope"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "resampler.safetensors, ip_layers.safetensors" in proc.stderr
    assert str(tmp_path / "lynx" / "lynx_lite") in proc.stderr and "instead of hub:lite" in proc.stderr
    bad = subprocess.run([SCRIPT, "convert", "--extension", "lynx", "hub:full", "--to", "lynx-ext", "--output",
                          str(tmp_path / "x.safetensors"), "--download-source", "github"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "'github' is not a download source" in bad.stderr


# ------------------------------------------------------------------------------------------------ face models
def _antelope_from(standin: Path, tmp_path: Path) -> Path:
    """What the hub repository holds: an antelopev2 folder (stand-in ONNX files under antelopev2's names)."""
    folder = tmp_path / "published" / "supports" / "insightface" / "models" / "antelopev2"
    folder.mkdir(parents=True)
    shutil.copy(standin / "det_10g.onnx", folder / "scrfd_10g_bnkps.onnx")
    shutil.copy(standin / "w600k_r50.onnx", folder / "glintr100.onnx")
    return folder


def test_antelopev2_comes_from_the_hub_and_runs(online, standin_pack, tmp_path, monkeypatch):
    fake = FakeHub({"supports": _antelope_from(standin_pack, tmp_path).parents[2]})
    monkeypatch.setattr(hub, "hub_snapshot", fake)
    det = mf.resolve_detector_file("antelopev2", root=tmp_path / "insightface", offline_ok=False)
    assert fake.calls == [("modelscope", "ByteDance/InfiniteYou", ("supports/insightface/models/antelopev2/*",))]
    assert det == mf.cache_dir() / "ByteDance/InfiniteYou/supports/insightface/models/antelopev2/scrfd_10g_bnkps.onnx"
    analyzer = FaceAnalyzer.from_options("antelopev2", embedder="insightface", root=tmp_path / "insightface",
                                         providers=CPU, offline_ok=False)
    assert analyzer.analyze(astronaut()).num_faces == 1 and len(fake.calls) == 1  # the second resolve is cached


def test_antelopev2_already_downloaded_by_diffsynth_is_reused(online, standin_pack, tmp_path, monkeypatch):
    published = _antelope_from(standin_pack, tmp_path)
    shutil.copytree(published.parents[3], tmp_path / "diffsynth_models" / "ByteDance" / "InfiniteYou")
    monkeypatch.setattr(hub, "hub_snapshot", lambda *a: pytest.fail("must not download"))
    det = mf.resolve_detector_file("antelopev2", root=tmp_path / "insightface", offline_ok=False)
    assert det.parent == tmp_path / "diffsynth_models/ByteDance/InfiniteYou/supports/insightface/models/antelopev2"


def test_antelopev2_offline_message(online, tmp_path):
    with pytest.raises(FaceModelsMissingError) as info:
        mf.resolve_detector_file("antelopev2", root=tmp_path / "insightface", offline_ok=True)
    msg = str(info.value)
    assert "scrfd_10g_bnkps.onnx, glintr100.onnx" in msg and "Downloads are off" in msg
    assert "https://modelscope.cn/models/ByteDance/InfiniteYou (supports/insightface/models/antelopev2)" in msg
    assert "--face-models" in msg and info.value.destination.name == "scrfd_10g_bnkps.onnx"


def test_every_download_url_in_the_code_is_a_file_not_a_page():
    """A download hint gives the file's own URL (``/resolve/`` on the Hugging Face hub, ``/releases/download/`` or
    ``raw`` on GitHub), never the page that shows it (``/blob/``), which saves as HTML."""
    import re

    root = Path(__file__).resolve().parents[1] / "lynx_ext"
    urls = [(p.relative_to(root), u) for p in root.rglob("*.py")
            for u in re.findall(r"https?://[^\s\"'`)]+", p.read_text())]
    assert any("releases/download" in u for _, u in urls)  # the scan sees the file URLs
    pages = [(str(p), u) for p, u in urls if re.search(r"(huggingface\.co|github\.com)/[^/]+/[^/]+/blob/", u)]
    assert not pages, f"page URLs where a file URL belongs: {pages}"
