"""Fit, calibrate and evaluate the LightGBM model of one target on a temporally split frame."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from warning.bundle import Calibrator, TargetModel
from warning.settings import Settings
from warning.train.metrics import binary_metrics, top_share_recall_precision
from warning.train.split import BLOCKS

logger = logging.getLogger(__name__)

BLOCK_COLUMN = "block"


@dataclass
class TargetFit:
    """A fitted target model with its row counts per block and its test metrics."""

    target: str
    model: TargetModel
    best_iteration: int
    rows: dict[str, int]
    positives: dict[str, int]
    # Flat metric names such as ``test_roc_auc`` (calibrated) and ``test_raw_roc_auc``.
    metrics: dict[str, float] = field(default_factory=dict)


def lightgbm_params(settings: Settings) -> dict[str, object]:
    """Return the LightGBM training parameters, fixed for reproducible models."""
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "num_leaves": settings.num_leaves,
        "learning_rate": settings.learning_rate,
        "num_threads": settings.num_threads,
        "seed": settings.seed,
        # Same data, parameters and thread count give the same trees.
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


def fit_calibrator(raw: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Fit isotonic regression of labels on raw probabilities and keep its knots.

    ``Calibrator.apply`` interpolates linearly between the knots and keeps the
    end values outside them, which is what ``IsotonicRegression.predict`` does
    with ``out_of_bounds="clip"``.
    """
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(raw, labels)
    return Calibrator(
        x=np.asarray(isotonic.X_thresholds_, dtype=np.float64),
        y=np.asarray(isotonic.y_thresholds_, dtype=np.float64),
    )


def share_suffix(share: float) -> str:
    """Return the metric-name suffix of a top share, e.g. 0.05 -> ``top5pct``."""
    return f"top{100 * share:g}pct".replace(".", "_")


def evaluate(
    model: TargetModel, features: np.ndarray, labels: np.ndarray, review_share: float
) -> dict[str, float]:
    """Return test metrics of calibrated (``test_*``) and raw (``test_raw_*``) probabilities.

    Recall and precision in the top ``review_share`` rank rows by the raw
    probability. The calibration is monotone, so this is the calibrated ranking
    with the ties that isotonic steps create broken by the raw score.
    """
    raw = model.raw_probability(features)
    calibrated = model.probability(features)
    metrics = {f"test_{name}": value for name, value in binary_metrics(labels, calibrated).items()}
    for name, value in binary_metrics(labels, raw).items():
        if name not in ("base_rate", "rows", "positives"):
            metrics[f"test_raw_{name}"] = value
    recall, precision = top_share_recall_precision(labels, raw, review_share)
    suffix = share_suffix(review_share)
    metrics[f"test_recall_{suffix}"] = recall
    metrics[f"test_precision_{suffix}"] = precision
    return metrics


def fit_target(
    frame: pd.DataFrame,
    target: str,
    feature_names: list[str],
    settings: Settings,
    min_train_positives: int,
    review_share: float,
) -> TargetFit | None:
    """Train, calibrate and evaluate one target, or return None with a warning when the data is too thin.

    ``frame`` holds the features, the target's 0/1/NaN label and the block of
    each row. Rows with a missing label are left out.
    """
    labelled = frame[frame[target].notna()]
    parts = {block: labelled[labelled[BLOCK_COLUMN] == block] for block in BLOCKS}
    rows = {block: len(part) for block, part in parts.items()}
    positives = {block: int(part[target].sum()) for block, part in parts.items()}
    logger.info("Target %s: rows per block %s, positives per block %s", target, rows, positives)
    if positives["train"] < min_train_positives:
        logger.warning(
            "Skipped target %s: %d positive labels in the training block, fewer than the %d required",
            target,
            positives["train"],
            min_train_positives,
        )
        return None
    empty = [block for block in ("validation", "test") if rows[block] == 0]
    if empty:
        logger.warning("Skipped target %s: no labelled rows in the %s block(s)", target, ", ".join(empty))
        return None

    def matrix(block: str) -> np.ndarray:
        return parts[block][feature_names].to_numpy(dtype=np.float32)

    def labels(block: str) -> np.ndarray:
        return parts[block][target].to_numpy(dtype=np.float64)

    train_set = lgb.Dataset(
        matrix("train"), label=labels("train"), feature_name=feature_names, free_raw_data=True
    )
    validation_set = lgb.Dataset(matrix("validation"), label=labels("validation"), reference=train_set)
    history: dict[str, dict[str, list[float]]] = {}
    trained = lgb.train(
        lightgbm_params(settings),
        train_set,
        num_boost_round=settings.num_boost_round,
        valid_sets=[validation_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
            lgb.record_evaluation(history),
        ],
    )
    best_iteration = int(trained.best_iteration) or trained.current_iteration()
    # Keep only the trees up to the best iteration, so that the booster in
    # memory predicts exactly what the saved model file will.
    booster = lgb.Booster(model_str=trained.model_to_string(num_iteration=best_iteration))
    validation_logloss = history["validation"]["binary_logloss"][best_iteration - 1]
    logger.info(
        "Trained %s: best iteration %d of at most %d, validation log loss %.5f",
        target,
        best_iteration,
        settings.num_boost_round,
        validation_logloss,
    )

    model = TargetModel(target=target, booster=booster)
    validation_labels = labels("validation")
    if 0 < positives["validation"] < rows["validation"]:
        model.calibrator = fit_calibrator(model.raw_probability(matrix("validation")), validation_labels)
        logger.info(
            "Calibrated %s on %d validation rows: %d isotonic knots",
            target,
            rows["validation"],
            len(model.calibrator.x),
        )
    else:
        logger.warning(
            "Left %s uncalibrated: the validation block has %d positives in %d rows, "
            "so isotonic regression would see one class",
            target,
            positives["validation"],
            rows["validation"],
        )

    metrics = evaluate(model, matrix("test"), labels("test"), review_share)
    metrics["best_iteration"] = float(best_iteration)
    metrics["validation_logloss"] = float(validation_logloss)
    for block in ("train", "validation"):
        metrics[f"{block}_rows"] = float(rows[block])
        metrics[f"{block}_positives"] = float(positives[block])
    undefined = sorted(
        name for name, value in metrics.items() if isinstance(value, float) and math.isnan(value)
    )
    if undefined:
        logger.warning(
            "Target %s: metrics %s are undefined on the test block (one class only)", target, undefined
        )
    return TargetFit(
        target=target,
        model=model,
        best_iteration=best_iteration,
        rows=rows,
        positives=positives,
        metrics=metrics,
    )
