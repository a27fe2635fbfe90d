"""Measure cause recovery of a trained bundle against recorded true causes.

The simulator writes the true cause of every fall below the line to
``truth/falls.parquet``, and of every onset of sudden hardship to
``truth/hardship.parquet``. This module explains the households concerned, in
every month they were at risk from the bundle's first test cut-off on, and
compares the explanations with that truth.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from warning.bundle import ModelBundle
from warning.explain.contributions import explain_frame
from warning.explain.recovery import CauseRecovery, cause_recovery
from warning.features import Catalogue, build_features
from warning.labels import ALL_TARGETS, HARDSHIP, formerly_poor
from warning.panel import Panel, month_number

logger = logging.getLogger(__name__)


def read_falls(truth_dir: Path, name: str = "falls") -> pd.DataFrame:
    """Read ``falls`` (or ``hardship``, the onsets of sudden hardship) as Parquet or CSV.

    Columns: household_id, month as YYYY-MM or date, cause.
    """
    parquet, csv = Path(truth_dir) / f"{name}.parquet", Path(truth_dir) / f"{name}.csv"
    if parquet.exists():
        falls = pd.read_parquet(parquet)
    elif csv.exists():
        falls = pd.read_csv(csv, dtype=str)
    else:
        raise FileNotFoundError(
            f"{parquet} not found (nor {name}.csv); only simulated datasets record true causes"
        )
    falls["month"] = pd.to_datetime(falls["month"].astype(str).str[:7], format="%Y-%m").astype("datetime64[ms]")
    return falls


def read_hardship(truth_dir: Path) -> pd.DataFrame | None:
    """Read the true causes of sudden hardship onsets, or return None for a truth folder without them."""
    if not any((Path(truth_dir) / f"hardship.{suffix}").exists() for suffix in ("parquet", "csv")):
        return None
    return read_falls(truth_dir, "hardship")


def test_cutoff_periods(bundle: ModelBundle, panel: Panel) -> np.ndarray:
    """Return every period from the bundle's first test cut-off to the one before the last.

    Staff read scores every month, so a fall is judged by the explanation of the
    month before it, when the shock behind it has usually already shown. The
    test block's own cut-offs are months apart, and a shock that happens after
    a cut-off cannot be in that cut-off's explanation.
    """
    months = bundle.training.get("cutoffs", {}).get("test", "")
    if not months:
        raise ValueError(f"bundle {bundle.version} records no test cut-offs")
    stamps = pd.to_datetime(pd.Series(months.split(",")), format="%Y-%m")
    first = int(panel.period_of_month(month_number(stamps)).min())
    return np.arange(first, panel.n_periods - 1)


def measure_cause_recovery(
    panel: Panel,
    bundle: ModelBundle,
    catalogue: Catalogue,
    falls: pd.DataFrame,
    horizon_months: int,
    top: int,
    hardship: pd.DataFrame | None = None,
) -> dict[str, CauseRecovery]:
    """Return cause recovery per target over households that fell after the first test cut-off.

    Only households with a recorded fall (or, with ``hardship``, a recorded
    onset of sudden hardship) are explained, at every period in which the
    target applied to them: relapse or new poverty while at or above the line,
    sudden hardship while also not yet in hardship.
    """
    onsets = {"relapse": falls, "new_poverty": falls}
    if hardship is not None:
        onsets[HARDSHIP] = hardship
    households = pd.concat([truth["household_id"] for truth in onsets.values()]).drop_duplicates()
    # Only households with a recorded onset are explained, so the panel is rebuilt on them alone.
    panel = Panel(panel.store.subset(households), lines=bundle.lines)
    cutoffs = test_cutoff_periods(bundle, panel)
    features = build_features(panel, catalogue, cutoffs)
    rows = panel.household_positions(features["household_id"])
    columns = np.searchsorted(cutoffs, panel.period_of_month(month_number(features["cutoff"])))
    periods = cutoffs[columns]
    at_risk = panel.below_line()[rows, periods] == 0.0
    former = formerly_poor(panel, cutoffs)[rows, columns]
    applies = {"relapse": at_risk & former, "new_poverty": at_risk & ~former}
    if hardship is not None:
        applies[HARDSHIP] = at_risk & (panel.in_hardship()[rows, periods] == 0.0)
    results = {}
    for target in (name for name in ALL_TARGETS if name in bundle.models and name in applies):
        truth = onsets[target]
        chosen = features[applies[target] & _before_onset(features, truth, horizon_months)].reset_index(drop=True)
        explanations = explain_frame(bundle, target, bundle.feature_matrix(chosen), top=top)
        explanations[["household_id", "cutoff"]] = chosen[["household_id", "cutoff"]]
        results[target] = cause_recovery(explanations, truth, horizon_months=horizon_months)
        logger.info(
            "Cause recovery for %s over %d onsets: top cause %.3f, top specific cause %.3f, listed %.3f",
            target,
            results[target].falls,
            results[target].top_match,
            results[target].top_match_without_other,
            results[target].listed_match,
        )
    return results


def _before_onset(features: pd.DataFrame, truth: pd.DataFrame, horizon_months: int) -> np.ndarray:
    """Flag feature rows whose cut-off is 1 to ``horizon_months`` months before an onset of their household.

    ``cause_recovery`` matches an onset only with such rows, so explaining the
    others would cost time without changing the result.
    """
    rows = pd.DataFrame(
        {"household_id": features["household_id"].to_numpy(), "cutoff": month_number(features["cutoff"])}
    ).reset_index(names="row")
    onsets = pd.DataFrame({"household_id": truth["household_id"].to_numpy(), "onset": month_number(truth["month"])})
    pairs = rows.merge(onsets, on="household_id", how="inner")
    lead = pairs["onset"] - pairs["cutoff"]
    flags = np.zeros(len(features), dtype=bool)
    flags[pairs.loc[(lead >= 1) & (lead <= horizon_months), "row"].to_numpy()] = True
    return flags


def recovery_report(results: dict[str, CauseRecovery]) -> dict[str, object]:
    """Return a JSON-ready report of cause recovery per target and per true cause."""
    return {
        target: {
            "falls": result.falls,
            "top_match": result.top_match,
            "top_match_without_other": result.top_match_without_other,
            "listed_match": result.listed_match,
            "per_cause": json.loads(result.per_cause.to_json(orient="index")),
        }
        for target, result in results.items()
    }
