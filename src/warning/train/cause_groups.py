"""Read the cause groups of poverty and their assistance measures from ``features/cause_groups.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from warning.bundle import OTHER_GROUP
from warning.contract import TABLES
from warning.features.build import evaluate_expression


@dataclass(frozen=True)
class CauseGroup:
    """One cause group: its display label and the assistance measures that address it."""

    name: str
    label: str
    measures: tuple[str, ...]
    # Measure -> condition on the households table (``elderly > 0``) that a
    # household must meet to be offered it; a measure without one suits everyone.
    conditions: dict[str, str] = field(default_factory=dict)
    # Set for a group that describes a state, not a cause (income close to the
    # line): its contribution is shared among the causes of lost income.
    shared_by_income_loss: dict[str, object] | None = None


def load_cause_groups(path: Path) -> dict[str, CauseGroup]:
    """Read and check the cause groups file, in file order.

    Each top-level key is a group with a ``label`` and a list of ``measures``.
    A measure is a name, or a mapping ``{name: ..., when: ...}`` whose
    condition is an expression over the households table's columns. The file
    must define the ``other`` group.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cause groups file {path} not found; set POVWARN_CAUSE_GROUPS_PATH")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of cause group names, got {type(raw).__name__}")
    groups = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(
                f"{path}: cause group {name!r} must be a mapping with label and measures, got {entry!r}"
            )
        label = entry.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{path}: cause group {name!r} has no label")
        measures, conditions = _measures(path, str(name), entry.get("measures") or [])
        shared = entry.get("shared_by_income_loss")
        if shared is not None:
            if not isinstance(shared, dict) or not isinstance(shared.get("income_feature"), str):
                raise ValueError(
                    f"{path}: cause group {name!r}: shared_by_income_loss needs income_feature, got {shared!r}"
                )
            share = shared.get("min_loss_share", 0.0)
            if not isinstance(share, (int, float)) or not 0 <= share < 1:
                raise ValueError(f"{path}: cause group {name!r}: min_loss_share must be in [0, 1), got {share!r}")
        groups[str(name)] = CauseGroup(
            name=str(name),
            label=label,
            measures=measures,
            conditions=conditions,
            shared_by_income_loss=shared,
        )
    measure_conditions(groups, path)
    if OTHER_GROUP not in groups:
        raise ValueError(
            f"{path}: the {OTHER_GROUP!r} cause group is missing; features without a cause count toward it"
        )
    return groups


def _measures(path: Path, group: str, raw: object) -> tuple[tuple[str, ...], dict[str, str]]:
    """Return a group's measure names and the conditions of those that have one."""
    if not isinstance(raw, list):
        raise ValueError(f"{path}: cause group {group!r} has measures {raw!r}; expected a list")
    names: list[str] = []
    conditions: dict[str, str] = {}
    households = pd.DataFrame({column: pd.Series(dtype="float64") for column in TABLES["households"].column_names})
    for item in raw:
        if isinstance(item, str):
            names.append(item)
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("when"), str):
            raise ValueError(
                f"{path}: cause group {group!r} has measure {item!r}; expected a name or {{name: ..., when: ...}}"
            )
        try:
            evaluate_expression(item["when"], households)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{path}: cause group {group!r}, measure {item['name']!r}: {error}") from error
        names.append(item["name"])
        conditions[item["name"]] = item["when"]
    return tuple(names), conditions


def measure_conditions(groups: dict[str, CauseGroup], path: Path | str = "cause groups") -> dict[str, str]:
    """Return every measure's condition; raise ``ValueError`` if two groups give one measure different ones."""
    merged: dict[str, str] = {}
    for group in groups.values():
        for measure in group.measures:
            condition = group.conditions.get(measure, "")
            if measure in merged and merged[measure] != condition:
                raise ValueError(
                    f"{path}: measure {measure!r} has condition {condition!r} in group {group.name!r} "
                    f"but {merged[measure]!r} elsewhere; give it the same condition everywhere"
                )
            merged[measure] = condition
    return {measure: condition for measure, condition in merged.items() if condition}
