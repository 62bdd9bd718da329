"""DiffSynth-Studio's spellings that a ``diffsynth-ext`` command does not take, each with the option that does the
same here. A user who comes from DiffSynth's training script (``--dataset_base_path``, ``--learning_rate``, ...) or
its pipeline arguments (``input_image``, ``tiled``, ...) is told what to type instead of "unrecognized arguments".

Only spellings a command does not accept are listed (``tests/test_cli_conventions.py`` checks that none of them is
one of its options); those it does accept (``--model_paths``, ``--num_inference_steps``, ...) are not here.
"""
from __future__ import annotations

from typing import Iterable, Optional

# Generation options (generate, app): the pipeline's arguments and its example scripts' settings.
_MODELS = {
    "torch_dtype": "--dtype bf16|fp16|fp32",
    "enable_vram_management": "--vram-limit GB (or --offload)",
    "lora_checkpoint": "--lora PATH[:ALPHA] (repeatable)",
    "lora_alpha": "--lora PATH:ALPHA (the alpha follows the file, e.g. --lora dit_lora.safetensors:0.5)",
}
_GENERATE = {
    **_MODELS,
    "input_image": "--image FACE (the face photo Lynx conditions on)",
    "output_path": "--output VIDEO.mp4",
    "tiled": "VAE tiling is already on (--no-tiled turns it off)",
    "tea_cache_l1_thresh": "--step-cache THRESHOLD (docs/speed.md)",
    "tea_cache_model_id": "--step-cache THRESHOLD (docs/speed.md)",
    "input_video": "Lynx makes a video from a face photo (--image) and a prompt only",
    "end_image": "Lynx makes a video from a face photo (--image) and a prompt only",
    "denoising_strength": "Lynx generates from noise (there is no input video to keep)",
}
_DATA = "fit trains from a prepared cache: use --data.cache DIR, built from the dataset by `diffsynth-ext " \
        "prepare --extension lynx --dataset DIR --output DIR`"
FOREIGN_FLAGS: dict[str, dict[str, str]] = {
    "generate": _GENERATE,
    "app": {**_MODELS, "input_image": "upload the face photo in the page", "output_path": "--output-dir DIR"},
    "prepare": {
        "dataset_base_path": "--dataset DIR",
        "dataset_metadata_path": "--metadata FILE",
        "output_path": "--output DIR",
        "data_file_keys": "prepare reads the metadata's video|image|media and id_image columns "
                          "(docs/training_data.md)",
    },
    "fit": {
        "dataset_base_path": _DATA,
        "dataset_metadata_path": _DATA,
        "data_file_keys": _DATA,
        "learning_rate": "--model.optim.lr",
        "weight_decay": "--model.optim.weight_decay",
        "num_epochs": "--trainer.max_epochs (or --trainer.max_steps)",
        "dataset_repeat": "--trainer.max_steps (or --trainer.max_epochs)",
        "output_path": "--trainer.default_root_dir DIR",
        "save_steps": "set every_n_train_steps of a ModelCheckpoint callback in the recipe",
        "gradient_accumulation_steps": "--trainer.accumulate_grad_batches",
        "use_gradient_checkpointing": "--model.gradient_checkpointing true",
        "use_gradient_checkpointing_offload": "--model.gradient_checkpointing true",
        "model_paths": "--model.base.model_paths",
        "model_id_with_origin_paths": "--model.base.model_id_with_origin_paths",
        "tokenizer_path": "--model.base.tokenizer_path",
        "lora_rank": "--model.lora_rank",
        "lora_target_modules": "--model.lora_target_modules",
        "lora_base_model": "--model.lora_rank (a LoRA on the DiT, trained with the adapters)",
        "trainable_models": "fit trains the Lynx adapters; --model.train_dit or --model.lora_rank add the DiT",
        "height": "--data.sample.buckets '[[480, 832]]' (height, width pairs)",
        "width": "--data.sample.buckets '[[480, 832]]' (height, width pairs)",
        "max_pixels": "--data.sample.buckets '[[480, 832]]' (height, width pairs)",
        "num_frames": "--data.sample.num_frames",
        "dataset_num_workers": "--data.num_workers",
        "max_timestep_boundary": "--model.loss.max_timestep_boundary",
        "min_timestep_boundary": "--model.loss.min_timestep_boundary",
    },
    "convert": {"output_path": "--output DST"},
    "eval": {"output_path": "--output DIR", "dataset_base_path": "--subjects DIR (one photo per subject)"},
}


def _name(arg: str) -> str:
    return arg[2:].split("=", 1)[0].replace("-", "_")


def foreign_flag_hint(command: str, args: Iterable[str]) -> Optional[str]:
    """One sentence for the first DiffSynth spelling among ``args`` that ``command`` does not take (None if none)."""
    table = FOREIGN_FLAGS.get(command, {})
    for arg in args:
        if not isinstance(arg, str) or not arg.startswith("--"):
            continue
        if arg == "--":
            break
        ours = table.get(_name(arg))
        if ours:
            spelled = arg.split("=", 1)[0]
            todo = f"use {ours}" if ours.startswith("--") else ours
            return f"{spelled} is DiffSynth-Studio's spelling, not an option of `diffsynth-ext {command}`: {todo}."
    return None
