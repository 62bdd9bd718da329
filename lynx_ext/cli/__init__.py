"""The ``diffsynth-ext`` console script: ``diffsynth-ext <command> --extension NAME [options]``."""
from .main import main

__all__ = ["main"]
