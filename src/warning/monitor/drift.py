"""Drift of features and scores between a model's training window and the newest month of a store.

The reference sample is every household observed at the bundle's training
cut-offs; the current sample is every household observed at the store's
latest period. Both are computed with the feature catalogue and scored with
the bundle. Each feature and each target's calibrated probability gets a PSI
(``warning.monitor.psi``) and a level: ``major`` above ``drift_major_psi``,
``moderate`` above ``drift_moderate_psi``, else ``stable``.

NOTE: the reference sample includes households whose label was missing, so it
is a superset of the rows the model was trained on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from warning.bundle import ModelBundle
from warning.features import build_features, catalogue_of
from warning.features.build import cutoff_periods_of
from warning.monitor.psi import population_stability
from warning.panel import Panel
from warning.settings import Settings
from warning.store import Store

logger = logging.getLogger(__name__)

LEVELS = ("major", "moderate", "stable")
SCORE_PREFIX = "score:"


def drift_level(psi: float, moderate: float, major: float) -> str:
    """Return ``major`` when ``psi`` is above ``major``, ``moderate`` when above ``moderate``, else ``stable``."""
    if psi > major:
        return "major"
    if psi > moderate:
        return "moderate"
    return "stable"


@dataclass(frozen=True)
class VariableDrift:
    """The PSI of one feature or score and summary statistics of both samples."""

    name: str
    kind: str  # "feature" or "score"
    psi: float
    level: str
    bins: int
    reference_mean: float | None
    current_mean: float | None
    reference_missing_share: float
    current_missing_share: float
    cause_group: str | None = None


@dataclass
class DriftReport:
    """PSI of every feature and score of a bundle between its training window and a newer month."""

    bundle_version: str
    dataset: str
    reference_cutoffs: list[str]
    current_cutoff: str
    reference_rows: int
    current_rows: int
    bins: int
    epsilon: float
    moderate_psi: float
    major_psi: float
    variables: list[VariableDrift]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    notes: list[str] = field(default_factory=list)

    @property
    def drifting(self) -> list[VariableDrift]:
        """Return the variables with moderate or major drift, largest PSI first."""
        return sorted((item for item in self.variables if item.level != "stable"), key=lambda item: -item.psi)

    def to_json(self) -> dict[str, object]:
        body = asdict(self)
        body["drifting"] = {level: [item.name for item in self.drifting if item.level == level] for level in LEVELS[:2]}
        return body

    def to_markdown(self) -> str:
        """Return the report as a Markdown page with one table row per variable, drifting ones first."""
        counts = {level: sum(item.level == level for item in self.variables) for level in LEVELS}
        lines = [
            f"# Drift of model {self.bundle_version}",
            "",
            f"Dataset `{self.dataset}`: the newest cut-off {self.current_cutoff} ({self.current_rows:,} households) "
            f"against the training cut-offs {', '.join(self.reference_cutoffs)} ({self.reference_rows:,} rows).",
            "",
            f"PSI on {self.bins} quantile bins of the training window plus a missing-value bin, empty bins set to "
            f"{self.epsilon:g}. Moderate above {self.moderate_psi:g}, major above {self.major_psi:g}.",
            "",
            f"{counts['major']} major, {counts['moderate']} moderate, {counts['stable']} stable.",
            "",
            "| variable | kind | cause group | PSI | level | mean (train) | mean (newest) | missing (train) | missing (newest) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ordered = sorted(self.variables, key=lambda item: (LEVELS.index(item.level), -item.psi, item.name))
        for item in ordered:
            lines.append(
                f"| `{item.name}` | {item.kind} | {item.cause_group or '-'} | {item.psi:.4f} | {item.level} | "
                f"{_number(item.reference_mean)} | {_number(item.current_mean)} | "
                f"{item.reference_missing_share:.1%} | {item.current_missing_share:.1%} |"
            )
        lines.extend(f"\nNote: {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _mean(values: np.ndarray) -> float | None:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else None


def compare_samples(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    settings: Settings,
    kinds: dict[str, str] | None = None,
    cause_groups: dict[str, str] | None = None,
) -> list[VariableDrift]:
    """Return the PSI and level of each column of ``current`` against ``reference``."""
    missing = [column for column in columns if column not in reference.columns or column not in current.columns]
    if missing:
        raise KeyError(f"drift samples lack columns {missing}")
    kinds = kinds or {}
    cause_groups = cause_groups or {}
    results = []
    for column in columns:
        expected = reference[column].to_numpy(dtype=np.float64)
        actual = current[column].to_numpy(dtype=np.float64)
        index = population_stability(expected, actual, bins=settings.drift_bins, epsilon=settings.drift_epsilon)
        results.append(
            VariableDrift(
                name=column,
                kind=kinds.get(column, "feature"),
                psi=index.psi,
                level=drift_level(index.psi, settings.drift_moderate_psi, settings.drift_major_psi),
                bins=index.edges.size + 1,
                reference_mean=_mean(expected),
                current_mean=_mean(actual),
                reference_missing_share=float(np.isnan(expected).mean()),
                current_missing_share=float(np.isnan(actual).mean()),
                cause_group=cause_groups.get(column),
            )
        )
    return results


def training_cutoffs_of(bundle: ModelBundle) -> list[str]:
    """Return the bundle's training cut-offs as ``YYYY-MM`` strings, or raise ValueError when none are recorded."""
    cutoffs = (bundle.training.get("cutoffs") or {}).get("train") if isinstance(bundle.training, dict) else None
    listed = [item.strip() for item in str(cutoffs or "").split(",") if item.strip()]
    if not listed:
        raise ValueError(
            f"model bundle {bundle.version} records no training cut-offs (training.cutoffs.train in bundle.json); "
            "pass the reference cut-offs explicitly"
        )
    return listed


def _reference_periods(panel: Panel, cutoffs: list[str]) -> np.ndarray:
    try:
        months = pd.Series(pd.to_datetime(cutoffs, format="%Y-%m"))
    except ValueError as error:
        raise ValueError(f"reference cut-offs must be YYYY-MM, got {cutoffs}: {error}") from error
    periods = cutoff_periods_of(panel, months)
    outside = [cutoff for cutoff, period in zip(cutoffs, periods, strict=True) if not 0 <= period < panel.n_periods]
    if outside:
        raise ValueError(
            f"reference cut-offs {outside} lie outside the store's periods; the store must still hold the training window"
        )
    return np.unique(periods)


def measure_drift(
    store: Store, bundle: ModelBundle, settings: Settings, reference_cutoffs: list[str] | None = None
) -> DriftReport:
    """Compute the PSI of every bundle feature and score between the training window and the newest period.

    ``reference_cutoffs`` (``YYYY-MM``) default to the bundle's training
    cut-offs. Logs a warning per drifting variable.
    """
    cutoffs = reference_cutoffs or training_cutoffs_of(bundle)
    panel = Panel(store, lines=bundle.lines)
    reference_periods = _reference_periods(panel, cutoffs)
    newest = panel.n_periods - 1
    catalogue = catalogue_of(bundle, settings.catalogue_path)
    frame = build_features(panel, catalogue, np.unique(np.append(reference_periods, newest)))
    periods = cutoff_periods_of(panel, frame["cutoff"])
    reference = frame.loc[np.isin(periods, reference_periods)].reset_index(drop=True)
    current = frame.loc[periods == newest].reset_index(drop=True)
    if reference.empty or current.empty:
        raise ValueError(
            f"store {store.folder} has {len(reference)} observed rows at the reference cut-offs {cutoffs} and "
            f"{len(current)} at its newest period; both samples need rows"
        )
    notes = []
    if newest in reference_periods:
        notes.append("the newest period is one of the training cut-offs, so the store contains no newer data")

    kinds = {name: "feature" for name in bundle.feature_names}
    for sample in (reference, current):
        matrix = bundle.feature_matrix(sample)
        for target, model in bundle.models.items():
            sample[f"{SCORE_PREFIX}{target}"] = model.probability(matrix)
    for target in bundle.models:
        kinds[f"{SCORE_PREFIX}{target}"] = "score"
    variables = compare_samples(reference, current, list(kinds), settings, kinds, bundle.cause_group_of)

    current_cutoff = pd.Timestamp(current["cutoff"].iloc[0]).strftime("%Y-%m")
    report = DriftReport(
        bundle_version=bundle.version,
        dataset=store.info.name,
        reference_cutoffs=[stamp.strftime("%Y-%m") for stamp in pd.DatetimeIndex(reference["cutoff"].unique()).sort_values()],
        current_cutoff=current_cutoff,
        reference_rows=len(reference),
        current_rows=len(current),
        bins=settings.drift_bins,
        epsilon=settings.drift_epsilon,
        moderate_psi=settings.drift_moderate_psi,
        major_psi=settings.drift_major_psi,
        variables=variables,
        notes=notes,
    )
    for item in report.drifting:
        logger.warning(
            "Drift in %s %s of model %s: PSI %.3f (%s) at %s against the training window; mean %s -> %s",
            item.kind,
            item.name,
            bundle.version,
            item.psi,
            item.level,
            current_cutoff,
            _number(item.reference_mean),
            _number(item.current_mean),
        )
    logger.info(
        "Measured drift of %d variables of model %s at %s: %d drifting",
        len(variables),
        bundle.version,
        current_cutoff,
        len(report.drifting),
    )
    return report


def write_drift_report(report: DriftReport, settings: Settings) -> tuple[Path, Path]:
    """Write the report as JSON and Markdown to ``<work_dir>/reports/drift/<version>-<cut-off>.*``."""
    folder = Path(settings.work_dir) / "reports" / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{report.bundle_version}-{report.current_cutoff}"
    json_path = folder / f"{stem}.json"
    markdown_path = folder / f"{stem}.md"
    json_path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown_path.write_text(report.to_markdown(), encoding="utf-8")
    logger.info("Wrote the drift report to %s and %s", json_path, markdown_path)
    return json_path, markdown_path
