"""``diffsynth-ext app --extension lynx``: a local web app (Gradio) over `LynxGenerator`.

`settings` checks a job's form values, `face_preview` draws what the face analyzer found, `generators` keeps the
one loaded generator, `jobs` runs a job and writes its files, `layout` is the page (the only module that imports
gradio). The command line is `lynx_ext.cli.app`.
"""
from .generators import GeneratorCache
from .jobs import JobResult, JobRunner
from .settings import JobSettings, ModelKey

__all__ = ["GeneratorCache", "JobResult", "JobRunner", "JobSettings", "ModelKey", "build_app"]


def __getattr__(name: str):
    if name == "build_app":  # imports gradio
        from .layout import build_app

        return build_app
    raise AttributeError(f"module 'lynx_ext.app' has no attribute {name!r}")
