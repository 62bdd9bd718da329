"""The installed distributions: one OpenCV, the declared extras and bounds (what `pip install` gives a user)."""
from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def providers(module: str) -> list[str]:
    """Installed distributions that ship the top-level package ``module`` (by their RECORD files)."""
    found = set()
    for dist in metadata.distributions():
        for f in dist.files or ():
            if f.parts and f.parts[0] == module and len(f.parts) > 1:
                found.add(dist.metadata["Name"].lower())
                break
    return sorted(found)


def pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_distribution_provides_cv2():
    import cv2

    owners = providers("cv2")
    assert len(owners) == 1, f"several distributions install cv2: {owners}; keep only opencv-python"
    assert owners == ["opencv-python"]
    assert Path(cv2.__file__).parent.name == "cv2"
    assert cv2.imdecode is not None  # the module is whole (an uninstall of a second provider can leave it broken)


def test_declared_opencv_is_the_one_insightface_requires():
    deps = pyproject()["project"]["dependencies"]
    names = [re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in deps]
    assert "opencv-python" in names and "opencv-python-headless" not in names
    required = [r for r in metadata.requires("insightface") or () if "extra ==" not in r]
    assert any(re.match(r"opencv-python(\s|[<>=!~;]|$)", r) for r in required), required


@pytest.mark.parametrize("name", ["insightface", "lightning", "jsonargparse", "diffsynth", "numpy", "opencv-python",
                                  "tensorboard"])
def test_major_versions_are_bounded_and_the_installed_one_fits(name):
    from packaging.requirements import Requirement

    reqs = {Requirement(d).name.lower(): Requirement(d) for d in pyproject()["project"]["dependencies"]}
    req = reqs[name]
    assert any(s.operator == "<" for s in req.specifier), f"{name} has no upper bound: {req}"
    assert req.specifier.contains(metadata.version(name), prereleases=True), (name, metadata.version(name), req)


def test_train_extra_installs_the_optimisers_the_recipes_name():
    """The recipes name their optimisers by class path; the `train` extra installs those packages, `make test` too."""
    import yaml
    from packaging.requirements import Requirement

    extras = pyproject()["project"]["optional-dependencies"]
    train = {Requirement(r).name.lower() for r in extras["train"]}
    assert any(r.startswith("lynx-ext[") and "train" in r[9:r.index("]")].split(",") for r in extras["test"])
    root = Path(__file__).resolve().parent.parent
    named = set()
    for recipe in root.glob("recipes/**/*.yaml"):
        optim = ((yaml.safe_load(recipe.read_text()) or {}).get("model") or {}).get("optim") or {}
        if "optimizer" in optim:
            named.add(optim["optimizer"].split(".")[0])
    assert named - {"torch"} and named - {"torch"} <= train, (named, train)
    for dist in train:
        metadata.version(dist)


def test_faces_extra_installs_the_offline_face_models():
    from packaging.requirements import Requirement

    extras = pyproject()["project"]["optional-dependencies"]
    faces = {Requirement(r).name.lower() for r in extras["faces"]}
    assert {"dlib-bin", "face-recognition-models"} <= faces
    assert any(r.startswith("lynx-ext[") and "faces" in r[9:r.index("]")].split(",")
               for r in extras["test"])  # `make test` keeps installing them
    for dist in faces:
        metadata.version(dist)  # installed here
    import dlib  # noqa: F401  (dlib-bin)
    from lynx_ext.conditioners.model_files import DLIB_FILES, resolve_dlib_file

    for kind in DLIB_FILES:  # found in the face-recognition-models package, with no model folder given
        assert resolve_dlib_file(kind).is_file()
