"""Metrics of the model, the rule and the oracle on backtest test rows, at per-county capacity.

A prediction frame has one row per test household-cut-off with ``cutoff``,
``region_code``, ``label``, ``raw`` (model probability before calibration),
``probability`` (calibrated), ``rule_flag`` and ``rule_score`` (the rule's
ranking: flagged households first, then lowest income over the line first).
Rankings use ``raw``: calibration is monotone, so this is the calibrated
ranking with the ties of isotonic steps broken by the raw score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from warning.evaluate.capacity import capacity_flags, recall_precision, top_per_group
from warning.evaluate.report import (
    MetricMeans,
    MetricSet,
    OracleCeiling,
    RuleComparison,
    finite_or_none,
)
from warning.evaluate.rules import FLAG_COLUMN
from warning.train.metrics import binary_metrics

GROUP_COLUMNS = ["cutoff", "region_code"]
MEAN_FIELDS = ("roc_auc", "pr_auc", "brier", "ece", "recall_at_capacity", "precision_at_capacity")

AT_CAPACITY_BASIS = (
    "each county flags ceil(capacity_share x its labelled households) at each test cut-off; recall and "
    "precision are means over origins and the margin is their difference. The model flags its highest "
    "risks. The rule flags its flagged households first, lowest trailing income over the line first, then "
    "fills the remaining places with unflagged households, again lowest income over the line first"
)
AT_RULE_COUNT_BASIS = (
    "each county flags as many households as the rule flags there at each test cut-off; recall and "
    "precision are means over origins and the margin is their difference. The rule flags exactly its "
    "flagged households, and the model flags its highest risks"
)


def add_capacity_flags(predictions: pd.DataFrame, share: float) -> pd.DataFrame:
    """Return the frame with ``flagged`` (model) and ``rule_flagged`` (rule) at capacity."""
    groups = predictions[GROUP_COLUMNS]
    return predictions.assign(
        flagged=capacity_flags(groups, predictions["raw"].to_numpy(), share),
        rule_flagged=capacity_flags(groups, predictions["rule_score"].to_numpy(), share),
    )


def metric_set(
    labels: np.ndarray, ranking: np.ndarray, flags: np.ndarray, probability: np.ndarray | None = None
) -> MetricSet:
    """Return ranking metrics of ``ranking``, capacity metrics of ``flags``, calibration of ``probability``.

    Brier score and ECE stay null without ``probability``.
    """
    labels = np.asarray(labels, dtype=np.float64)
    ranked = binary_metrics(labels, np.asarray(ranking, dtype=np.float64))
    recall, precision = recall_precision(labels, flags)
    values = {
        "rows": int(labels.size),
        "positives": int(labels.sum()),
        "base_rate": finite_or_none(ranked["base_rate"]),
        "roc_auc": finite_or_none(ranked["roc_auc"]),
        "pr_auc": finite_or_none(ranked["pr_auc"]),
        "recall_at_capacity": finite_or_none(recall),
        "precision_at_capacity": finite_or_none(precision),
        "flagged": int(np.asarray(flags, dtype=bool).sum()),
    }
    if probability is not None:
        calibrated = binary_metrics(labels, np.asarray(probability, dtype=np.float64))
        values["brier"] = finite_or_none(calibrated["brier"])
        values["ece"] = finite_or_none(calibrated["ece"])
    return MetricSet(**values)


def model_metrics(predictions: pd.DataFrame) -> MetricSet:
    return metric_set(
        predictions["label"].to_numpy(),
        predictions["raw"].to_numpy(),
        predictions["flagged"].to_numpy(),
        predictions["probability"].to_numpy(),
    )


def rule_metrics(predictions: pd.DataFrame) -> MetricSet:
    return metric_set(
        predictions["label"].to_numpy(),
        predictions["rule_score"].to_numpy(),
        predictions["rule_flagged"].to_numpy(),
    )


def mean_metrics(sets: list[MetricSet]) -> MetricMeans:
    """Return the unweighted mean of each metric over the origins where it is defined."""
    means: dict[str, float | None] = {}
    for name in MEAN_FIELDS:
        values = [getattr(item, name) for item in sets if getattr(item, name) is not None]
        means[name] = float(np.mean(values)) if values else None
    return MetricMeans(origins=len(sets), **means)


def _mean(values: list[float]) -> float | None:
    finite = [value for value in values if np.isfinite(value)]
    return float(np.mean(finite)) if finite else None


def _comparison(
    basis: str, labels: np.ndarray, origins: np.ndarray, model_flags: np.ndarray, rule_flags: np.ndarray
) -> RuleComparison:
    """Return recall and precision of both flag sets as unweighted means over origins."""
    per_origin = []
    for origin in pd.unique(origins):
        rows = origins == origin
        per_origin.append(
            (
                *recall_precision(labels[rows], model_flags[rows]),
                *recall_precision(labels[rows], rule_flags[rows]),
            )
        )
    model_recall, model_precision, rule_recall, rule_precision = (
        _mean([values[position] for values in per_origin]) for position in range(4)
    )
    margin = None if model_recall is None or rule_recall is None else model_recall - rule_recall
    return RuleComparison(
        basis=basis,
        flagged=int(np.asarray(model_flags).sum()),
        model_recall=model_recall,
        rule_recall=rule_recall,
        recall_margin=margin,
        model_precision=model_precision,
        rule_precision=rule_precision,
    )


def rule_comparisons(predictions: pd.DataFrame) -> tuple[RuleComparison, RuleComparison]:
    """Return model against rule at equal capacity and at the rule's own flag count per county.

    ``predictions`` contains the test rows of every origin, and its ``origin``
    column names the origin of each row. Without that column the rows count as one origin.
    """
    labels = predictions["label"].to_numpy(dtype=np.float64)
    if "origin" in predictions.columns:
        origins = predictions["origin"].astype(str).to_numpy()
    else:
        origins = np.zeros(len(predictions), dtype=np.int64)
    at_capacity = _comparison(
        AT_CAPACITY_BASIS,
        labels,
        origins,
        predictions["flagged"].to_numpy(dtype=bool),
        predictions["rule_flagged"].to_numpy(dtype=bool),
    )
    rule_flags = predictions[FLAG_COLUMN].to_numpy(dtype=bool)
    groups = predictions[GROUP_COLUMNS].assign(origin=origins)
    rule_count = (
        pd.Series(rule_flags.astype(np.int64))
        .groupby([groups[column].to_numpy() for column in groups.columns])
        .transform("sum")
    )
    model_flags = top_per_group(groups, predictions["raw"].to_numpy(), rule_count.to_numpy())
    at_rule_count = _comparison(AT_RULE_COUNT_BASIS, labels, origins, model_flags, rule_flags)
    return at_capacity, at_rule_count


def attach_oracle(predictions: pd.DataFrame, oracle: pd.DataFrame | None, column: str) -> pd.DataFrame:
    """Return the predictions with an ``oracle`` column: each row's true risk ``column``, NaN when absent."""
    if oracle is None or oracle.empty:
        return predictions.assign(oracle=np.nan)
    risk = oracle[["household_id", "cutoff", column]].rename(columns={column: "oracle"})
    risk = risk.assign(
        household_id=risk["household_id"].astype(str), cutoff=risk["cutoff"].astype(str).str[:7]
    ).drop_duplicates(["household_id", "cutoff"])
    keys = pd.DataFrame(
        {
            "household_id": predictions["household_id"].astype(str).to_numpy(),
            "cutoff": pd.DatetimeIndex(predictions["cutoff"]).strftime("%Y-%m"),
        }
    )
    joined = keys.merge(risk, on=["household_id", "cutoff"], how="left", validate="many_to_one")
    return predictions.assign(oracle=joined["oracle"].to_numpy(dtype=np.float64))


def oracle_metrics(predictions: pd.DataFrame, share: float) -> tuple[MetricSet, MetricSet] | None:
    """Return the oracle's and the model's metrics on the test rows that have an oracle risk, or None.

    Both flag at capacity among those rows only, per county and cut-off.
    """
    covered = predictions[predictions["oracle"].notna()]
    if covered.empty:
        return None
    groups = covered[GROUP_COLUMNS]
    labels = covered["label"].to_numpy()
    oracle = covered["oracle"].to_numpy(dtype=np.float64)
    oracle_flags = capacity_flags(groups, oracle, share)
    model_flags = capacity_flags(groups, covered["raw"].to_numpy(), share)
    return (
        metric_set(labels, oracle, oracle_flags, oracle),
        metric_set(labels, covered["raw"].to_numpy(), model_flags, covered["probability"].to_numpy()),
    )


def _share(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return finite_or_none(numerator / denominator)


def oracle_ceiling(
    oracle_sets: list[MetricSet], model_sets: list[MetricSet], total_rows: int, replicas: int | None = None
) -> OracleCeiling | None:
    """Return the mean oracle and model metrics over origins and the model's share of the oracle's ROC-AUC."""
    if not oracle_sets:
        return None
    oracle_means = mean_metrics(oracle_sets)
    model_means = mean_metrics(model_sets)
    covered = sum(item.rows for item in oracle_sets)
    lift = None
    if oracle_means.roc_auc is not None and model_means.roc_auc is not None:
        lift = _share(model_means.roc_auc - 0.5, oracle_means.roc_auc - 0.5)
    return OracleCeiling(
        rows=covered,
        coverage=covered / total_rows if total_rows else 0.0,
        replicas=replicas,
        model_roc_auc=model_means.roc_auc,
        oracle_roc_auc=oracle_means.roc_auc,
        auc_share=_share(model_means.roc_auc, oracle_means.roc_auc),
        lift_share=lift,
        model_recall_at_capacity=model_means.recall_at_capacity,
        oracle_recall_at_capacity=oracle_means.recall_at_capacity,
        recall_share=_share(model_means.recall_at_capacity, oracle_means.recall_at_capacity),
    )
