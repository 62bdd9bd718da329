"""Finding face model files, downloads when online, and FaceModelsMissingError when they are missing."""
from __future__ import annotations

import urllib.error

import pytest
from conftest_faces import CPU, astronaut, standin_pack  # noqa: F401

from lynx_ext.conditioners import FaceAnalyzer, FaceModelsMissingError, LynxInputError
from lynx_ext.conditioners import model_files as mf
from lynx_ext.tiny.face_models import write_standin_pack


def test_offline_missing_pack_names_file_destination_and_url(tmp_path):
    with pytest.raises(FaceModelsMissingError) as info:
        FaceAnalyzer.from_options(None, root=tmp_path, providers=CPU, offline_ok=True)
    msg = str(info.value)
    assert "det_10g.onnx" in msg and str(tmp_path / "models" / "buffalo_l" / "det_10g.onnx") in msg
    assert "https://github.com/deepinsight/insightface/releases/download/model-zoo/buffalo_l.zip" in msg
    assert info.value.destination == tmp_path / "models" / "buffalo_l" / "det_10g.onnx"
    assert isinstance(info.value, FileNotFoundError)


def test_folder_without_detector_and_missing_paths(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FaceModelsMissingError, match=r"det_10g.onnx was not found at .*empty"):
        mf.resolve_detector_file(tmp_path / "empty")
    with pytest.raises(FaceModelsMissingError, match="nope.onnx"):
        mf.resolve_detector_file(tmp_path / "nope.onnx")
    with pytest.raises(LynxInputError, match="does not exist"):
        mf.resolve_detector_file(tmp_path / "no" / "such" / "dir")
    with pytest.raises(FaceModelsMissingError, match="cannot download 'antelope'"):
        mf.resolve_detector_file("antelope", root=tmp_path, offline_ok=False)  # an old pack name: no source at all


def test_pack_folder_onnx_file_and_insightface_root_are_accepted(tmp_path):
    pack = write_standin_pack(tmp_path / "models" / "buffalo_l")
    assert mf.resolve_detector_file(pack) == pack / "det_10g.onnx"
    assert mf.resolve_detector_file(pack / "det_10g.onnx") == pack / "det_10g.onnx"
    assert mf.resolve_detector_file(tmp_path) == pack / "det_10g.onnx"  # an insightface root
    assert mf.resolve_detector_file("buffalo_l", root=tmp_path) == pack / "det_10g.onnx"
    assert mf.resolve_recognizer_file(pack) == pack / "w600k_r50.onnx"


def test_online_pack_download_uses_insightface_and_failures_become_missing_errors(tmp_path, monkeypatch):
    def no_network(name, root):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(mf, "download_insightface_pack", no_network)
    with pytest.raises(FaceModelsMissingError, match="download failed.*Name or service not known"):
        mf.resolve_detector_file(None, root=tmp_path, offline_ok=False)

    calls = []

    def fake_download(name, root):  # what insightface's ensure_available leaves behind
        calls.append(name)
        return write_standin_pack(root / "models" / name)

    monkeypatch.setattr(mf, "download_insightface_pack", fake_download)
    analyzer = FaceAnalyzer.from_options(None, embedder="insightface", root=tmp_path, providers=CPU, offline_ok=False)
    assert calls == ["buffalo_l"] and analyzer.analyze(astronaut()).num_faces == 1


def test_offline_env_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("LYNX_EXT_OFFLINE", "1")
    monkeypatch.setattr(mf, "download_insightface_pack", lambda *a: pytest.fail("must not download"))
    with pytest.raises(FaceModelsMissingError):
        mf.resolve_detector_file(None, root=tmp_path)
    assert mf.offline_mode(None) and not mf.offline_mode(False)


def test_facexlib_weights_missing_offline_and_download(standin_pack, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(mf, "facexlib_weight_dirs", lambda extra=(): [*extra, mf.cache_dir() / "facexlib"])
    destination = tmp_path / "cache" / "lynx_ext" / "facexlib" / "recognition_arcface_ir_se50.pth"
    with pytest.raises(FaceModelsMissingError) as info:
        FaceAnalyzer.from_options(standin_pack, embedder="facexlib", providers=CPU, offline_ok=True)
    assert "recognition_arcface_ir_se50.pth" in str(info.value) and str(destination) in str(info.value)
    assert mf.FACEXLIB_ARCFACE_URL in str(info.value)

    def refused(url, dst):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(mf, "download_url", refused)
    with pytest.raises(FaceModelsMissingError, match="download failed.*no internet"):
        mf.resolve_facexlib_weights(offline_ok=False)

    monkeypatch.setattr(mf, "download_url", lambda url, dst: (dst.parent.mkdir(parents=True), dst.write_bytes(b"x")))
    assert mf.resolve_facexlib_weights(offline_ok=False) == destination
    assert mf.resolve_facexlib_weights(offline_ok=True) == destination  # now cached


def test_dlib_file_missing_message(tmp_path, monkeypatch):
    monkeypatch.setattr(mf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceModelsMissingError, match=r"resnet_model_v1.dat.*face-recognition-models"):
        mf.resolve_dlib_file("recognition", tmp_path)


def test_cuda_request_without_gpu_onnxruntime_falls_back_with_advice(monkeypatch):
    import onnxruntime

    from lynx_ext.conditioners.face_analyzer import onnx_providers

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.warns(UserWarning, match="pip uninstall -y onnxruntime && pip install onnxruntime-gpu"):
        assert onnx_providers("cuda") == (["CPUExecutionProvider"], -1)
    gpu_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: gpu_build)
    providers, ctx = onnx_providers("cuda:1")
    assert providers[0] == ("CUDAExecutionProvider", {"device_id": 1}) and ctx == 0
    assert onnx_providers("cpu", ["CPUExecutionProvider"]) == (["CPUExecutionProvider"], -1)
