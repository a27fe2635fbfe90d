"""Read the cause groups of poverty and their assistance measures from ``features/cause_groups.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from warning.bundle import OTHER_GROUP


@dataclass(frozen=True)
class CauseGroup:
    """One cause group: its display label and the assistance measures that address it."""

    name: str
    label: str
    measures: tuple[str, ...]
    # Set for a group that describes a state, not a cause (income close to the
    # line): its contribution is shared among the causes of lost income.
    shared_by_income_loss: dict[str, object] | None = None


def load_cause_groups(path: Path) -> dict[str, CauseGroup]:
    """Read and check the cause groups file, in file order.

    Each top-level key is a group with a ``label`` and a list of ``measures``.
    The file must define the ``other`` group.
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
        measures = entry.get("measures") or []
        if not isinstance(measures, list) or not all(isinstance(measure, str) for measure in measures):
            raise ValueError(
                f"{path}: cause group {name!r} has measures {measures!r}; expected a list of names"
            )
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
            name=str(name), label=label, measures=tuple(measures), shared_by_income_loss=shared
        )
    if OTHER_GROUP not in groups:
        raise ValueError(
            f"{path}: the {OTHER_GROUP!r} cause group is missing; features without a cause count toward it"
        )
    return groups
