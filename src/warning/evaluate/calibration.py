"""Choose the calibration method of each target over the backtest and draw its reliability plot.

Each origin's validation block is cut into folds grouped by household. Both
methods are fitted on all folds but one and applied to the one left out
(``warning.train.fit.cross_fitted_probabilities``). Those out-of-fold
probabilities are pooled over origins, and under ``calibration_method = auto``
the method with the lower pooled criterion (Brier score or ECE) is chosen.
Test rows never take part in the choice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from warning.bundle import CALIBRATION_METHODS  # noqa: E402
from warning.evaluate.report import ReliabilityBin  # noqa: E402
from warning.train.fit import calibration_scores, choose_calibration_method  # noqa: E402

logger = logging.getLogger(__name__)

RELIABILITY_BINS = 10


def pooled_choice(
    labels: list[np.ndarray], probabilities: list[dict[str, np.ndarray]], setting: str, criterion: str
) -> tuple[str, dict[str, dict[str, float]] | None]:
    """Return the method to apply and the pooled out-of-fold scores of every method.

    ``labels`` and ``probabilities`` hold one entry per origin whose validation
    block could be cross-fitted. With ``setting`` other than ``auto`` that
    method is returned, and the scores are still computed for the report.
    """
    scores = None
    if labels:
        pooled_labels = np.concatenate(labels)
        pooled = {
            method: np.concatenate([part[method] for part in probabilities]) for method in CALIBRATION_METHODS
        }
        scores = calibration_scores(pooled_labels, pooled)
    if setting != "auto":
        return setting, scores
    return choose_calibration_method(scores, criterion), scores


def reliability_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = RELIABILITY_BINS
) -> list[ReliabilityBin]:
    """Return equal-frequency bins of sorted probabilities, the same bins as the ECE."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.size == 0:
        return []
    order = np.argsort(probabilities, kind="stable")
    return [
        ReliabilityBin(
            rows=int(members.size),
            positives=int(labels[members].sum()),
            mean_probability=float(probabilities[members].mean()),
            observed_rate=float(labels[members].mean()),
        )
        for members in np.array_split(order, min(bins, labels.size))
    ]


def equal_width_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = RELIABILITY_BINS
) -> list[ReliabilityBin]:
    """Return the non-empty bins of ``bins`` equal-width probability ranges over [0, 1]."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    position = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    result = []
    for number in range(bins):
        members = position == number
        if members.any():
            result.append(
                ReliabilityBin(
                    rows=int(members.sum()),
                    positives=int(labels[members].sum()),
                    mean_probability=float(probabilities[members].mean()),
                    observed_rate=float(labels[members].mean()),
                )
            )
    return result


def plot_reliability(
    target: str, method: str, labels: np.ndarray, calibrated: np.ndarray, raw: np.ndarray, path: Path
) -> Path:
    """Draw the reliability diagram of a target's test probabilities and save it as PNG.

    Top: observed rate against mean probability per bin, with the diagonal of
    perfect calibration. Equal-size bins (the bins of the ECE) are drawn for
    the calibrated and the raw probabilities. For rare targets they crowd near
    zero, so equal-width bins of the calibrated probabilities are drawn too,
    each labelled positives/rows. Bottom: rows per probability range, on a log scale.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    calibrated_bins = reliability_bins(labels, calibrated)
    raw_bins = reliability_bins(labels, raw)
    width_bins = equal_width_bins(labels, calibrated)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(6.4, 7.6), gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    points = [
        value
        for item in (*calibrated_bins, *raw_bins, *width_bins)
        for value in (item.mean_probability, item.observed_rate)
    ]
    upper = min(1.0, max([0.05, *points]) * 1.1)
    top.plot([0, upper], [0, upper], color="grey", linestyle="--", label="perfect calibration")
    top.plot(
        [item.mean_probability for item in raw_bins],
        [item.observed_rate for item in raw_bins],
        marker="s",
        color="tab:orange",
        alpha=0.6,
        label="raw, equal-size bins",
    )
    top.plot(
        [item.mean_probability for item in calibrated_bins],
        [item.observed_rate for item in calibrated_bins],
        marker="o",
        color="tab:blue",
        label=f"{method}, equal-size bins (~{calibrated_bins[0].rows if calibrated_bins else 0} rows each)",
    )
    top.plot(
        [item.mean_probability for item in width_bins],
        [item.observed_rate for item in width_bins],
        marker="D",
        linestyle=":",
        color="tab:green",
        label=f"{method}, equal-width bins",
    )
    for item in width_bins:
        top.annotate(
            f"{item.positives}/{item.rows}",
            (item.mean_probability, item.observed_rate),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    top.set_xlim(0, upper)
    top.set_ylim(0, upper)
    top.set_xlabel("mean predicted probability in bin")
    top.set_ylabel("observed rate in bin")
    top.set_title(
        f"{target}: reliability on backtest test rows\n(labels: positives/rows per equal-width bin)"
    )
    top.legend(loc="upper left", fontsize=8)
    bottom.hist(np.asarray(calibrated, dtype=np.float64), bins=20, range=(0.0, upper), color="tab:blue")
    bottom.set_yscale("log")
    bottom.set_xlim(0, upper)
    bottom.set_xlabel("calibrated probability")
    bottom.set_ylabel("rows")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    logger.info("Saved the reliability plot of %s to %s", target, path)
    return path
