"""Targets: does a household fall below its monitoring line within the horizon?

At a cut-off, a household is at risk if its trailing 12-month income per
person is at or above the line. It then belongs to one target:

- ``relapse``: it had a ``poor`` or ``exited`` registration starting on or
  before the cut-off month;
- ``new_poverty``: it never had one.

With monthly data the label is 1 if trailing income per person falls below
that month's line in any month after the cut-off and within the horizon, and
0 if it stays at or above in all of them. With survey waves it is the outcome
at the next observed wave within the horizon, because waves one or two years
apart are single snapshots. The label is missing when the household is not at
risk, when the horizon runs past the data (monthly data), or when no wave of
the horizon was observed (survey waves).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from warning.panel import Panel, month_number, month_start

logger = logging.getLogger(__name__)

TARGETS = ("relapse", "new_poverty")
FORMERLY_POOR_STATUSES = ("poor", "exited")


def formerly_poor(panel: Panel, cutoffs: np.ndarray) -> np.ndarray:
    """Return a ``(households, cut-offs)`` flag: registered poor or exited by the cut-off."""
    registrations = panel.store.table("registrations")
    registrations = registrations[registrations["status"].isin(FORMERLY_POOR_STATUSES)]
    flags = np.zeros((len(panel.household_ids), len(cutoffs)), dtype=bool)
    if registrations.empty:
        return flags
    rows = panel.household_positions(registrations["household_id"])
    starts = month_number(registrations["start_month"])
    keep = rows >= 0
    first_start = pd.Series(starts[keep]).groupby(rows[keep]).min()
    cutoff_months = panel.cutoff_months(cutoffs)
    flags[first_start.index.to_numpy()] = first_start.to_numpy()[:, None] <= cutoff_months[None, :]
    return flags


def build_labels(panel: Panel, cutoffs: np.ndarray, horizon_months: int) -> pd.DataFrame:
    """Return household_id, cutoff, and one 0/1/NaN column per target."""
    cutoffs = np.asarray(cutoffs, dtype=np.int64)
    below = panel.below_line()
    horizon = panel.periods_for_months(horizon_months)
    n_households = len(panel.household_ids)

    fell = np.full((n_households, len(cutoffs)), np.nan)
    for position, cutoff in enumerate(cutoffs):
        window = below[:, cutoff + 1 : cutoff + 1 + horizon]
        if window.shape[1] == 0 or (panel.period_months == 1 and window.shape[1] < horizon):
            continue
        observed = ~np.isnan(window)
        any_observed = observed.any(axis=1)
        if panel.period_months == 1:
            outcome = (np.nan_to_num(window, nan=0.0) > 0).any(axis=1)
        else:
            next_wave = observed.argmax(axis=1)
            outcome = window[np.arange(n_households), next_wave] > 0
        fell[any_observed, position] = outcome[any_observed]

    at_risk = below[:, cutoffs] == 0.0
    former = formerly_poor(panel, cutoffs)
    relapse = np.where(at_risk & former, fell, np.nan)
    new_poverty = np.where(at_risk & ~former, fell, np.nan)

    frame = pd.DataFrame(
        {
            "household_id": np.tile(panel.household_ids, len(cutoffs)),
            "cutoff": np.repeat(month_start(panel.cutoff_months(cutoffs)).to_numpy(), n_households),
            "relapse": relapse.ravel(order="F"),
            "new_poverty": new_poverty.ravel(order="F"),
        }
    )
    observed = panel.observed[:, cutoffs].ravel(order="F")
    frame = frame.loc[observed].reset_index(drop=True)
    for target in TARGETS:
        known = frame[target].notna()
        logger.info(
            "Labelled %s: %d household-cut-offs at risk, %d fell below the line within %d months (%.2f%%)",
            target,
            int(known.sum()),
            int(frame.loc[known, target].sum()),
            horizon_months,
            100.0 * frame.loc[known, target].mean() if known.any() else 0.0,
        )
    return frame
