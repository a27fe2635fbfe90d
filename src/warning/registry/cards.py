"""Model cards: a Markdown page per bundle version, written to ``models/cards/<version>.md``.

A card is generated from the bundle (data window, features, held-out metrics,
calibrators), its evaluation report (backtest metrics, slices, calibration
choice, rule baseline, oracle), the registry (aliases, registered versions,
MLflow run) and the latest promotion record of the version. It is also logged
to the training run as the artifact ``model_card/<version>.md``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from warning.bundle import CHAMPION, ModelBundle, models_dir
from warning.evaluate.report import EvaluationReport, MetricMeans, RuleComparison, TargetEvaluation
from warning.features import Catalogue, catalogue_of
from warning.registry.aliases import (
    CHALLENGER,
    RegisteredBundle,
    bundle_folder,
    check_version,
    find_alias,
    find_bundle,
    registered_bundles,
    registry_client,
    registry_exists,
)
from warning.registry.promotion import promotions_dir
from warning.registry.reports import evaluation_path, find_evaluation
from warning.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

CARD_ARTIFACT = "model_card"
INTENDED_USE = (
    "Decision support for the county and township staff who visit and verify households: the score "
    "orders the households to visit first and the cause groups suggest what to check and which "
    "assistance measures may fit.",
    "Never an automatic decision. No household is registered, refused assistance, removed from "
    "monitoring or contacted because of its score alone; staff verify every flagged household in person.",
    "Staff may disagree with a score. Every override is recorded with its reason, and the household "
    "may ask to see and correct the data behind its score.",
    "Not for ranking regions or staff, and not for use outside the monitoring programme.",
)
MEAN_COLUMNS = (
    ("roc_auc", "ROC-AUC", 3),
    ("pr_auc", "PR-AUC", 3),
    ("brier", "Brier", 4),
    ("ece", "ECE", 4),
    ("recall_at_capacity", "recall at capacity", 3),
    ("precision_at_capacity", "precision at capacity", 3),
)


def number(value: float | int | None, digits: int = 3) -> str:
    """Format a metric for a card: fixed decimals, ``n/a`` when undefined."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and value != value:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows)
    return lines


@dataclass
class CardInputs:
    """Everything a card is rendered from; registry and report parts are optional."""

    bundle: ModelBundle
    catalogue: Catalogue | None
    report: EvaluationReport | None = None
    report_path: Path | None = None
    registered: RegisteredBundle | None = None
    aliases: list[str] = field(default_factory=list)
    registered_names: dict[str, str] = field(default_factory=dict)
    promotion: dict[str, object] | None = None
    known_limits: dict[str, object] = field(default_factory=dict)
    generated_at: str = ""
    card_folder: Path | None = None


def _status_section(inputs: CardInputs) -> list[str]:
    bundle = inputs.bundle
    training = bundle.training
    registered = ", ".join(f"`{name}` v{number_}" for name, number_ in inputs.registered_names.items())
    rows = [
        ("Registry alias", ", ".join(inputs.aliases) or "none"),
        ("Registered models", registered or "not registered"),
        ("MLflow run", f"`{training.get('mlflow_run_id', 'unknown')}` in experiment `{training.get('mlflow_experiment', 'unknown')}`"),
        ("Targets", ", ".join(bundle.targets)),
        (
            "Evaluation report",
            f"`{inputs.report_path}` ({inputs.report.created_at})"
            if inputs.report is not None
            else "none: run `povwarn evaluate` for this version",
        ),
        ("Card generated", inputs.generated_at),
    ]
    if inputs.promotion is not None:
        decision = inputs.promotion
        reasons = decision.get("reasons") or []
        text = f"{decision.get('outcome')} at {decision.get('decided_at')}"
        if decision.get("forced"):
            text += f", analyst override: {decision.get('override_reason')}"
        if reasons:
            text += "; failed checks: " + "; ".join(str(reason) for reason in reasons)
        rows.append(("Last promotion decision", text))
    return [f"# Model card: {bundle.version}", "", *_table(("", ""), rows), ""]


def _intended_use_section() -> list[str]:
    return ["## Intended use", "", *(f"- {line}" for line in INTENDED_USE), ""]


def _data_section(inputs: CardInputs) -> list[str]:
    training = inputs.bundle.training
    cutoffs = training.get("cutoffs") or {}
    rows = training.get("rows") or {}
    lines = [
        "## Data window",
        "",
        f"- Dataset: `{training.get('dataset', 'unknown')}`, observed by {inputs.bundle.period}",
        f"- Data fingerprint: `{training.get('data_fingerprint', 'unknown')}` "
        f"({training.get('data_fingerprint_kind', 'kind not recorded')})",
        f"- Embargo between blocks: {training.get('embargo_months', 'n/a')} months",
    ]
    skipped = training.get("skipped_targets") or []
    if skipped:
        lines.append(f"- Targets skipped for lack of data: {', '.join(skipped)}")
    lines.append("")

    block_rows = [
        (block, str(cutoffs.get(block) or "-").replace(",", ", "), number(rows.get(block)) if block in rows else "-")
        for block in ("train", "validation", "test", "embargoed")
    ]
    lines.extend(_table(("block", "cut-offs", "labelled rows"), block_rows))

    report = inputs.report
    if report is not None and report.origins:
        lines.extend(["", f"Backtest on store `{report.store}` (dataset `{report.dataset}`), {len(report.origins)} origins:", ""])
        lines.extend(
            _table(
                ("origin", "train cut-offs", "validation cut-offs", "test cut-offs", "train households"),
                (
                    (
                        origin.origin,
                        f"{origin.train_cutoffs[0]} to {origin.train_cutoffs[-1]}" if origin.train_cutoffs else "-",
                        ", ".join(origin.validation_cutoffs) or "-",
                        ", ".join(origin.test_cutoffs) or "-",
                        number(origin.train_households),
                    )
                    for origin in report.origins
                ),
            )
        )
    lines.append("")
    return lines


def _features_section(inputs: CardInputs) -> list[str]:
    bundle = inputs.bundle
    labels = bundle.cause_labels
    descriptions = {}
    if inputs.catalogue is not None:
        descriptions = {feature.name: feature.description for feature in inputs.catalogue.features}
    groups: dict[str, list[str]] = {}
    for name in bundle.feature_names:
        groups.setdefault(bundle.cause_group_of.get(name, "other"), []).append(name)

    lines = [
        "## Features",
        "",
        f"{len(bundle.feature_names)} features in {len(groups)} cause groups, computed at each cut-off from "
        "data dated on or before it.",
        "",
    ]
    lines.extend(
        _table(
            ("cause group", "features"),
            ((f"{labels.get(group, group)} (`{group}`)", len(names)) for group, names in groups.items()),
        )
    )

    lines.extend(["", "<details><summary>Every feature</summary>", ""])
    lines.extend(
        _table(
            ("feature", "cause group", "description"),
            (
                (f"`{name}`", bundle.cause_group_of.get(name, "other"), descriptions.get(name, "").strip() or "-")
                for name in bundle.feature_names
            ),
        )
    )
    lines.extend(["", "</details>", ""])
    return lines


def _means_row(target: str, scorer: str, means: MetricMeans) -> list[str]:
    return [target, scorer, str(means.origins)] + [number(getattr(means, key), digits) for key, _, digits in MEAN_COLUMNS]


def _holdout_rows(bundle: ModelBundle) -> list[list[str]]:
    rows = []
    for target in bundle.targets:
        metrics = bundle.metrics.get(target, {})
        recall_key = next((key for key in sorted(metrics) if key.startswith("test_recall_top")), None)
        precision_key = recall_key.replace("recall", "precision") if recall_key else None
        share = recall_key[len("test_recall_top") :].replace("_", ".").replace("pct", "%") if recall_key else "-"
        rows.append(
            [
                target,
                number(metrics.get("test_roc_auc")),
                number(metrics.get("test_pr_auc")),
                number(metrics.get("test_brier"), 4),
                number(metrics.get("test_ece"), 4),
                number(metrics.get("test_raw_ece"), 4),
                number(metrics.get("test_base_rate")),
                number(int(metrics["test_rows"])) if "test_rows" in metrics else "n/a",
                f"{number(metrics.get(recall_key) if recall_key else None)} / "
                f"{number(metrics.get(precision_key) if precision_key else None)} (top {share})",
            ]
        )
    return rows


def _metrics_section(inputs: CardInputs) -> list[str]:
    lines = ["## Metrics by target", ""]
    report = inputs.report
    if report is None:
        lines.extend(["No backtest: run `povwarn evaluate` for this version.", ""])
    else:
        lines.extend(
            [
                f"Rolling-origin backtest, unweighted means over origins. Capacity is the riskiest "
                f"{100 * report.capacity_share:g}% of each county's labelled households at each test cut-off.",
                "",
            ]
        )
        rows = []
        for target, evaluation in report.targets.items():
            rows.append(_means_row(target, "model", evaluation.model))
            rows.append(_means_row(target, "rule", evaluation.rule))
        lines.extend(_table(["target", "scorer", "origins", *(label for _, label, _ in MEAN_COLUMNS)], rows))
        lines.append("")
    lines.extend(["Held-out test block of the training run (calibrated probabilities):", ""])
    lines.extend(
        _table(
            ("target", "ROC-AUC", "PR-AUC", "Brier", "ECE", "raw ECE", "base rate", "rows", "recall / precision"),
            _holdout_rows(inputs.bundle),
        )
    )
    lines.append("")
    return lines


def _slices_section(inputs: CardInputs) -> list[str]:
    lines = ["## Metrics by slice", ""]
    report = inputs.report
    if report is None:
        return [*lines, "No backtest, so no slice metrics: run `povwarn evaluate` for this version.", ""]
    lines.extend(
        [
            "Pooled test rows of all origins. Flags come from each county's list, so recall is the share of "
            "a slice's falls that the county lists catch. Slices with too few positives are shown but left "
            "out of the gap.",
            "",
        ]
    )
    for target, evaluation in report.targets.items():
        for dimension in evaluation.slices:
            lines.extend([f"### {target}: {dimension.dimension}", ""])
            lines.extend(
                _table(
                    ("slice", "rows", "positives", "flagged", "recall", "precision", "rule recall", "ROC-AUC", "ECE", "in gap"),
                    (
                        (
                            item.name,
                            number(item.rows),
                            number(item.positives),
                            number(item.flagged),
                            number(item.recall_at_capacity),
                            number(item.precision_at_capacity),
                            number(item.rule_recall_at_capacity),
                            number(item.roc_auc),
                            number(item.ece, 4),
                            "yes" if item.in_gap else "no",
                        )
                        for item in dimension.slices
                    ),
                )
            )
            if dimension.recall_gap is None:
                verdict = "undefined (fewer than two slices with enough positives)"
            else:
                within = dimension.recall_gap <= dimension.max_recall_gap
                verdict = (
                    f"{number(dimension.recall_gap)} ({dimension.highest} highest, {dimension.lowest} lowest), "
                    f"{'within' if within else 'beyond'} the bound {dimension.max_recall_gap:g}"
                )
            lines.extend(["", f"Largest recall gap: {verdict}.", ""])
    return lines


def _relative_link(target: Path, folder: Path | None) -> str:
    if folder is None:
        return target.as_posix()
    try:
        return Path(os.path.relpath(target, folder)).as_posix()
    except ValueError:
        # Different drives on Windows have no relative path.
        return target.as_posix()


def _calibration_section(inputs: CardInputs) -> list[str]:
    lines = ["## Calibration", ""]
    bundle = inputs.bundle
    methods = {
        target: "none" if model.calibrator is None else getattr(model.calibrator, "method", "isotonic")
        for target, model in bundle.models.items()
    }
    lines.extend(
        _table(
            ("target", "bundle calibrator", "held-out ECE", "held-out raw ECE"),
            (
                (
                    target,
                    methods[target],
                    number(bundle.metrics.get(target, {}).get("test_ece"), 4),
                    number(bundle.metrics.get(target, {}).get("test_raw_ece"), 4),
                )
                for target in bundle.targets
            ),
        )
    )
    lines.append("")
    report = inputs.report
    if report is None:
        return lines
    for target, evaluation in report.targets.items():
        choice = evaluation.calibration
        lines.append(
            f"- {target}: backtest method **{choice.method}** (setting `{choice.setting}`, chosen by out-of-fold "
            f"{choice.criterion}); mean ECE {number(evaluation.model.ece, 4)}; pooled test ECE "
            f"{number((choice.test.get(choice.method) or {}).get('ece'), 4)} against "
            f"{number(choice.raw_test_ece, 4)} uncalibrated."
        )
        scores = ", ".join(
            f"{method} Brier {number(values.get('brier'), 4)} / ECE {number(values.get('ece'), 4)}"
            for method, values in choice.out_of_fold.items()
        )
        if scores:
            lines.append(f"  Out-of-fold: {scores}.")
        if choice.plot and inputs.report_path is not None:
            plot = inputs.report_path.parent / choice.plot
            if plot.exists():
                lines.append(f"  Reliability diagram: [{choice.plot}]({_relative_link(plot, inputs.card_folder)})")
            else:
                lines.append(f"  Reliability diagram {choice.plot} is named in the report but missing.")
    lines.append("")
    return lines


def _comparison_row(target: str, comparison: RuleComparison) -> list[str]:
    return [
        target,
        comparison.basis,
        number(comparison.flagged),
        number(comparison.model_recall),
        number(comparison.rule_recall),
        ("+" if (comparison.recall_margin or 0) > 0 else "") + number(comparison.recall_margin),
        number(comparison.model_precision),
        number(comparison.rule_precision),
    ]


def _baseline_section(inputs: CardInputs) -> list[str]:
    lines = ["## Baseline comparison", ""]
    report = inputs.report
    if report is None:
        return [*lines, "No backtest, so no comparison with the rule: run `povwarn evaluate` for this version.", ""]
    lines.extend(
        [
            "The rule baseline ranks households by the department rules of the evaluation: households with a "
            "named risk first, then by income against the line. In each row both flag the same number of "
            "households per county, and the margin is model recall minus rule recall.",
            "",
        ]
    )
    rows = []
    for target, evaluation in report.targets.items():
        rows.append(_comparison_row(target, evaluation.at_capacity))
        rows.append(_comparison_row(target, evaluation.at_rule_count))
    lines.extend(
        _table(
            ("target", "basis", "flagged", "model recall", "rule recall", "margin", "model precision", "rule precision"),
            rows,
        )
    )
    lines.append("")
    return lines


def _oracle_section(inputs: CardInputs) -> list[str]:
    lines = ["## Oracle share", ""]
    report = inputs.report
    oracles = {
        target: evaluation.oracle
        for target, evaluation in (report.targets.items() if report is not None else ())
        if evaluation.oracle is not None
    }
    if not oracles:
        return [*lines, "No oracle: the true risk is known only for simulated data.", ""]
    lines.extend(
        [
            "The oracle ranks by the simulator's true risk. The lift share is (model ROC-AUC - 0.5) / "
            "(oracle ROC-AUC - 0.5): the part of the achievable lift over chance that the model reaches.",
            "",
        ]
    )
    lines.extend(
        _table(
            ("target", "rows", "coverage", "model ROC-AUC", "oracle ROC-AUC", "AUC share", "lift share", "model recall", "oracle recall"),
            (
                (
                    target,
                    number(oracle.rows),
                    number(oracle.coverage),
                    number(oracle.model_roc_auc),
                    number(oracle.oracle_roc_auc),
                    number(oracle.auc_share),
                    number(oracle.lift_share),
                    number(oracle.model_recall_at_capacity),
                    number(oracle.oracle_recall_at_capacity),
                )
                for target, oracle in oracles.items()
            ),
        )
    )
    lines.append("")
    return lines


def _derived_limits(inputs: CardInputs) -> list[str]:
    limits = []
    training = inputs.bundle.training
    if training.get("skipped_targets"):
        limits.append(f"No model for {', '.join(training['skipped_targets'])}: too few labels when trained.")
    if inputs.report is None:
        limits.append("Not evaluated by a rolling-origin backtest, so slice gaps and the rule comparison are unknown.")
    else:
        for target, evaluation in inputs.report.targets.items():
            limits.extend(_target_limits(target, evaluation))
        limits.extend(inputs.report.notes)
    return limits


def _target_limits(target: str, evaluation: TargetEvaluation) -> list[str]:
    limits = []
    for origin, reason in evaluation.skipped_origins.items():
        limits.append(f"{target}: origin {origin} was not evaluated: {reason}")
    for dimension in evaluation.slices:
        if dimension.recall_gap is not None and dimension.recall_gap > dimension.max_recall_gap:
            limits.append(
                f"{target}: recall differs by {number(dimension.recall_gap)} between {dimension.dimension} slices "
                f"({dimension.highest} vs {dimension.lowest}), beyond the bound {dimension.max_recall_gap:g}."
            )
        thin = [item.name for item in dimension.slices if not item.in_gap]
        if thin:
            limits.append(
                f"{target}: too few falls to judge recall in the {dimension.dimension} slice(s) {', '.join(thin)}."
            )
    margin = evaluation.at_capacity.recall_margin
    if margin is not None and margin <= 0:
        limits.append(f"{target}: the model does not beat the rule at capacity (recall margin {number(margin)}).")
    return limits


def _limits_section(inputs: CardInputs) -> list[str]:
    dataset = str(inputs.bundle.training.get("dataset", ""))
    configured = inputs.known_limits or {}
    by_dataset = configured.get("datasets") or {}
    listed = list(by_dataset.get(dataset) or configured.get("other_datasets") or [])
    listed.extend(configured.get("always") or [])
    lines = ["## Known limits", ""]
    lines.extend(f"- {' '.join(str(item).split())}" for item in [*_derived_limits(inputs), *listed])
    lines.append("")
    return lines


def render_card(inputs: CardInputs) -> str:
    """Return the Markdown text of a model card."""
    sections = (
        _status_section(inputs),
        _intended_use_section(),
        _data_section(inputs),
        _features_section(inputs),
        _metrics_section(inputs),
        _slices_section(inputs),
        _calibration_section(inputs),
        _baseline_section(inputs),
        _oracle_section(inputs),
        _limits_section(inputs),
    )
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"


def load_known_limits(path: Path) -> dict[str, object]:
    """Read the known-limits file; a missing file gives no configured limits, with a warning."""
    path = Path(path)
    if not path.exists():
        logger.warning("Known-limits file %s not found; cards list only the limits derived from the run", path)
        return {}
    body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(body, dict):
        raise ValueError(f"{path}: expected a mapping with always, datasets and other_datasets, got {type(body).__name__}")
    return body


def latest_promotion(settings: Settings, version: str) -> dict[str, object] | None:
    """Return the newest promotion record whose challenger is ``version``, or None."""
    folder = promotions_dir(settings)
    if not folder.exists():
        return None
    latest = None
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("Skipped unreadable promotion record %s: %s", path, error)
            continue
        if record.get("challenger") == version and (latest is None or record.get("decided_at", "") >= latest.get("decided_at", "")):
            latest = record
    return latest


def _registry_state(
    settings: Settings, version: str
) -> tuple[MlflowClient | None, RegisteredBundle | None, list[str]]:
    if not registry_exists(settings):
        return None, None, []
    client = registry_client(settings)
    prefix = settings.registered_model_prefix
    try:
        registered = find_bundle(client, prefix, version)
    except LookupError:
        return client, None, []
    aliases = []
    for alias in (CHAMPION, CHALLENGER):
        holder = find_alias(client, prefix, alias)
        if holder is not None and holder.bundle_version == version:
            aliases.append(alias)
    return client, registered, aliases


def gather_inputs(settings: Settings, version: str) -> CardInputs:
    """Collect a version's bundle, report, registry state and promotion record for its card."""
    check_version(version)
    client, registered, aliases = _registry_state(settings, version)
    folder = models_dir(settings) / version
    if not (folder / "bundle.json").exists() and client is not None and registered is not None:
        folder = bundle_folder(settings, client, registered)
    bundle = ModelBundle.load(folder)
    try:
        catalogue = catalogue_of(bundle, settings.catalogue_path)
    except (OSError, ValueError) as error:
        logger.warning("Card of %s lists features without descriptions: %s", version, error)
        catalogue = None
    report = find_evaluation(settings, version)
    return CardInputs(
        bundle=bundle,
        catalogue=catalogue,
        report=report,
        report_path=evaluation_path(settings, version) if report is not None else None,
        registered=registered,
        aliases=aliases,
        registered_names={} if registered is None else registered.names(settings.registered_model_prefix),
        promotion=latest_promotion(settings, version),
        known_limits=load_known_limits(settings.known_limits_path),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        card_folder=Path(settings.model_cards_dir),
    )


def write_card(settings: Settings, version: str) -> Path:
    """Write the card of ``version`` to ``<model_cards_dir>/<version>.md`` and log it to its MLflow run."""
    inputs = gather_inputs(settings, version)
    folder = Path(settings.model_cards_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.md"
    path.write_text(render_card(inputs), encoding="utf-8")
    logger.info("Wrote the model card of %s to %s", version, path)
    run_id = inputs.registered.run_id if inputs.registered is not None else None
    if run_id is not None:
        registry_client(settings).log_artifact(run_id, str(path), artifact_path=CARD_ARTIFACT)
        logger.info("Logged the model card of %s to MLflow run %s", version, run_id)
    return path


def write_cards(settings: Settings, versions: list[str] | None = None) -> list[Path]:
    """Write the card of each version, by default of every registered bundle version."""
    if versions is None:
        if not registry_exists(settings):
            raise FileNotFoundError(
                f"no MLflow registry at {settings.mlflow_tracking_uri}; train a model first or pass --version"
            )
        versions = [
            registered.bundle_version
            for registered in registered_bundles(registry_client(settings), settings.registered_model_prefix)
        ]
    return [write_card(settings, version) for version in versions]
