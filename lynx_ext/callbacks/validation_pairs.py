"""The (face image, prompt) pairs of the sample and validation callbacks: a list in the recipe, or a YAML/CSV file."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence, Union

from ..training.args import FacePair

PairsSource = Union[Sequence[Union[FacePair, dict]], str, Path]

FORMAT_HELP = ("a YAML list of {image: PATH, prompt: TEXT} (or {pairs: [...]}) or a CSV with the columns image,prompt; "
               "relative image paths are relative to the file (docs/training.md, 'Validation pairs')")


def load_pairs(source: PairsSource, owner: str = "pairs") -> list[FacePair]:
    """`FacePair`s from a list of pairs/mappings or from a ``.yaml``/``.yml``/``.csv`` file, checked: at least one
    pair, every image an existing file, every prompt non-empty, no other keys. ``owner`` names the setting in errors."""
    base = None
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{owner}: the pairs file {path} does not exist. Write it: {FORMAT_HELP}.")
        items, base = _read_file(path, owner), path.parent
        where = str(path)
    else:
        items, where = list(source), owner
    if not items:
        raise ValueError(f"{owner}: {where} holds no pair; add at least one ({FORMAT_HELP}).")
    pairs = []
    for k, item in enumerate(items):
        image, prompt = _fields(item, f"{where}, pair {k}")
        image_path = Path(image).expanduser()
        if base is not None and not image_path.is_absolute():
            image_path = base / image_path
        if not image_path.is_file():
            raise FileNotFoundError(f"{owner}: face image {image_path} ({where}, pair {k}) does not exist.")
        if not prompt.strip():
            raise ValueError(f"{owner}: {where}, pair {k} has an empty prompt.")
        pairs.append(FacePair(image=str(image_path), prompt=prompt))
    return pairs


def _read_file(path: Path, owner: str) -> list:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or sorted(reader.fieldnames) != ["image", "prompt"]:
                raise ValueError(f"{owner}: {path} must have exactly the columns image,prompt; it has "
                                 f"{reader.fieldnames}.")
            return [dict(row) for row in reader]
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"{owner}: {path} is not valid YAML ({err}).") from None
        if isinstance(data, dict) and set(data) == {"pairs"}:
            data = data["pairs"]
        if data is None:
            return []
        if not isinstance(data, list):
            raise ValueError(f"{owner}: {path} must hold {FORMAT_HELP}.")
        return data
    raise ValueError(f"{owner}: {path} is neither .yaml/.yml nor .csv; use {FORMAT_HELP}.")


def _fields(item, where: str) -> tuple[str, str]:
    if isinstance(item, FacePair):
        return str(item.image), str(item.prompt)
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a mapping with image and prompt, got {item!r}.")
    unknown = set(item) - {"image", "prompt"}
    missing = {"image", "prompt"} - set(item)
    if unknown or missing:
        raise ValueError(f"{where}: use exactly the keys image and prompt"
                         + (f"; unknown {sorted(unknown)}" if unknown else "")
                         + (f"; missing {sorted(missing)}" if missing else "") + ".")
    if item["image"] is None or item["prompt"] is None:
        raise ValueError(f"{where}: image and prompt must not be empty.")
    return str(item["image"]), str(item["prompt"])


class PairedCallback:
    """Mixin of the callbacks that generate pairs, given as ``pairs`` (a list, checked at once) or ``pairs_file``
    (read at ``setup``, when the run starts and before any weight loads, so a recipe naming a file the user has not
    written yet still parses). A separate string argument: LightningCLI would read a file given as ``pairs`` and
    lose the folder its relative image paths are relative to."""

    def init_pairs(self, pairs: Optional[Sequence], pairs_file: Optional[str]) -> None:
        name = type(self).__name__
        if (pairs is None) == (pairs_file is None):
            raise ValueError(f"{name}: give either pairs (a list of {{image, prompt}}) or pairs_file (a YAML/CSV "
                             "file of them), not both and not neither.")
        self._pairs_file = pairs_file
        self._pairs = load_pairs(pairs, name) if pairs is not None else None

    @property
    def pairs(self) -> list[FacePair]:
        if self._pairs is None:
            self._pairs = load_pairs(self._pairs_file, f"{type(self).__name__}.pairs_file")
        return self._pairs

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.pairs  # noqa: B018 - read and check the file now
