"""Fit, calibrate and evaluate the LightGBM model of one target on a temporally split frame."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from warning.bundle import CALIBRATION_METHODS, Calibrator, TargetModel, log_odds
from warning.settings import Settings
from warning.train.metrics import binary_metrics, expected_calibration_error, top_share_recall_precision
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
    # ``isotonic`` or ``platt``; None when the model was left uncalibrated.
    calibration_method: str | None = None


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


def fit_calibrator(raw: np.ndarray, labels: np.ndarray, method: str = "isotonic") -> Calibrator:
    """Fit a calibrator of raw probabilities to 0/1 labels with the given method.

    Isotonic: ``Calibrator.apply`` interpolates linearly between the knots and
    keeps the end values outside them, which is what
    ``IsotonicRegression.predict`` does with ``out_of_bounds="clip"``.
    Platt: an unpenalised logistic regression of the labels on the raw log-odds.
    """
    if method == "platt":
        return fit_platt(raw, labels)
    if method != "isotonic":
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(raw, labels)
    return Calibrator(
        x=np.asarray(isotonic.X_thresholds_, dtype=np.float64),
        y=np.asarray(isotonic.y_thresholds_, dtype=np.float64),
    )


def fit_platt(raw: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Fit Platt scaling: a logistic curve of the labels on the raw log-odds."""
    labels = np.asarray(labels, dtype=np.float64)
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError(f"Platt scaling needs both labels 0 and 1, got only {classes.tolist()}")
    regression = LogisticRegression(C=np.inf, max_iter=1000)
    regression.fit(log_odds(raw)[:, None], labels)
    return Calibrator(
        method="platt", slope=float(regression.coef_[0, 0]), intercept=float(regression.intercept_[0])
    )


def calibration_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Return a fold number per row, with every row of one group (household) in the same fold.

    Groups are shuffled with ``seed`` and dealt to the folds in turn, so fold
    sizes differ by at most one group.
    """
    unique, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(unique.size)
    fold_of_group = np.empty(unique.size, dtype=np.int64)
    fold_of_group[order] = np.arange(unique.size) % max(1, min(folds, unique.size))
    return fold_of_group[inverse]


def cross_fitted_probabilities(
    raw: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> dict[str, np.ndarray] | None:
    """Return out-of-fold calibrated probabilities of every calibration method.

    Each fold is calibrated by a calibrator fitted on the other folds, so the
    probabilities are scored on rows the calibrator never saw. Returns None when
    fewer than two folds can be formed or the rows outside a fold have one class only.
    """
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    fold = calibration_folds(groups, folds, seed)
    if np.unique(fold).size < 2:
        return None
    result = {method: np.empty(raw.size) for method in CALIBRATION_METHODS}
    for number in np.unique(fold):
        held_out = fold == number
        fitting_labels = labels[~held_out]
        if np.unique(fitting_labels).size < 2:
            return None
        for method in CALIBRATION_METHODS:
            calibrator = fit_calibrator(raw[~held_out], fitting_labels, method)
            result[method][held_out] = calibrator.apply(raw[held_out])
    return result


def calibration_scores(
    labels: np.ndarray, probabilities: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Return the Brier score and expected calibration error of each method's probabilities."""
    labels = np.asarray(labels, dtype=np.float64)
    return {
        method: {
            "brier": float(np.mean(np.square(values - labels))) if labels.size else math.nan,
            "ece": expected_calibration_error(labels, values),
        }
        for method, values in probabilities.items()
    }


def choose_calibration_method(scores: dict[str, dict[str, float]] | None, criterion: str) -> str:
    """Return the method with the lowest ``criterion`` (``brier`` or ``ece``).

    Isotonic wins a tie and is returned when no score is finite.
    """
    if criterion not in ("brier", "ece"):
        raise ValueError(f"calibration criterion must be 'brier' or 'ece', got {criterion!r}")
    if not scores:
        return "isotonic"
    finite = {
        method: values[criterion] for method, values in scores.items() if np.isfinite(values[criterion])
    }
    if not finite:
        return "isotonic"
    # CALIBRATION_METHODS lists isotonic first, and min keeps the first of equal values.
    ordered = [method for method in CALIBRATION_METHODS if method in finite]
    return min(ordered, key=lambda method: finite[method])


def select_calibration(
    raw: np.ndarray, labels: np.ndarray, groups: np.ndarray, settings: Settings
) -> tuple[str, dict[str, dict[str, float]] | None]:
    """Return the calibration method to use and, under ``auto``, the out-of-fold scores that chose it."""
    if settings.calibration_method != "auto":
        return settings.calibration_method, None
    probabilities = cross_fitted_probabilities(raw, labels, groups, settings.calibration_folds, settings.seed)
    if probabilities is None:
        logger.warning(
            "Could not compare calibration methods on %d rows because a fold lacks one of the labels; "
            "using isotonic",
            len(labels),
        )
        return "isotonic", None
    scores = calibration_scores(labels, probabilities)
    return choose_calibration_method(scores, settings.calibration_criterion), scores


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


def train_booster(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    feature_names: list[str],
    settings: Settings,
) -> tuple[lgb.Booster, int, float]:
    """Train LightGBM with early stopping on the validation rows.

    Returns the booster cut to its best iteration, that iteration and the
    validation log loss there.
    """
    train_set = lgb.Dataset(
        train_features, label=train_labels, feature_name=feature_names, free_raw_data=True
    )
    validation_set = lgb.Dataset(validation_features, label=validation_labels, reference=train_set)
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
    return booster, best_iteration, float(history["validation"]["binary_logloss"][best_iteration - 1])


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

    booster, best_iteration, validation_logloss = train_booster(
        matrix("train"), labels("train"), matrix("validation"), labels("validation"), feature_names, settings
    )
    logger.info(
        "Trained %s: best iteration %d of at most %d, validation log loss %.5f",
        target,
        best_iteration,
        settings.num_boost_round,
        validation_logloss,
    )

    model = TargetModel(target=target, booster=booster)
    validation_labels = labels("validation")
    calibration_scores_by_method = None
    if 0 < positives["validation"] < rows["validation"]:
        raw_validation = model.raw_probability(matrix("validation"))
        method, calibration_scores_by_method = select_calibration(
            raw_validation, validation_labels, parts["validation"]["household_id"].to_numpy(), settings
        )
        model.calibrator = fit_calibrator(raw_validation, validation_labels, method)
        logger.info(
            "Calibrated %s on %d validation rows with %s calibration (setting %r, out-of-fold scores %s)",
            target,
            rows["validation"],
            method,
            settings.calibration_method,
            calibration_scores_by_method or "not computed",
        )
    else:
        logger.warning(
            "Left %s uncalibrated: the validation block has %d positives in %d rows, "
            "so a calibrator would see one class",
            target,
            positives["validation"],
            rows["validation"],
        )

    metrics = evaluate(model, matrix("test"), labels("test"), review_share)
    metrics["best_iteration"] = float(best_iteration)
    metrics["validation_logloss"] = float(validation_logloss)
    for method, values in (calibration_scores_by_method or {}).items():
        for name, value in values.items():
            metrics[f"validation_calibration_{name}_{method}"] = value
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
        calibration_method=None if model.calibrator is None else model.calibrator.method,
    )
