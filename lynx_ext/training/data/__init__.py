"""Training data: the dataset format, media loading and the cached ``prepare`` step (see docs/training_data.md)."""
from __future__ import annotations

from ...conditioners.media import IMAGE, VIDEO, VIDEO_SUFFIXES, load_frames, media_type, probe_media
from .metadata import DatasetError, MetadataRow, find_metadata, read_metadata, row_id
from .prepare import PrepareSummary, prepare_dataset, read_prepared

__all__ = [
    "IMAGE", "VIDEO", "VIDEO_SUFFIXES", "load_frames", "media_type", "probe_media",
    "DatasetError", "MetadataRow", "find_metadata", "read_metadata", "row_id",
    "PrepareSummary", "prepare_dataset", "read_prepared",
]
