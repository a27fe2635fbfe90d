"""Accuracy, ranking and calibration metrics of binary risk predictions."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _checked(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.shape != probabilities.shape or labels.ndim != 1:
        raise ValueError(
            "labels and probabilities must be 1-D of the same length, "
            f"got shapes {labels.shape} and {probabilities.shape}"
        )
    invalid = ~np.isin(labels, (0.0, 1.0))
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise ValueError(f"labels must be 0 or 1, got {float(labels[row])!r} at row {row}")
    return labels, probabilities


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Return the expected calibration error over equal-frequency bins.

    Rows are sorted by probability (ties keep their input order) and cut into
    ``bins`` bins of equal size, the first ones one row larger when the rows do
    not divide evenly. The error is the row-weighted mean over bins of
    ``|mean probability - share of positives|``.
    """
    labels, probabilities = _checked(labels, probabilities)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if labels.size == 0:
        return math.nan
    order = np.argsort(probabilities, kind="stable")
    error = 0.0
    for members in np.array_split(order, min(bins, labels.size)):
        gap = abs(probabilities[members].mean() - labels[members].mean())
        error += gap * members.size / labels.size
    return float(error)


def top_share_recall_precision(labels: np.ndarray, scores: np.ndarray, share: float) -> tuple[float, float]:
    """Return recall and precision among the ``share`` of rows with the highest scores.

    The top contains ``ceil(share * rows)`` rows. Equal scores keep their input
    order, so the selection is deterministic. Recall is NaN without positives.
    """
    labels, scores = _checked(labels, scores)
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if labels.size == 0:
        return math.nan, math.nan
    count = math.ceil(share * labels.size)
    top = np.argsort(-scores, kind="stable")[:count]
    hits = float(labels[top].sum())
    positives = float(labels.sum())
    recall = hits / positives if positives else math.nan
    return recall, hits / count


def binary_metrics(
    labels: np.ndarray, probabilities: np.ndarray, calibration_bins: int = 10
) -> dict[str, float]:
    """Return ROC-AUC, PR-AUC (average precision), Brier score, ECE, base rate, rows and positives.

    ROC-AUC and PR-AUC are NaN when the labels hold a single class.
    """
    labels, probabilities = _checked(labels, probabilities)
    positives = float(labels.sum())
    both_classes = 0 < positives < labels.size
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)) if both_classes else math.nan,
        "pr_auc": float(average_precision_score(labels, probabilities)) if both_classes else math.nan,
        "brier": float(np.mean(np.square(probabilities - labels))) if labels.size else math.nan,
        "ece": expected_calibration_error(labels, probabilities, calibration_bins),
        "base_rate": positives / labels.size if labels.size else math.nan,
        "rows": float(labels.size),
        "positives": positives,
    }
