"""Fairness slices: metrics by urban/rural, province, disability and elderly-only households.

Flags are the per-county selections over all households, so a slice's recall
at capacity is the share of that slice's falls the county lists catch. The
gap of a dimension is the highest minus the lowest recall among its slices
with at least ``min_positives`` positives.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from warning.evaluate.capacity import recall_precision
from warning.evaluate.report import SliceDimension, SliceMetrics, finite_or_none
from warning.train.metrics import binary_metrics

# Dimension name -> column of the prediction frame that contains each row's slice.
SLICE_DIMENSIONS = {
    "urban_rural": "urban_rural",
    "province": "province",
    "disabled_members": "disabled_members",
    "elderly_only": "elderly_only",
}


def slice_columns(households: pd.DataFrame) -> pd.DataFrame:
    """Return household_id and the slice of each dimension from the households table."""
    return pd.DataFrame(
        {
            "household_id": households["household_id"].to_numpy(),
            "urban_rural": households["urban_rural"].astype(str).to_numpy(),
            # The first two digits of the region code name the province.
            "province": households["region_code"].astype(str).str[:2].to_numpy(),
            "disabled_members": np.where(
                households["disabled"].to_numpy() > 0, "with_disabled", "without_disabled"
            ),
            "elderly_only": np.where(
                households["elderly"].to_numpy() == households["members"].to_numpy(), "elderly_only", "other"
            ),
        }
    )


def slice_dimension(
    frame: pd.DataFrame,
    dimension: str,
    column: str,
    max_recall_gap: float,
    min_positives: int,
) -> SliceDimension:
    """Return per-slice metrics of one dimension and its recall gap.

    ``frame`` has one row per test household-cut-off with ``label`` (0/1),
    ``probability`` (calibrated), ``flagged`` (model at capacity),
    ``rule_flagged`` (rule at capacity) and the slice ``column``.
    """
    slices = []
    for name, part in frame.groupby(column, sort=True):
        labels = part["label"].to_numpy(dtype=np.float64)
        flags = part["flagged"].to_numpy(dtype=bool)
        recall, precision = recall_precision(labels, flags)
        rule_recall, _ = recall_precision(labels, part["rule_flagged"].to_numpy(dtype=bool))
        metrics = binary_metrics(labels, part["probability"].to_numpy(dtype=np.float64))
        positives = int(labels.sum())
        slices.append(
            SliceMetrics(
                name=str(name),
                rows=len(part),
                positives=positives,
                flagged=int(flags.sum()),
                recall_at_capacity=finite_or_none(recall),
                precision_at_capacity=finite_or_none(precision),
                rule_recall_at_capacity=finite_or_none(rule_recall),
                roc_auc=finite_or_none(metrics["roc_auc"]),
                brier=finite_or_none(metrics["brier"]),
                ece=finite_or_none(metrics["ece"]),
                in_gap=positives >= min_positives and not math.isnan(recall),
            )
        )
    compared = [item for item in slices if item.in_gap]
    if len(compared) < 2:
        return SliceDimension(dimension=dimension, slices=slices, max_recall_gap=max_recall_gap)
    highest = max(compared, key=lambda item: item.recall_at_capacity)
    lowest = min(compared, key=lambda item: item.recall_at_capacity)
    gap = highest.recall_at_capacity - lowest.recall_at_capacity
    return SliceDimension(
        dimension=dimension,
        slices=slices,
        recall_gap=gap,
        highest=highest.name,
        lowest=lowest.name,
        max_recall_gap=max_recall_gap,
        within_bound=gap <= max_recall_gap,
    )


def slice_report(frame: pd.DataFrame, max_recall_gap: float, min_positives: int) -> list[SliceDimension]:
    """Return every slice dimension of the pooled test predictions of one target."""
    return [
        slice_dimension(frame, dimension, column, max_recall_gap, min_positives)
        for dimension, column in SLICE_DIMENSIONS.items()
    ]
