"""Optional push of an adapter export to the Hugging Face hub, with a generated model card.

``python -m lynx_ext.training.hub_push EXPORT_DIR OWNER/NAME [--public]`` pushes a folder written by
`AdapterExport` (its ``push_to_hub`` option does the same at the end of training). Offline, or without a token, the
export stays on disk and the error says what to run later.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

ADAPTERS_FILE = "lynx_adapters.safetensors"
LORA_FILE = "dit_lora.safetensors"
CARD_FILE = "README.md"


class HubPushError(RuntimeError):
    """The push did not happen (the message says why and how to push later)."""


def default_api(token: Optional[str] = None):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def export_metadata(folder: Path) -> dict:
    """The metadata stored in the export's adapter file (stage, step, base model, recipe fingerprint, variant)."""
    from safetensors import safe_open

    path = folder / ADAPTERS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not an adapter export: it has no {ADAPTERS_FILE} (AdapterExport writes "
                                "one under <run>/lightning_logs/version_N/adapters/step-N/ and last/).")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    from ..adapters.formats.signatures import CONFIG_METADATA_KEY

    try:
        config = json.loads(meta.get(CONFIG_METADATA_KEY) or "{}")
    except ValueError:
        config = {}
    if "variant" not in meta and isinstance(config, dict) and config.get("variant"):
        meta["variant"] = str(config["variant"])
    return meta


def model_card(folder: str | Path, repo_id: str) -> str:
    """A model card (YAML front matter + usage) for the export in ``folder``."""
    folder = Path(folder)
    meta = export_metadata(folder)
    base = _base_model(meta.get("base_model"))
    variant = meta.get("variant") or next((p.name[len("lynx_"):] for p in folder.glob("lynx_*") if p.is_dir()), "")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != CARD_FILE)
    lora = (folder / LORA_FILE).is_file()
    front = ["---", "library_name: diffsynth", "pipeline_tag: text-to-video",
             "tags: [lynx, lynx-ext, identity-preserving, wan2.1, diffsynth]"]
    if base:
        front.append(f"base_model: {base}")
    front.append("---")
    lines = [*front, "", f"# {repo_id.split('/')[-1]}", "",
             f"Lynx {variant} adapters (identity-preserving video, arXiv 2509.15496) trained with "
             "lynx-ext on a frozen Wan2.1 base model"
             + (f" (`{base}`)" if base else "") + ".", "",
             "| | |", "|---|---|",
             f"| variant | {variant or 'unknown'} |",
             f"| stage | {meta.get('stage') or '-'} |",
             f"| training step | {meta.get('step', '-')} |",
             f"| recipe fingerprint | `{meta.get('recipe_fingerprint', '-')}` |",
             f"| DiT LoRA | {'yes, `' + LORA_FILE + '`' if lora else 'no'} |", "",
             "## Use", "", "```bash",
             f"hf download {repo_id} --local-dir lynx_export",
             "diffsynth-ext generate --extension lynx --variant " + (variant or "full")
             + " --image face.jpg --prompt \"...\" \\",
             "    --adapters lynx_export/" + ADAPTERS_FILE + (f" --lora lynx_export/{LORA_FILE}" if lora else "")
             + " --output out.mp4", "```", "",
             "The official-layout folder (`lynx_<variant>/`) loads in the official code and in ComfyUI-WanVideoWrapper "
             "after `diffsynth-ext convert --to comfyui`.", "",
             "## Files", "", *[f"- `{f}`" for f in files], "",
             "Face embeddings at training time came from the embedder the data was prepared with; use the same one "
             "at inference. The base model and the face models carry their own licences.", ""]
    return "\n".join(lines)


def _base_model(raw: Optional[str]) -> str:
    """The hub id of the base model recorded by the export (its ``base`` hyper-parameters), or ''."""
    from ..models.presets import BASE_MODELS

    try:
        base = json.loads(raw) if raw else {}
    except ValueError:
        return ""
    if not isinstance(base, dict):
        return ""
    specs = list(base.get("model_id_with_origin_paths") or [])
    if not specs and not base.get("model_paths") and base.get("preset") in BASE_MODELS:
        specs = BASE_MODELS[base["preset"]].model_id_with_origin_paths
    return specs[0].split(":", 1)[0] if specs else ""


def push_adapters(folder: str | Path, repo_id: str, *, private: bool = True, api=None, token: Optional[str] = None,
                  commit_message: Optional[str] = None) -> str:
    """Write the model card into ``folder`` and upload the folder to the hub model repo ``repo_id`` (created if
    needed). Returns the repo URL. Raises `HubPushError` when the hub cannot be reached or refuses the push."""
    folder = Path(folder)
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"push_to_hub: {repo_id!r} is not a hub repo id; use OWNER/NAME.")
    card = model_card(folder, repo_id)
    from ..atomic_write import write_text_atomic

    write_text_atomic(folder / CARD_FILE, card)
    api = api if api is not None else default_api(token)
    later = (f"The export is complete on disk; push it when online with `python -m lynx_ext.training.hub_push "
             f"{folder} {repo_id}`.")
    try:
        url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          commit_message=commit_message or f"lynx-ext adapters from {folder.name}")
    except Exception as err:  # noqa: BLE001 - every hub failure becomes one clear message
        raise HubPushError(f"Could not push {folder} to the Hugging Face hub repo {repo_id}: {_reason(err)}. "
                           f"{later}") from None
    return str(getattr(url, "url", None) or url or f"https://huggingface.co/{repo_id}")


def _reason(err: BaseException) -> str:
    name = type(err).__name__
    text = str(err).splitlines()[0] if str(err) else name
    status = getattr(getattr(err, "response", None), "status_code", None)
    if name == "OfflineModeIsEnabled":
        return "offline mode is on (HF_HUB_OFFLINE=1); unset it on a machine with internet"
    if status in (401, 403):
        return f"the hub refused the token ({status}); log in with `hf auth login` or set HF_TOKEN to a write token"
    connection = isinstance(err, (ConnectionError, TimeoutError, OSError)) or any(
        n in name for n in ("Connect", "Timeout", "Network", "Transport"))
    if connection:
        return f"the hub cannot be reached ({name}: {text}); check the network or the HF_ENDPOINT setting"
    return f"{name}: {text}"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lynx_ext.training.hub_push",
                                description="Push an adapter export folder (with a generated model card) to the hub.")
    p.add_argument("folder", help="an export folder: <run>/adapters/latest, or "
                   "<run>/lightning_logs/version_N/adapters/last or step-N")
    p.add_argument("repo_id", help="OWNER/NAME of the hub model repo (created if missing, private unless --public)")
    p.add_argument("--public", action="store_true", help="create the repo public")
    args = p.parse_args(argv)
    try:
        print(push_adapters(args.folder, args.repo_id, private=not args.public))
    except (HubPushError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
