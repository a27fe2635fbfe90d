"""Explain risk scores by cause group from LightGBM's TreeSHAP contributions.

``pred_contrib`` gives one log-odds contribution per feature plus the bias, and
they sum to the raw score. Summing a cause group's features gives that group's
contribution, and a group that describes a state rather than a cause (income
close to the line) is then shared among the causes of lost income. The causes of a row are its groups with a positive
contribution, largest first, and a cause's share is its contribution over the
sum of the row's positive group contributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from warning.bundle import OTHER_GROUP, ModelBundle

# Rows per pred_contrib call in the frame variant, which bounds the memory of
# the (rows, features + 1) float64 contribution matrix.
DEFAULT_CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class CauseContribution:
    """One cause group's part in a row's risk."""

    group: str
    label: str
    # Sum of the group's feature contributions, in log-odds.
    contribution: float
    # Contribution over the sum of the row's positive group contributions.
    share: float
    measures: tuple[str, ...]


@dataclass(frozen=True)
class Explanation:
    """The risk of one row and the cause groups that raise it most."""

    target: str
    # Log-odds: the bias plus every feature contribution.
    raw_score: float
    raw_probability: float
    # Calibrated when the bundle has a calibrator for the target, else the raw probability.
    probability: float
    causes: tuple[CauseContribution, ...]

    @property
    def measures(self) -> list[str]:
        """Return the measures of the causes in cause order, each once."""
        return list(dict.fromkeys(measure for cause in self.causes for measure in cause.measures))


def cause_groups_of(bundle: ModelBundle) -> tuple[list[str], np.ndarray]:
    """Return the bundle's cause groups and a ``(features, groups)`` 0/1 matrix assigning features to groups.

    Groups come in the order of ``bundle.measures`` (the cause groups file),
    followed by any group that only the feature map names.
    """
    feature_groups = [bundle.cause_group_of.get(name, OTHER_GROUP) for name in bundle.feature_names]
    names = list(dict.fromkeys([*bundle.measures, *feature_groups]))
    position = {name: index for index, name in enumerate(names)}
    indicator = np.zeros((len(feature_groups), len(names)))
    indicator[np.arange(len(feature_groups)), [position[group] for group in feature_groups]] = 1.0
    return names, indicator


def share_by_income_loss(
    bundle: ModelBundle, names: list[str], groups: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """Move the contribution of each shared group onto the causes of lost income.

    A shared group (``bundle.shared_groups``, such as income close to the line)
    describes a state, not a cause. Its contribution in each row is split among
    the cause groups in proportion to the yearly income per person that each
    lost to its shocks (``bundle.income_loss_features``). Losses under
    ``min_loss_share`` of the income before them are too small to have caused
    the state, so ``other`` receives the difference. A row without losses gives
    the whole contribution to ``other``. Row sums are unchanged, so the groups
    plus the bias still add up to the raw score.
    """
    if not bundle.shared_groups:
        return groups
    groups = groups.copy()
    position = {name: index for index, name in enumerate(names)}
    feature_index = {name: index for index, name in enumerate(bundle.feature_names)}
    losses = np.zeros_like(groups)
    for feature, group in bundle.income_loss_features.items():
        if feature in feature_index and group in position:
            values = np.nan_to_num(features[:, feature_index[feature]], nan=0.0)
            losses[:, position[group]] += np.clip(values, 0.0, None)
    total_loss = losses.sum(axis=1)
    other = position[OTHER_GROUP]
    for name, rule in bundle.shared_groups.items():
        if name not in position:
            continue
        income = np.nan_to_num(features[:, feature_index[str(rule["income_feature"])]], nan=0.0)
        floor = float(rule.get("min_loss_share", 0.0)) * np.clip(income + total_loss, 0.0, None)
        weights = losses.copy()
        weights[:, other] += np.clip(floor - total_loss, 0.0, None)
        weight_total = weights.sum(axis=1)
        weights[weight_total == 0, other] = 1.0
        weights /= weights.sum(axis=1, keepdims=True)
        shared = groups[:, position[name]].copy()
        groups[:, position[name]] = 0.0
        groups += weights * shared[:, None]
    return groups


def _checked_features(bundle: ModelBundle, target: str, features: np.ndarray) -> np.ndarray:
    if target not in bundle.models:
        raise KeyError(f"model bundle {bundle.version} has no {target!r} model; it has {bundle.targets}")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != len(bundle.feature_names):
        raise ValueError(
            f"features must be a 2-D array with {len(bundle.feature_names)} columns in bundle order, "
            f"got shape {features.shape}; build it with ModelBundle.feature_matrix"
        )
    return features


def cause_contributions(
    bundle: ModelBundle, target: str, features: np.ndarray, num_threads: int = 1
) -> pd.DataFrame:
    """Return one row per input row and one column per cause group: the group's contribution in log-odds.

    The bias is not in any group, so a row's groups plus the bias sum to its raw score.
    """
    features = _checked_features(bundle, target, features)
    names, indicator = cause_groups_of(bundle)
    contributions = bundle.models[target].contributions(features, num_threads=num_threads)
    groups = share_by_income_loss(bundle, names, contributions[:, :-1] @ indicator, features)
    return pd.DataFrame(groups, columns=names)


def _explain_chunk(
    bundle: ModelBundle, target: str, features: np.ndarray, top: int, num_threads: int
) -> dict[str, np.ndarray]:
    names, indicator = cause_groups_of(bundle)
    model = bundle.models[target]
    contributions = model.contributions(features, num_threads=num_threads)
    groups = share_by_income_loss(bundle, names, contributions[:, :-1] @ indicator, features)
    raw_score = contributions.sum(axis=1)
    columns: dict[str, np.ndarray] = {
        "raw_score": raw_score,
        "raw_probability": model.raw_probability(features),
        "probability": model.probability(features),
    }

    # Pad with zero-valued dummy groups so that ``top`` may exceed the group count.
    padding = max(0, top - len(names))
    padded = np.hstack([groups, np.zeros((len(groups), padding))])
    padded_names = np.array([*names, *([None] * padding)], dtype=object)
    order = np.argsort(-padded, axis=1, kind="stable")[:, :top]
    ranked = np.take_along_axis(padded, order, axis=1)
    is_cause = ranked > 0
    positive_total = np.clip(groups, 0.0, None).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = ranked / positive_total
    ranked_names = padded_names[order]
    ranked_names[~is_cause] = None
    for rank in range(top):
        columns[f"cause_{rank + 1}"] = ranked_names[:, rank]
        columns[f"cause_{rank + 1}_contribution"] = np.where(is_cause[:, rank], ranked[:, rank], np.nan)
        columns[f"cause_{rank + 1}_share"] = np.where(is_cause[:, rank], shares[:, rank], np.nan)
    return columns


def _frame_columns(top: int) -> list[str]:
    ranks = [
        [f"cause_{rank}", f"cause_{rank}_contribution", f"cause_{rank}_share"] for rank in range(1, top + 1)
    ]
    return ["raw_score", "raw_probability", "probability", *(name for names in ranks for name in names)]


def _column_dtype(name: str) -> str:
    return "string" if name.startswith("cause_") and name.count("_") == 1 else "float64"


def explain_frame(
    bundle: ModelBundle,
    target: str,
    features: np.ndarray,
    top: int = 3,
    num_threads: int = 1,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Return risks and top causes of many rows as one frame, without per-row objects.

    Columns: ``raw_score`` (log-odds), ``raw_probability``, ``probability``,
    then for each rank ``k`` up to ``top``: ``cause_k`` (group name, missing
    when the row has fewer positive groups), ``cause_k_contribution`` and
    ``cause_k_share``. Labels and measures of a group are in
    ``bundle.cause_labels`` and ``bundle.measures``.
    """
    features = _checked_features(bundle, target, features)
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if len(features) == 0:
        return pd.DataFrame(
            {name: pd.Series(dtype=_column_dtype(name)) for name in _frame_columns(top)}, index=index
        )
    parts = [
        pd.DataFrame(_explain_chunk(bundle, target, features[start : start + chunk_rows], top, num_threads))
        for start in range(0, len(features), chunk_rows)
    ]
    frame = pd.concat(parts, ignore_index=True)
    for rank in range(top):
        frame[f"cause_{rank + 1}"] = frame[f"cause_{rank + 1}"].astype("string")
    if index is not None:
        frame.index = index
    return frame


def explain(bundle: ModelBundle, target: str, features: np.ndarray, top: int = 3) -> list[Explanation]:
    """Return one explanation per row: its risk and up to ``top`` cause groups with their measures."""
    features = _checked_features(bundle, target, features)
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if len(features) == 0:
        return []
    # Works on the arrays directly: a DataFrame per call costs more than
    # explaining one row.
    columns = _explain_chunk(bundle, target, features, top, num_threads=1)
    labels = bundle.cause_labels
    explanations = []
    for row in range(len(features)):
        causes = []
        for rank in range(1, top + 1):
            group = columns[f"cause_{rank}"][row]
            if group is None:
                break
            causes.append(
                CauseContribution(
                    group=group,
                    label=labels.get(group, group),
                    contribution=float(columns[f"cause_{rank}_contribution"][row]),
                    share=float(columns[f"cause_{rank}_share"][row]),
                    measures=tuple(bundle.measures.get(group, ())),
                )
            )
        explanations.append(
            Explanation(
                target=target,
                raw_score=float(columns["raw_score"][row]),
                raw_probability=float(columns["raw_probability"][row]),
                probability=float(columns["probability"][row]),
                causes=tuple(causes),
            )
        )
    return explanations
