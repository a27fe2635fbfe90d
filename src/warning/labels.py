"""Targets: does a household fall below its monitoring line within the horizon?

At a cut-off, a household is at risk if its trailing 12-month income per
person is at or above the line. It then belongs to one target:

- ``relapse``: it had a ``poor`` or ``exited`` registration starting on or
  before the cut-off month;
- ``new_poverty``: it never had one.

A third target, ``sudden_hardship``, applies to every household at or above
the line whose income minus rigid spending (out-of-pocket medical and
schooling costs) is also at or above it. Its label is 1 if, within the
horizon, income minus rigid spending falls below the line while income alone
does not.

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

# The two fall targets split the at-risk households between them; scoring
# gives each household the one that applies. Sudden hardship applies to all.
TARGETS = ("relapse", "new_poverty")
HARDSHIP = "sudden_hardship"
ALL_TARGETS = (*TARGETS, HARDSHIP)
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


def _outcome_within_horizon(panel: Panel, state: np.ndarray, cutoffs: np.ndarray, horizon: int) -> np.ndarray:
    """Return 1 where ``state`` is 1 within the horizon after each cut-off, 0 where not, NaN unknown.

    Monthly data: any month of the horizon counts, and the horizon must lie
    inside the data. Survey waves: the next observed wave decides.
    """
    n_households = state.shape[0]
    outcome = np.full((n_households, len(cutoffs)), np.nan)
    for position, cutoff in enumerate(cutoffs):
        window = state[:, cutoff + 1 : cutoff + 1 + horizon]
        if window.shape[1] == 0 or (panel.period_months == 1 and window.shape[1] < horizon):
            continue
        known = ~np.isnan(window)
        any_known = known.any(axis=1)
        if panel.period_months == 1:
            happened = (np.nan_to_num(window, nan=0.0) > 0).any(axis=1)
        else:
            next_wave = known.argmax(axis=1)
            happened = window[np.arange(n_households), next_wave] > 0
        outcome[any_known, position] = happened[any_known]
    return outcome


def build_labels(panel: Panel, cutoffs: np.ndarray, horizon_months: int) -> pd.DataFrame:
    """Return household_id, cutoff, and one 0/1/NaN column per target."""
    cutoffs = np.asarray(cutoffs, dtype=np.int64)
    below = panel.below_line()
    horizon = panel.periods_for_months(horizon_months)
    n_households = len(panel.household_ids)

    fell = _outcome_within_horizon(panel, below, cutoffs, horizon)
    hardship = panel.in_hardship()
    # Months under the line are poverty, not sudden hardship: in_hardship leaves them unknown.
    entered_hardship = _outcome_within_horizon(panel, hardship, cutoffs, horizon)

    at_risk = below[:, cutoffs] == 0.0
    former = formerly_poor(panel, cutoffs)
    relapse = np.where(at_risk & former, fell, np.nan)
    new_poverty = np.where(at_risk & ~former, fell, np.nan)
    hardship_at_risk = at_risk & (hardship[:, cutoffs] == 0.0)
    sudden_hardship = np.where(hardship_at_risk, entered_hardship, np.nan)

    frame = pd.DataFrame(
        {
            "household_id": np.tile(panel.household_ids, len(cutoffs)),
            "cutoff": np.repeat(month_start(panel.cutoff_months(cutoffs)).to_numpy(), n_households),
            "relapse": relapse.ravel(order="F"),
            "new_poverty": new_poverty.ravel(order="F"),
            HARDSHIP: sudden_hardship.ravel(order="F"),
        }
    )
    observed = panel.observed[:, cutoffs].ravel(order="F")
    frame = frame.loc[observed].reset_index(drop=True)
    for target in ALL_TARGETS:
        known = frame[target].notna()
        logger.info(
            "Labelled %s: %d household-cut-offs at risk, %d positive within %d months (%.2f%%)",
            target,
            int(known.sum()),
            int(frame.loc[known, target].sum()),
            horizon_months,
            100.0 * frame.loc[known, target].mean() if known.any() else 0.0,
        )
    return frame
