"""Cause recovery: how often the explanation names the true cause of a fall into poverty.

Only data with a known truth can measure this, such as simulated households
whose generator records why each one fell below the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warning.bundle import OTHER_GROUP
from warning.panel import month_number

CAUSE_COLUMN = re.compile(r"^cause_(\d+)$")
SHARE_COLUMNS = ["falls", "top_match", "top_match_without_other", "listed_match"]


@dataclass(frozen=True)
class CauseRecovery:
    """Shares of falls whose true cause the explanation named.

    ``top_match``: the top cause group is the true cause. ``listed_match``: any
    of the listed causes is. ``top_match_without_other``: the highest-ranked
    group other than ``other`` is the true cause. It is a share of the falls
    with a specific true cause only, because a true ``other`` can never match
    once ``other`` is excluded, and NaN when there are no such falls.
    ``per_cause`` has one row per true cause with the same columns plus ``falls``.
    """

    falls: int
    top_match: float
    top_match_without_other: float
    listed_match: float
    per_cause: pd.DataFrame


def _require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise KeyError(f"{name} frame lacks columns {missing}; it has {list(frame.columns)}")


def _cause_columns(explanations: pd.DataFrame) -> list[str]:
    ranked = sorted(
        (int(match.group(1)), column)
        for column in explanations.columns
        if (match := CAUSE_COLUMN.match(str(column)))
    )
    if not ranked:
        raise KeyError(
            f"explanations frame has no cause_1, cause_2, ... columns; it has {list(explanations.columns)}; "
            "build it with warning.explain.explain_frame"
        )
    return [column for _, column in ranked]


def _first_listed(causes: np.ndarray, excluded: str) -> np.ndarray:
    """Return each row's first cause that is present and not ``excluded``, or None."""
    usable = pd.notna(causes) & (causes != excluded)
    first = usable.argmax(axis=1)
    chosen = causes[np.arange(len(causes)), first].astype(object)
    chosen[~usable.any(axis=1)] = None
    return chosen


def cause_recovery(
    explanations: pd.DataFrame, falls: pd.DataFrame, horizon_months: int = 12
) -> CauseRecovery:
    """Compare explained causes with the true causes of falls below the line.

    ``explanations`` has ``household_id``, ``cutoff`` (first day of the cut-off
    month) and ranked ``cause_1``, ``cause_2``, ... columns, one row per
    household and cut-off at which the household was at risk. ``falls`` is the
    truth: ``household_id``, ``month`` and ``cause`` of each fall.

    A fall counts when an explanation row of its household has a cut-off
    before the fall month and at most ``horizon_months`` before it. Each fall
    is matched once, with the latest such cut-off: the explanation staff would
    have had last before the household fell.
    """
    _require(explanations, "explanations", ["household_id", "cutoff"])
    _require(falls, "falls", ["household_id", "month", "cause"])
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be at least 1, got {horizon_months}")
    cause_columns = _cause_columns(explanations)

    rows = explanations[["household_id", "cutoff", *cause_columns]].assign(
        cutoff_number=month_number(explanations["cutoff"])
    )
    truth = falls[["household_id", "month", "cause"]].assign(fall_number=month_number(falls["month"]))
    truth = truth.reset_index(drop=True).rename_axis("fall").reset_index()
    pairs = truth.merge(rows, on="household_id", how="inner")
    lead = pairs["fall_number"] - pairs["cutoff_number"]
    pairs = pairs[(lead >= 1) & (lead <= horizon_months)]
    matched = pairs.sort_values(["fall", "cutoff_number"]).groupby("fall").tail(1)

    listed = matched[cause_columns].astype(object)
    causes = listed.where(listed.notna(), None).to_numpy()
    true_cause = matched["cause"].astype(str).to_numpy(dtype=object)
    top = causes[:, 0]
    specific = true_cause != OTHER_GROUP
    outcome = pd.DataFrame(
        {
            "cause": true_cause,
            "top_match": pd.notna(top) & (top == true_cause),
            # NaN for a true "other", so that the means below skip those falls.
            "top_match_without_other": np.where(
                specific, _first_listed(causes, OTHER_GROUP) == true_cause, np.nan
            ).astype(np.float64),
            "listed_match": (pd.notna(causes) & (causes == true_cause[:, None])).any(axis=1),
        }
    )
    share_columns = SHARE_COLUMNS[1:]
    per_cause = outcome.groupby("cause")[share_columns].mean()
    per_cause.insert(0, "falls", outcome.groupby("cause").size())
    overall = outcome[share_columns].mean() if len(outcome) else pd.Series(np.nan, index=share_columns)
    return CauseRecovery(
        falls=len(outcome),
        top_match=float(overall["top_match"]),
        top_match_without_other=float(overall["top_match_without_other"]),
        listed_match=float(overall["listed_match"]),
        per_cause=per_cause,
    )
