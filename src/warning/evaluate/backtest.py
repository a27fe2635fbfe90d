"""Rolling-origin backtest: retrain each target at every origin and predict the cut-offs after it.

Features, labels, rule flags and slices are computed once for every cut-off.
Each origin then trains on its own training cut-offs, stops early and
calibrates on its validation cut-offs, and predicts its test cut-offs. Test
rows keep the raw probability and the probability under each calibration
method, so that the method can be chosen after all origins are fitted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from warning.bundle import CALIBRATION_METHODS, TargetModel
from warning.evaluate.origins import BacktestOrigin
from warning.evaluate.rules import FLAG_COLUMN, INCOME_TO_LINE_COLUMN, RuleSet, rule_frame
from warning.evaluate.slices import SLICE_DIMENSIONS, slice_columns
from warning.features import build_features, training_cutoffs
from warning.features.catalogue import Catalogue
from warning.labels import ALL_TARGETS, build_labels
from warning.panel import Panel
from warning.settings import Settings
from warning.train.fit import cross_fitted_probabilities, fit_calibrator, train_booster

logger = logging.getLogger(__name__)

KEYS = ["household_id", "cutoff"]
# Columns carried from the backtest frame to every test prediction.
CONTEXT_COLUMNS = [
    "region_code",
    *SLICE_DIMENSIONS.values(),
    FLAG_COLUMN,
    "rule_score",
    INCOME_TO_LINE_COLUMN,
]


@dataclass
class BacktestData:
    """Features, labels, rule flags and slices of every labelled household-cut-off of one store."""

    panel: Panel
    frame: pd.DataFrame
    feature_names: list[str]


def build_backtest_data(
    panel: Panel, catalogue: Catalogue, rules: RuleSet, settings: Settings
) -> BacktestData:
    """Return one row per household-cut-off with a label for at least one target."""
    cutoffs = training_cutoffs(
        panel, settings.horizon_months, settings.cutoff_step_months, settings.min_history_months
    )
    features = build_features(panel, catalogue, cutoffs)
    labels = build_labels(panel, cutoffs, settings.horizon_months)
    frame = features.merge(labels, on=KEYS, how="inner", validate="one_to_one")
    frame = frame.loc[frame[list(ALL_TARGETS)].notna().any(axis=1)]
    frame = frame.merge(rule_frame(panel, cutoffs, rules), on=KEYS, how="left", validate="one_to_one")
    slices = slice_columns(panel.households).drop(columns=["urban_rural"])
    frame = frame.merge(slices, on="household_id", how="left", validate="many_to_one").reset_index(drop=True)
    frame["region_code"] = frame["region_code"].astype(str)
    frame["urban_rural"] = frame["urban_rural"].astype(str)
    logger.info(
        "Backtest frame: %d labelled household-cut-offs, %d households, %d cut-offs",
        len(frame),
        frame["household_id"].nunique(),
        frame["cutoff"].nunique(),
    )
    return BacktestData(panel=panel, frame=frame, feature_names=catalogue.feature_names)


def sample_households(household_ids: np.ndarray, limit: int, seed: int) -> np.ndarray | None:
    """Return a seeded sample of ``limit`` distinct households, or None to use all (limit 0 or too large)."""
    unique = np.unique(np.asarray(household_ids).astype(str))
    if limit <= 0 or limit >= unique.size:
        return None
    return np.sort(np.random.default_rng(seed).choice(unique, size=limit, replace=False))


@dataclass
class OriginFit:
    """A target fitted at one origin: test predictions and what validation saw."""

    origin: BacktestOrigin
    target: str
    # Test rows: keys, label, raw, one ``p_<method>`` column per calibration method, context columns.
    predictions: pd.DataFrame
    best_iteration: int
    rows: dict[str, int]
    positives: dict[str, int]
    validation_labels: np.ndarray | None = None
    # Method -> cross-fitted validation probabilities; None when the folds could not be formed.
    out_of_fold: dict[str, np.ndarray] | None = None
    seconds: float = 0.0


@dataclass
class BacktestRun:
    """Fits per target (oldest origin first) and the reason each skipped origin was skipped."""

    fits: dict[str, list[OriginFit]] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    train_households: int = 0


def _block_rows(
    frame: pd.DataFrame, target: str, dates: pd.DatetimeIndex, households: np.ndarray | None
) -> pd.DataFrame:
    rows = frame[frame[target].notna() & frame["cutoff"].isin(dates)]
    if households is not None:
        rows = rows[rows["household_id"].astype(str).isin(households)]
    return rows


def fit_origin(
    data: BacktestData, origin: BacktestOrigin, target: str, households: np.ndarray | None, settings: Settings
) -> OriginFit | str:
    """Fit one target at one origin and predict its test rows, or return why it was skipped."""
    started = time.perf_counter()
    frame = data.frame
    parts = {
        "train": _block_rows(frame, target, origin.cutoff_dates("train"), households),
        "validation": _block_rows(frame, target, origin.cutoff_dates("validation"), households),
        "test": _block_rows(frame, target, origin.cutoff_dates("test"), None),
    }
    rows = {block: len(part) for block, part in parts.items()}
    positives = {block: int(part[target].sum()) for block, part in parts.items()}
    if positives["train"] < settings.min_train_positives:
        return (
            f"{positives['train']} positive training labels, fewer than min_train_positives "
            f"{settings.min_train_positives}"
        )
    empty = [block for block in ("validation", "test") if rows[block] == 0]
    if empty:
        return f"no labelled rows in the {' and '.join(empty)} block"

    def matrix(block: str) -> np.ndarray:
        return parts[block][data.feature_names].to_numpy(dtype=np.float32)

    def labels(block: str) -> np.ndarray:
        return parts[block][target].to_numpy(dtype=np.float64)

    booster, best_iteration, _ = train_booster(
        matrix("train"),
        labels("train"),
        matrix("validation"),
        labels("validation"),
        data.feature_names,
        settings,
    )
    model = TargetModel(target=target, booster=booster)
    raw_validation = model.raw_probability(matrix("validation"))
    raw_test = model.raw_probability(matrix("test"))
    validation_labels = labels("validation")

    predictions = parts["test"][KEYS + CONTEXT_COLUMNS].reset_index(drop=True)
    predictions["label"] = labels("test")
    predictions["raw"] = raw_test
    out_of_fold = None
    if 0 < positives["validation"] < rows["validation"]:
        for method in CALIBRATION_METHODS:
            calibrator = fit_calibrator(raw_validation, validation_labels, method)
            predictions[f"p_{method}"] = calibrator.apply(raw_test)
        out_of_fold = cross_fitted_probabilities(
            raw_validation,
            validation_labels,
            parts["validation"]["household_id"].to_numpy(),
            settings.calibration_folds,
            settings.seed,
        )
    else:
        logger.warning(
            "Origin %s, %s: the validation block has %d positives in %d rows, so test probabilities "
            "are left uncalibrated",
            origin.name,
            target,
            positives["validation"],
            rows["validation"],
        )
        for method in CALIBRATION_METHODS:
            predictions[f"p_{method}"] = raw_test
    seconds = time.perf_counter() - started
    logger.info(
        "Origin %s, %s: trained on %d rows (%d positive), best iteration %d, "
        "tested %d rows (%d positive) in %.1f s",
        origin.name,
        target,
        rows["train"],
        positives["train"],
        best_iteration,
        rows["test"],
        positives["test"],
        seconds,
    )
    return OriginFit(
        origin=origin,
        target=target,
        predictions=predictions,
        best_iteration=best_iteration,
        rows=rows,
        positives=positives,
        validation_labels=validation_labels if out_of_fold is not None else None,
        out_of_fold=out_of_fold,
        seconds=seconds,
    )


def run_backtest(data: BacktestData, origins: list[BacktestOrigin], settings: Settings) -> BacktestRun:
    """Fit every target at every origin; origins a target cannot use are recorded as skipped."""
    households = sample_households(
        data.frame["household_id"].to_numpy(), settings.backtest_max_train_households, settings.seed
    )
    total = data.frame["household_id"].nunique()
    run = BacktestRun(train_households=total if households is None else len(households))
    if households is not None:
        logger.info(
            "Backtest trains on a sample of %d of %d households (backtest_max_train_households) "
            "and tests on all of them",
            len(households),
            total,
        )
    for target in ALL_TARGETS:
        run.fits[target] = []
        run.skipped[target] = {}
        for origin in origins:
            result = fit_origin(data, origin, target, households, settings)
            if isinstance(result, str):
                logger.warning("Skipped origin %s for %s: %s", origin.name, target, result)
                run.skipped[target][origin.name] = result
            else:
                run.fits[target].append(result)
    return run
