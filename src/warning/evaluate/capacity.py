"""Flag the riskiest households of each group (county and cut-off) up to a visiting capacity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# share * size is computed in floating point, so 0.07 * 100 gives 7.000000000000001;
# without this slack its ceiling would be 8.
_CEIL_SLACK = 1e-9


def capacity_quota(size: int, share: float) -> int:
    """Return ``ceil(share * size)``, the households a group of ``size`` can visit."""
    if not 0 < share <= 1:
        raise ValueError(f"capacity share must be in (0, 1], got {share}")
    return math.ceil(share * size - _CEIL_SLACK)


def _group_codes(groups: pd.DataFrame | pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(groups, pd.DataFrame):
        return groups.groupby(list(groups.columns), sort=True, dropna=False).ngroup().to_numpy()
    return pd.factorize(pd.Series(np.asarray(groups)), sort=True)[0]


def top_per_group(
    groups: pd.DataFrame | pd.Series | np.ndarray, scores: np.ndarray, quota: np.ndarray
) -> np.ndarray:
    """Return a boolean flag per row: the ``quota`` highest scores of each row's group.

    ``quota`` is the count of each row's group (equal within a group).
    Equal scores keep their input order, so the selection is deterministic.
    """
    scores = np.asarray(scores, dtype=np.float64)
    codes = _group_codes(groups)
    quota = np.asarray(quota, dtype=np.int64)
    if not (codes.shape == scores.shape == quota.shape):
        raise ValueError(
            "groups, scores and quota must have one value per row, "
            f"got shapes {codes.shape}, {scores.shape} and {quota.shape}"
        )
    if np.isnan(scores).any():
        row = int(np.flatnonzero(np.isnan(scores))[0])
        raise ValueError(f"scores must not be NaN, got NaN at row {row}")
    # Sort by group, then by descending score, then by input position.
    order = np.lexsort((np.arange(scores.size), -scores, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, scores.size]))
    rank = np.arange(scores.size) - group_start
    flags = np.zeros(scores.size, dtype=bool)
    flags[order] = rank < quota[order]
    return flags


def capacity_flags(
    groups: pd.DataFrame | pd.Series | np.ndarray, scores: np.ndarray, share: float
) -> np.ndarray:
    """Flag the ``ceil(share * group size)`` highest-scoring rows of every group."""
    codes = _group_codes(groups)
    sizes = np.bincount(codes)
    quota_of_group = np.array([capacity_quota(int(size), share) for size in sizes], dtype=np.int64)
    return top_per_group(codes, scores, quota_of_group[codes])


def recall_precision(labels: np.ndarray, flags: np.ndarray) -> tuple[float, float]:
    """Return recall (NaN without positives) and precision (NaN without flags) of flagged rows."""
    labels = np.asarray(labels, dtype=np.float64)
    flags = np.asarray(flags, dtype=bool)
    hits = float(labels[flags].sum())
    positives = float(labels.sum())
    flagged = int(flags.sum())
    recall = hits / positives if positives else math.nan
    precision = hits / flagged if flagged else math.nan
    return recall, precision
