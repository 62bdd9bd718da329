"""The optional push of an adapter export to the Hugging Face hub: a generated model card, an injected `HfApi`,
and clear messages with the hub unreachable (offline mode, or no network at all)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


class FakeHfApi:
    """Records the calls `push_adapters` makes (the subset of `huggingface_hub.HfApi` it uses)."""

    def __init__(self, fail: BaseException | None = None):
        self.calls, self.fail, self.uploaded = [], fail, {}

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        self.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))
        if self.fail is not None:
            raise self.fail
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message):
        self.calls.append(("upload_folder", repo_id, repo_type, folder_path))
        self.uploaded = {p.relative_to(folder_path).as_posix(): p.read_bytes()
                         for p in Path(folder_path).rglob("*") if p.is_file()}


@pytest.fixture
def export(tmp_path) -> Path:
    """An export folder as `AdapterExport` writes it: our file, the official folder, a DiT LoRA."""
    import torch
    from safetensors.torch import save_file

    from types import SimpleNamespace

    from lynx_ext.adapters.formats import save_official_folder
    from lynx_ext.tiny.adapters import tiny_adapters

    folder = tmp_path / "adapters" / "step-0000010"
    adapters = tiny_adapters(SimpleNamespace(dim=96, blocks=[None, None]), "full")
    base = json.dumps({"preset": "wan2.1-t2v-14b", "model_paths": [], "model_id_with_origin_paths": []})
    adapters.save(folder / "lynx_adapters.safetensors", metadata={"stage": "stage1_image", "step": 10,
                                                                  "variant": "full", "recipe_fingerprint": "abc123",
                                                                  "base_model": base})
    save_official_folder(adapters, folder / "lynx_full")
    save_file({"blocks.0.self_attn.q.lora_A.weight": torch.zeros(2, 4),
               "blocks.0.self_attn.q.lora_B.weight": torch.zeros(4, 2)}, str(folder / "dit_lora.safetensors"))
    return folder


def test_push_with_an_injected_api_uploads_the_export_and_its_card(export):
    from lynx_ext.training.hub_push import push_adapters

    api = FakeHfApi()
    url = push_adapters(export, "me/lynx-test", api=api)
    assert url == "https://huggingface.co/me/lynx-test"
    assert api.calls[0] == ("create_repo", "me/lynx-test", "model", True, True)
    assert api.calls[1][:3] == ("upload_folder", "me/lynx-test", "model")
    assert {"README.md", "lynx_adapters.safetensors", "dit_lora.safetensors",
            "lynx_full/ip_layers.safetensors"} <= set(api.uploaded)
    card = api.uploaded["README.md"].decode()
    assert card.startswith("---\n") and "base_model: Wan-AI/Wan2.1-T2V-14B" in card
    for text in ("| variant | full |", "| stage | stage1_image |", "| training step | 10 |", "`abc123`",
                 "--lora lynx_export/dit_lora.safetensors", "hf download me/lynx-test",
                 "- `lynx_full/ip_layers.safetensors`"):
        assert text in card, text
    assert (export / "README.md").read_text() == card  # the card stays beside the export


def test_offline_mode_gives_a_clear_message_and_keeps_the_export(export, monkeypatch):
    import huggingface_hub.constants

    from lynx_ext.training.hub_push import HubPushError, push_adapters

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    before = sorted(p.name for p in export.iterdir())
    with pytest.raises(HubPushError) as err:
        push_adapters(export, "me/lynx-test")  # the real HfApi
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and f"python -m lynx_ext.training.hub_push {export} me/lynx-test" in message
    assert sorted(p.name for p in export.iterdir()) == sorted(before + ["README.md"])


def test_no_network_gives_a_clear_message(export, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import HfApi

    from lynx_ext.training import hub_push

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    unreachable = HfApi(endpoint="http://127.0.0.1:9", token="hf_dummy")  # nothing listens on the discard port
    with pytest.raises(hub_push.HubPushError, match="cannot be reached"):
        hub_push.push_adapters(export, "me/lynx-test", api=unreachable)
    with pytest.raises(hub_push.HubPushError, match="refused the token"):
        err = type("HTTPError", (Exception,), {"response": type("R", (), {"status_code": 401})()})("401")
        hub_push.push_adapters(export, "me/lynx-test", api=FakeHfApi(fail=err))


def test_export_callback_pushes_at_the_end_or_warns(export, monkeypatch):
    from lynx_ext.callbacks import AdapterExport
    from lynx_ext.training import hub_push

    api = FakeHfApi()
    monkeypatch.setattr(hub_push, "default_api", lambda token=None: api)
    callback = AdapterExport(push_to_hub="me/lynx-test", hub_private=False)
    assert callback.push(export) == "https://huggingface.co/me/lynx-test"
    assert api.calls[0][3] is False  # public, as asked
    failing = FakeHfApi(fail=ConnectionError("no route to host"))
    monkeypatch.setattr(hub_push, "default_api", lambda token=None: failing)
    with pytest.warns(UserWarning, match="cannot be reached.*push it when online"):
        assert callback.push(export) is None
    with pytest.raises(ValueError, match="OWNER/NAME"):
        AdapterExport(push_to_hub="just-a-name")


def test_push_command_line(export, monkeypatch, capsys):
    import huggingface_hub.constants

    from lynx_ext.training.hub_push import main

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main([str(export), "me/lynx-test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Could not push") and err.count("\n") == 1
    assert main([str(export.parent), "me/lynx-test"]) == 2  # not an export folder
    assert "has no lynx_adapters.safetensors" in capsys.readouterr().err
