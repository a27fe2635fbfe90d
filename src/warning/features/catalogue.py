"""Load and check the declarative feature catalogue in ``features/catalogue.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from warning.bundle import ModelBundle
from warning.contract import TABLES
from warning.panel import SPELL_TABLES, SeriesSpec

AGGREGATIONS = (
    "sum",
    "mean",
    "max",
    "std",
    "cv",
    "count_nonzero",
    "last",
    "drop",
    "months_since_nonzero",
    "below_line",
    "to_line",
    "attribute",
    "loss_since_event",
)
RATIO_AGGREGATIONS = ("sum", "mean")


@dataclass(frozen=True)
class FeatureSpec:
    """One catalogue entry: a model input, how it is computed and its cause group."""

    name: str
    aggregation: str
    cause_group: str
    description: str
    series: str | None = None
    window: int = 1
    recent: int = 3
    per_person: bool = False
    divide_by: str | None = None
    column: str | None = None
    expression: str | None = None
    event_series: str | None = None
    # loss_since_event: events within `excluding_months` after an event of
    # these series belong to that earlier shock and are ignored.
    excluding: tuple[str, ...] = ()
    excluding_months: int = 3


@dataclass(frozen=True)
class Catalogue:
    """The series definitions and the features built on them, in catalogue order."""

    series: dict[str, SeriesSpec]
    features: tuple[FeatureSpec, ...]
    path: Path

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def cause_group_of(self) -> dict[str, str]:
        return {feature.name: feature.cause_group for feature in self.features}

    @property
    def source_tables(self) -> list[str]:
        return sorted({spec.table for spec in self.series.values()})


def _parse_series(name: str, raw: dict, path: Path) -> SeriesSpec:
    table = raw.get("table")
    if table not in TABLES:
        raise ValueError(f"{path}: series {name!r} names unknown table {table!r}; known: {sorted(TABLES)}")
    value = raw.get("value")
    columns = TABLES[table].column_names
    allowed_values = {"rows", *columns}
    if table in SPELL_TABLES:
        allowed_values = {"active", "starts"}
    if table == "insurance":
        allowed_values = {"enrolled"}
    if value not in allowed_values:
        raise ValueError(f"{path}: series {name!r} has value {value!r}; allowed for {table}: {sorted(allowed_values)}")
    where = {}
    for column, values in (raw.get("where") or {}).items():
        if column not in columns:
            raise ValueError(f"{path}: series {name!r} filters on {column!r}, which table {table!r} lacks")
        where[column] = tuple(str(value) for value in values)
    return SeriesSpec(table=table, value=value, where=tuple(sorted(where.items())))


def _parse_feature(raw: dict, series: dict[str, SeriesSpec], cause_groups: set[str] | None, path: Path) -> FeatureSpec:
    name = raw.get("name")
    if not name:
        raise ValueError(f"{path}: a feature entry has no name: {raw}")
    fields = {key: raw[key] for key in FeatureSpec.__dataclass_fields__ if key in raw}
    unknown = set(raw) - set(FeatureSpec.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: feature {name!r} has unknown keys {sorted(unknown)}")
    if "excluding" in fields:
        fields["excluding"] = tuple(fields["excluding"])
    feature = FeatureSpec(**fields)
    if feature.aggregation not in AGGREGATIONS:
        raise ValueError(f"{path}: feature {name!r} has aggregation {feature.aggregation!r}; known: {AGGREGATIONS}")
    if cause_groups is not None and feature.cause_group not in cause_groups:
        raise ValueError(
            f"{path}: feature {name!r} has cause_group {feature.cause_group!r}, not in the cause groups {sorted(cause_groups)}"
        )
    if feature.aggregation == "attribute":
        if (feature.column is None) == (feature.expression is None):
            raise ValueError(f"{path}: attribute feature {name!r} needs exactly one of column or expression")
        return feature
    if feature.series not in series:
        raise ValueError(f"{path}: feature {name!r} uses undefined series {feature.series!r}")
    if feature.divide_by is not None:
        if feature.divide_by not in series:
            raise ValueError(f"{path}: feature {name!r} divides by undefined series {feature.divide_by!r}")
        if feature.aggregation not in RATIO_AGGREGATIONS:
            raise ValueError(f"{path}: feature {name!r}: divide_by works with {RATIO_AGGREGATIONS} only")
    if feature.aggregation == "loss_since_event" and feature.event_series not in series:
        raise ValueError(f"{path}: feature {name!r} needs event_series naming a defined series, got {feature.event_series!r}")
    undefined = [name for name in feature.excluding if name not in series]
    if undefined:
        raise ValueError(f"{path}: feature {name!r} excludes undefined series {undefined}")
    if feature.window < 1:
        raise ValueError(f"{path}: feature {name!r} has window {feature.window}; it must be at least 1 month")
    if feature.aggregation == "drop" and not 0 < feature.recent < feature.window:
        raise ValueError(f"{path}: feature {name!r}: recent ({feature.recent}) must be between 0 and window")
    return feature


def parse_catalogue(text: str, path: Path, cause_groups: set[str] | None = None) -> Catalogue:
    """Parse catalogue YAML text and check every entry; ``path`` names it in errors."""
    raw = yaml.safe_load(text)
    series = {name: _parse_series(name, spec, path) for name, spec in raw.get("series", {}).items()}
    features = tuple(_parse_feature(entry, series, cause_groups, path) for entry in raw.get("features", []))
    names = [feature.name for feature in features]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"{path}: feature names appear more than once: {duplicated}")
    return Catalogue(series=series, features=features, path=path)


def load_catalogue(path: Path, cause_groups: set[str] | None = None) -> Catalogue:
    """Read the catalogue and check every entry against the contract and the cause groups."""
    path = Path(path)
    return parse_catalogue(path.read_text(encoding="utf-8"), path, cause_groups)


def catalogue_of(bundle: ModelBundle, fallback: Path) -> Catalogue:
    """Return the catalogue a bundle was trained with, or the one at ``fallback`` for older bundles."""
    if bundle.catalogue_text:
        return parse_catalogue(bundle.catalogue_text, Path(f"catalogue of model {bundle.version}"))
    return load_catalogue(fallback)
