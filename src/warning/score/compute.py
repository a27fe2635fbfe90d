"""Score the households of a panel at its latest period with a model bundle.

Batch scoring and the predict endpoint both call ``score_panel``, so that a
household gets the same probabilities, band and causes either way.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from warning.bundle import ModelBundle
from warning.explain import explain_frame
from warning.features import Catalogue, build_features
from warning.features.build import evaluate_expression
from warning.labels import ALL_TARGETS, HARDSHIP, TARGETS, formerly_poor
from warning.panel import Panel, month_start

logger = logging.getLogger(__name__)

RELAPSE, NEW_POVERTY = TARGETS
SCORE_COLUMNS = [
    "household_id",
    "region_code",
    "township_code",
    "urban_rural",
    "cutoff",
    "target",
    "probability",
    "relapse_probability",
    "new_poverty_probability",
    "sudden_hardship_probability",
    "band",
    "top_causes",
    "measures",
    "below_line_now",
    "model_version",
]


def assign_bands(probability: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Return the band of each probability: the band with the highest threshold at or below it.

    A missing probability (NaN) gets no band (None).
    """
    names = sorted(thresholds, key=thresholds.__getitem__)
    edges = np.array([thresholds[name] for name in names], dtype=np.float64)
    positions = np.searchsorted(edges, probability, side="right") - 1
    bands = np.array(names, dtype=object)[np.clip(positions, 0, len(names) - 1)]
    bands[(positions < 0) | np.isnan(probability)] = None
    return bands


def eligible_measures(conditions: dict[str, str], households: pd.DataFrame) -> dict[str, list[bool]]:
    """Return, for each measure with a condition, whether each household (row) meets it."""
    return {
        measure: (evaluate_expression(condition, households) == 1.0).tolist()
        for measure, condition in conditions.items()
    }


def _cause_lists(
    explanations: pd.DataFrame,
    bundle: ModelBundle,
    top: int,
    min_share: float = 0.0,
    eligible: dict[str, list[bool]] | None = None,
) -> tuple[list[list[dict[str, object]]], list[list[str]]]:
    """Turn ``explain_frame`` output into each row's cause dicts and the measures of those causes.

    The first cause is always listed. A later one is listed only when its
    share of the risk is at least ``min_share``, so that a minor cause does not
    add its measures to a household's list. A measure in ``eligible`` is
    offered only to the rows that meet its condition (no elderly-care subsidy
    where nobody is elderly). A row's measures keep cause order and drop repeats.
    """
    eligible = eligible or {}
    labels = bundle.cause_labels
    ranks = range(1, top + 1)
    # Lists make the per-row loop below several times faster than indexing the frame.
    groups = []
    for rank in ranks:
        names = explanations[f"cause_{rank}"].astype(object)
        groups.append(names.where(names.notna(), None).tolist())
    contributions = [
        explanations[f"cause_{rank}_contribution"].to_numpy().round(6).tolist() for rank in ranks
    ]
    shares = [explanations[f"cause_{rank}_share"].to_numpy().round(4).tolist() for rank in ranks]

    causes_per_row: list[list[dict[str, object]]] = []
    measures_per_row: list[list[str]] = []
    for row in range(len(explanations)):
        causes: list[dict[str, object]] = []
        row_measures: list[str] = []
        for rank in range(top):
            group = groups[rank][row]
            if group is None or (rank > 0 and not shares[rank][row] >= min_share):
                break
            group_measures = [
                measure
                for measure in bundle.measures.get(group, [])
                if measure not in eligible or eligible[measure][row]
            ]
            causes.append(
                {
                    "group": group,
                    "label": labels.get(group, group),
                    "contribution": contributions[rank][row],
                    "share": shares[rank][row],
                    "measures": group_measures,
                }
            )
            row_measures.extend(measure for measure in group_measures if measure not in row_measures)
        causes_per_row.append(causes)
        measures_per_row.append(row_measures)
    return causes_per_row, measures_per_row


def score_panel(
    panel: Panel,
    bundle: ModelBundle,
    catalogue: Catalogue,
    band_thresholds: dict[str, float],
    top: int,
    num_threads: int = 1,
    min_cause_share: float = 0.0,
) -> pd.DataFrame:
    """Score every household observed at the panel's latest period.

    Returns one row per household with the columns in ``SCORE_COLUMNS``.
    ``target`` is ``relapse`` for households registered poor or exited by the
    cut-off and ``new_poverty`` otherwise, and ``probability`` is that
    target's. Both targets' probabilities are given where the bundle has the
    model, NaN where it has not. ``below_line_now`` is True or False, and None
    when the trailing year of income is incomplete. ``top_causes`` contains lists of dicts
    and ``measures`` lists of measure names. ``num_threads`` is LightGBM's
    thread count for the TreeSHAP contributions.
    """
    cutoff = panel.n_periods - 1
    cutoffs = np.array([cutoff])
    features = build_features(panel, catalogue, cutoffs)
    positions = panel.household_positions(features["household_id"])

    matrix = bundle.feature_matrix(features)
    missing = np.full(len(features), np.nan)
    probabilities = {
        target: bundle.models[target].probability(matrix) if target in bundle.models else missing
        for target in ALL_TARGETS
    }
    former = formerly_poor(panel, cutoffs)[positions, 0]
    target = np.where(former, RELAPSE, NEW_POVERTY)
    probability = np.where(former, probabilities[RELAPSE], probabilities[NEW_POVERTY])
    below = panel.below_line()[positions, cutoff]

    households = panel.households.iloc[positions]
    causes: list[list[dict[str, object]]] = [[] for _ in range(len(features))]
    measures: list[list[str]] = [[] for _ in range(len(features))]
    for name in TARGETS:
        rows = np.flatnonzero(target == name)
        if rows.size == 0:
            continue
        if name not in bundle.models:
            logger.warning(
                "Model bundle %s has no %s model, so %d households get no probability",
                bundle.version,
                name,
                rows.size,
            )
            continue
        explanations = explain_frame(bundle, name, matrix[rows], top=top, num_threads=num_threads)
        eligible = eligible_measures(bundle.measure_conditions, households.iloc[rows])
        target_causes, target_measures = _cause_lists(explanations, bundle, top, min_cause_share, eligible)
        for row, row_causes, row_measures in zip(rows, target_causes, target_measures):
            causes[row] = row_causes
            measures[row] = row_measures

    township = households["township_code"].astype(object)
    cutoff_date = month_start(panel.cutoff_months(cutoffs))[0].date()
    frame = pd.DataFrame(
        {
            "household_id": features["household_id"].astype(str).to_numpy(),
            "region_code": households["region_code"].astype(str).to_numpy(),
            "township_code": township.where(township.notna(), None).to_numpy(),
            "urban_rural": households["urban_rural"].astype(str).to_numpy(),
            "cutoff": cutoff_date,
            "target": target,
            "probability": probability,
            "relapse_probability": probabilities[RELAPSE],
            "new_poverty_probability": probabilities[NEW_POVERTY],
            "sudden_hardship_probability": probabilities[HARDSHIP],
            "band": assign_bands(probability, band_thresholds),
            "top_causes": causes,
            "measures": measures,
            # Python bools, because database drivers such as psycopg reject numpy.bool_.
            "below_line_now": [None if np.isnan(value) else bool(value == 1.0) for value in below.tolist()],
            "model_version": bundle.version,
        },
        columns=SCORE_COLUMNS,
    )
    logger.info(
        "Scored %d households at cut-off %s with model %s "
        "(%d relapse, %d new poverty, %d below the line now)",
        len(frame),
        cutoff_date.strftime("%Y-%m"),
        bundle.version,
        int((target == RELAPSE).sum()),
        int((target == NEW_POVERTY).sum()),
        int(np.nansum(below == 1.0)),
    )
    return frame
