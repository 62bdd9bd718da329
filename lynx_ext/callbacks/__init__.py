"""Lightning callbacks for Lynx training (listed explicitly in recipes; nothing is auto-registered)."""
from .adapter_export import AdapterExport
from .ema import AdapterEMA
from .face_similarity import FaceSimilarityValidation
from .pending_log import PendingStepLog
from .progress import StepProgressBar
from .sample_videos import SampleVideos
from .stage_schedule import StageSchedule
from .throughput import Throughput

__all__ = ["AdapterExport", "AdapterEMA", "SampleVideos", "FaceSimilarityValidation", "StageSchedule",
           "StepProgressBar", "PendingStepLog", "Throughput"]
