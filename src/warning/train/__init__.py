"""Training: temporal split, calibrated LightGBM models, MLflow tracking and the champion bundle.

The service never imports this package; it loads the champion with
``warning.bundle.load_champion``.
"""

from warning.train.cause_groups import CauseGroup, load_cause_groups
from warning.train.metrics import binary_metrics, expected_calibration_error, top_share_recall_precision
from warning.train.pipeline import TrainResult, assign_blocks, build_training_frame, data_fingerprint, train
from warning.train.split import TemporalSplit, split_cutoffs

__all__ = [
    "CauseGroup",
    "TemporalSplit",
    "TrainResult",
    "assign_blocks",
    "binary_metrics",
    "build_training_frame",
    "data_fingerprint",
    "expected_calibration_error",
    "load_cause_groups",
    "split_cutoffs",
    "top_share_recall_precision",
    "train",
]
