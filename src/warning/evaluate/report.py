"""The evaluation report: what ``povwarn evaluate`` measured, as one JSON document.

The report is written to ``<work_dir>/reports/evaluation/<version>.json``,
where ``version`` is the evaluated bundle's version (or ``run-<UTC stamp>``
without a bundle). Readers such as model cards and the promotion gate load it
with ``EvaluationReport.read`` and should check ``schema_version``.
``EvaluationReport.model_json_schema()`` returns the JSON Schema.

Conventions:

- Cut-offs and origins are ``YYYY-MM`` strings.
- A metric that is undefined (a single class, no rows, no oracle) is ``null``.
- "At capacity" means the riskiest ``ceil(capacity_share * n)`` labelled
  households of each county (``region_code``) at each test cut-off, where
  ``n`` is the number of the target's labelled households of that county at
  that cut-off. Recall is the share of all positives that are flagged;
  precision is the share of flagged households that are positive.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


def finite_or_none(value: float | None) -> float | None:
    """Return ``value`` as a float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricSet(_Model):
    """Metrics of one scorer (model, rule or oracle) on one set of test rows."""

    rows: int
    positives: int
    base_rate: float | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    # Brier score and ECE need probabilities, so they are null for the rule.
    brier: float | None = None
    ece: float | None = None
    recall_at_capacity: float | None = None
    precision_at_capacity: float | None = None
    # Households flagged at capacity, summed over counties and cut-offs.
    flagged: int = 0


class MetricMeans(_Model):
    """Unweighted means over the origins that were evaluated; null metrics are left out of a mean."""

    origins: int
    roc_auc: float | None = None
    pr_auc: float | None = None
    brier: float | None = None
    ece: float | None = None
    recall_at_capacity: float | None = None
    precision_at_capacity: float | None = None


class OriginSpec(_Model):
    """One origin of the rolling-origin backtest.

    Training and validation labels end by ``origin`` (cut-off + horizon <=
    origin), and every test cut-off is after it. Validation cut-offs are the
    latest eligible ones; training cut-offs end their labels by the first
    validation cut-off.
    """

    origin: str
    train_cutoffs: list[str]
    validation_cutoffs: list[str]
    test_cutoffs: list[str]
    # Households whose rows train and validate the model (a sample when capped).
    train_households: int


class OriginResult(_Model):
    """Model, rule and (simulated data) oracle metrics of one target at one origin."""

    origin: str
    model: MetricSet
    rule: MetricSet
    # The oracle's metrics on the test rows it covers, and the model's on the same rows.
    oracle: MetricSet | None = None
    model_on_oracle_rows: MetricSet | None = None
    best_iteration: int
    train_rows: int
    train_positives: int
    validation_rows: int
    validation_positives: int


class RuleComparison(_Model):
    """Model and rule recall and precision with the same number of flagged households per county."""

    basis: str = Field(description="how many households each county flags, and how the rule ranks them")
    flagged: int
    model_recall: float | None = None
    rule_recall: float | None = None
    # model_recall - rule_recall: positive when the model finds more of the falls.
    recall_margin: float | None = None
    model_precision: float | None = None
    rule_precision: float | None = None


class ReliabilityBin(_Model):
    """One equal-frequency bin of the pooled test probabilities."""

    rows: int
    positives: int
    mean_probability: float
    observed_rate: float


class CalibrationChoice(_Model):
    """The calibration method chosen for a target and the scores that chose it."""

    setting: str = Field(description="calibration_method setting: auto, isotonic or platt")
    criterion: str = Field(description="brier or ece: the out-of-fold score compared under auto")
    method: str = Field(description="isotonic or platt: applied to every origin's test rows")
    # Method -> {"brier": ..., "ece": ...} of cross-fitted probabilities on the
    # validation blocks of all origins, pooled. Null without both labels.
    out_of_fold: dict[str, dict[str, float | None]]
    # Method -> {"brier": ..., "ece": ...} on the pooled test rows, for reference;
    # the choice never looks at test rows.
    test: dict[str, dict[str, float | None]]
    raw_test_brier: float | None = None
    raw_test_ece: float | None = None
    reliability: list[ReliabilityBin] = Field(default_factory=list)
    # PNG file name, in the folder of the report.
    plot: str | None = None


class OracleCeiling(_Model):
    """The model's ranking against the simulator's true risk (simulated data only).

    Metrics are means over origins, on the test rows that have an oracle risk.
    With ``replicas`` runs per household the true risk is a multiple of
    1 / replicas, so ties lower the oracle's ROC-AUC. A rare target can then
    show an ``auc_share`` above 1.
    """

    rows: int
    coverage: float = Field(description="share of test rows with an oracle risk")
    # Minimum number of simulation runs behind a household's true risk; null when the file lacks it.
    replicas: int | None = None
    model_roc_auc: float | None = None
    oracle_roc_auc: float | None = None
    # model / oracle ROC-AUC, and (model - 0.5) / (oracle - 0.5): the model's share of the oracle's lift
    # over chance.
    auc_share: float | None = None
    lift_share: float | None = None
    model_recall_at_capacity: float | None = None
    oracle_recall_at_capacity: float | None = None
    # model / oracle recall at capacity: the model's recall relative to a ranking by the true risk.
    recall_share: float | None = None


class SliceMetrics(_Model):
    """Metrics of one slice (for example rural households) over the pooled test rows of all origins.

    Flags come from the per-county selection over all households, so recall
    here is the share of the slice's positives that the county lists catch.
    """

    name: str
    rows: int
    positives: int
    flagged: int
    recall_at_capacity: float | None = None
    precision_at_capacity: float | None = None
    rule_recall_at_capacity: float | None = None
    roc_auc: float | None = None
    brier: float | None = None
    ece: float | None = None
    # False when the slice has fewer positives than slice_min_positives.
    in_gap: bool


class SliceDimension(_Model):
    """Slices of one dimension and the largest gap in recall at capacity between them."""

    dimension: str
    slices: list[SliceMetrics]
    # max - min recall at capacity over the slices with in_gap; null with fewer than two such slices.
    recall_gap: float | None = None
    highest: str | None = None
    lowest: str | None = None
    max_recall_gap: float
    within_bound: bool | None = None


class TargetEvaluation(_Model):
    """Everything measured for one target."""

    target: str
    origins: list[OriginResult]
    skipped_origins: dict[str, str] = Field(default_factory=dict, description="origin -> reason")
    model: MetricMeans
    rule: MetricMeans
    at_capacity: RuleComparison
    at_rule_count: RuleComparison
    calibration: CalibrationChoice
    oracle: OracleCeiling | None = None
    slices: list[SliceDimension] = Field(default_factory=list)


class EvaluationReport(_Model):
    """The whole evaluation of one model version on one store."""

    schema_version: int = SCHEMA_VERSION
    version: str
    created_at: str
    dataset: str
    store: str
    bundle_version: str | None = None
    mlflow_run_id: str | None = None
    capacity_share: float
    max_recall_gap: float
    # The settings that shape the numbers: horizon, cut-off step, model parameters, rules.
    settings: dict[str, Any]
    origins: list[OriginSpec]
    targets: dict[str, TargetEvaluation]
    # warning.explain.truth.recovery_report of the bundle when true causes exist, else null.
    cause_recovery: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)
    elapsed_seconds: float = 0.0

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> EvaluationReport:
        return cls.model_validate_json(text)

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> EvaluationReport:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def report_path(work_dir: Path, version: str) -> Path:
    """Return where the evaluation report of ``version`` is written."""
    return Path(work_dir) / "reports" / "evaluation" / f"{version}.json"
