"""Run the whole evaluation of a store and write the report, the reliability plots and the MLflow metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from warning.bundle import ModelBundle
from warning.evaluate.backtest import BacktestData, BacktestRun, OriginFit, build_backtest_data, run_backtest
from warning.evaluate.calibration import plot_reliability, pooled_choice, reliability_bins
from warning.evaluate.measures import (
    add_capacity_flags,
    attach_oracle,
    mean_metrics,
    model_metrics,
    oracle_ceiling,
    oracle_metrics,
    rule_comparisons,
    rule_metrics,
)
from warning.evaluate.origins import BacktestOrigin, rolling_origins
from warning.evaluate.report import (
    CalibrationChoice,
    EvaluationReport,
    OriginResult,
    OriginSpec,
    TargetEvaluation,
    finite_or_none,
    report_path,
)
from warning.evaluate.rules import load_rules
from warning.evaluate.slices import slice_report
from warning.features import load_catalogue
from warning.features.catalogue import Catalogue
from warning.labels import HARDSHIP
from warning.panel import Panel
from warning.settings import Settings
from warning.store import Store
from warning.train.cause_groups import load_cause_groups
from warning.train.fit import calibration_scores

logger = logging.getLogger(__name__)

# The oracle risk that matches each target's label.
ORACLE_COLUMN = {"relapse": "p_fall", "new_poverty": "p_fall", HARDSHIP: "p_hardship"}
SETTING_NAMES = (
    "horizon_months",
    "cutoff_step_months",
    "min_history_months",
    "validation_fraction",
    "num_boost_round",
    "early_stopping_rounds",
    "num_leaves",
    "learning_rate",
    "seed",
    "min_train_positives",
    "calibration_method",
    "calibration_criterion",
    "calibration_folds",
    "capacity_share",
    "backtest_origins",
    "backtest_test_cutoffs",
    "backtest_max_train_households",
    "rule_income_multiplier",
    "max_recall_gap",
    "slice_min_positives",
)


@dataclass
class EvaluationResult:
    """The report, where it was written, and the reliability plots."""

    report: EvaluationReport
    path: Path
    plots: dict[str, Path]


def truth_folder(truth: Path | None) -> Path | None:
    """Return the folder holding the truth files, accepting a dataset folder that contains ``truth/``."""
    if truth is None:
        return None
    truth = Path(truth)
    if (truth / "truth").is_dir():
        return truth / "truth"
    return truth


def read_oracle_risk(truth: Path | None) -> pd.DataFrame | None:
    """Return the simulator's true risk per household and cut-off, or None when the truth folder has none."""
    if truth is None or not any((truth / f"risk.{suffix}").exists() for suffix in ("parquet", "csv")):
        return None
    from warning.simulate import read_oracle

    oracle = read_oracle(truth.parent)
    logger.info(
        "Read %d oracle risks at cut-offs %s from %s",
        len(oracle),
        sorted(oracle["cutoff"].astype(str).unique()),
        truth,
    )
    return oracle


def _replicas(oracle: pd.DataFrame | None) -> int | None:
    if oracle is None or "replicas" not in oracle.columns or oracle.empty:
        return None
    return int(oracle["replicas"].min())


def _calibrated_predictions(
    fit: OriginFit, method: str, share: float, oracle: pd.DataFrame | None
) -> pd.DataFrame:
    predictions = fit.predictions.assign(probability=fit.predictions[f"p_{method}"], origin=fit.origin.name)
    predictions = add_capacity_flags(predictions, share)
    return attach_oracle(predictions, oracle, ORACLE_COLUMN[fit.target])


def _calibration_choice(
    pooled: pd.DataFrame, method: str, scores: dict[str, dict[str, float]] | None, settings: Settings
) -> CalibrationChoice:
    labels = pooled["label"].to_numpy(dtype=np.float64)
    methods = {name: pooled[f"p_{name}"].to_numpy() for name in ("isotonic", "platt")}
    test_scores = calibration_scores(labels, methods)
    raw_scores = calibration_scores(labels, {"raw": pooled["raw"].to_numpy()})["raw"]

    def cleaned(values: dict[str, dict[str, float]] | None) -> dict[str, dict[str, float | None]]:
        return {
            name: {metric: finite_or_none(value) for metric, value in entries.items()}
            for name, entries in (values or {}).items()
        }

    return CalibrationChoice(
        setting=settings.calibration_method,
        criterion=settings.calibration_criterion,
        method=method,
        out_of_fold=cleaned(scores),
        test=cleaned(test_scores),
        raw_test_brier=finite_or_none(raw_scores["brier"]),
        raw_test_ece=finite_or_none(raw_scores["ece"]),
        reliability=reliability_bins(labels, pooled["probability"].to_numpy()),
    )


def evaluate_target(
    target: str,
    fits: list[OriginFit],
    skipped: dict[str, str],
    oracle: pd.DataFrame | None,
    settings: Settings,
) -> tuple[TargetEvaluation, pd.DataFrame]:
    """Return the evaluation of one target from its fits at every origin, and its pooled test predictions."""
    with_folds = [fit for fit in fits if fit.out_of_fold is not None]
    method, scores = pooled_choice(
        [fit.validation_labels for fit in with_folds],
        [fit.out_of_fold for fit in with_folds],
        settings.calibration_method,
        settings.calibration_criterion,
    )
    logger.info(
        "Calibration of %s: %s (setting %s, pooled out-of-fold scores %s)",
        target,
        method,
        settings.calibration_method,
        scores,
    )
    share = settings.capacity_share
    results, frames, oracle_sets, model_on_oracle = [], [], [], []
    for fit in fits:
        predictions = _calibrated_predictions(fit, method, share, oracle)
        frames.append(predictions)
        on_oracle = oracle_metrics(predictions, share)
        if on_oracle is not None:
            oracle_sets.append(on_oracle[0])
            model_on_oracle.append(on_oracle[1])
        results.append(
            OriginResult(
                origin=fit.origin.name,
                model=model_metrics(predictions),
                rule=rule_metrics(predictions),
                oracle=None if on_oracle is None else on_oracle[0],
                model_on_oracle_rows=None if on_oracle is None else on_oracle[1],
                best_iteration=fit.best_iteration,
                train_rows=fit.rows["train"],
                train_positives=fit.positives["train"],
                validation_rows=fit.rows["validation"],
                validation_positives=fit.positives["validation"],
            )
        )
    pooled = pd.concat(frames, ignore_index=True)
    at_capacity, at_rule_count = rule_comparisons(pooled)
    evaluation = TargetEvaluation(
        target=target,
        origins=results,
        skipped_origins=skipped,
        model=mean_metrics([item.model for item in results]),
        rule=mean_metrics([item.rule for item in results]),
        at_capacity=at_capacity,
        at_rule_count=at_rule_count,
        calibration=_calibration_choice(pooled, method, scores, settings),
        oracle=oracle_ceiling(oracle_sets, model_on_oracle, len(pooled), _replicas(oracle)),
        slices=slice_report(pooled, settings.max_recall_gap, settings.slice_min_positives),
    )
    return evaluation, pooled


def _evaluate_targets(
    run: BacktestRun, oracle: pd.DataFrame | None, settings: Settings, folder: Path, version: str
) -> tuple[dict[str, TargetEvaluation], dict[str, Path], list[str]]:
    """Return the evaluation and reliability plot of each target with a fitted origin, and notes."""
    targets, plots, notes = {}, {}, []
    for target, fits in run.fits.items():
        if not fits:
            notes.append(f"{target}: not evaluated, every origin was skipped ({run.skipped[target]})")
            continue
        evaluation, pooled = evaluate_target(target, fits, run.skipped[target], oracle, settings)
        plot = plot_reliability(
            target,
            evaluation.calibration.method,
            pooled["label"].to_numpy(),
            pooled["probability"].to_numpy(),
            pooled["raw"].to_numpy(),
            folder / f"{version}-{target}-reliability.png",
        )
        evaluation.calibration.plot = plot.name
        plots[target] = plot
        targets[target] = evaluation
    return targets, plots, notes


def _origin_specs(origins: list[BacktestOrigin], train_households: int) -> list[OriginSpec]:
    specs = []
    for origin in origins:
        described = origin.describe()
        specs.append(
            OriginSpec(
                origin=origin.name,
                train_cutoffs=described["train"],
                validation_cutoffs=described["validation"],
                test_cutoffs=described["test"],
                train_households=train_households,
            )
        )
    return specs


def _cause_recovery(
    store: Store,
    bundle: ModelBundle | None,
    catalogue: Catalogue,
    truth: Path | None,
    settings: Settings,
    notes: list[str],
) -> dict[str, object] | None:
    """Return the bundle's cause recovery against recorded true causes, or None without them.

    A bundle whose features the current catalogue no longer computes cannot be
    explained, so it is skipped with a note.
    """
    if bundle is None or truth is None or not (truth / "falls.parquet").exists():
        return None
    missing = sorted(set(bundle.feature_names) - set(catalogue.feature_names))
    if missing:
        message = (
            f"cause recovery skipped: bundle {bundle.version} uses features the catalogue {catalogue.path} "
            f"no longer defines: {missing}"
        )
        logger.warning(message)
        notes.append(message)
        return None
    from warning.explain.truth import measure_cause_recovery, read_falls, read_hardship, recovery_report

    panel = Panel(store, lines=bundle.lines)
    results = measure_cause_recovery(
        panel,
        bundle,
        catalogue,
        read_falls(truth),
        settings.horizon_months,
        settings.top_causes,
        hardship=read_hardship(truth),
    )
    return recovery_report(results)


def _settings_snapshot(settings: Settings) -> dict[str, object]:
    snapshot: dict[str, object] = {name: getattr(settings, name) for name in SETTING_NAMES}
    snapshot["rules"] = yaml.safe_load(Path(settings.rules_path).read_text(encoding="utf-8"))
    return snapshot


def with_bundle_horizon(settings: Settings, bundle: ModelBundle | None) -> Settings:
    """Return ``settings`` with the horizon and cut-off step the bundle was trained with, where it records them.

    A backtest then asks the question the evaluated model answers (for example
    the next survey wave within 24 months on real data) without the settings
    having to repeat it.
    """
    if bundle is None:
        return settings
    update = {
        name: bundle.training[name]
        for name in ("horizon_months", "cutoff_step_months")
        if name in bundle.training and bundle.training[name] != getattr(settings, name)
    }
    if not update:
        return settings
    logger.info("Evaluating with the settings model %s was trained with: %s", bundle.version, update)
    return settings.model_copy(update=update)


def evaluate(
    store: Store,
    settings: Settings,
    bundle: ModelBundle | None = None,
    truth: Path | None = None,
    origins: int | None = None,
) -> EvaluationResult:
    """Backtest every target on ``store``, compare it with the rule and the oracle, and write the report.

    ``bundle`` names the evaluated model: its version names the report, its
    MLflow run receives the headline metrics, and its explanations are scored
    against true causes when ``truth`` contains ``falls.parquet``. ``truth`` is
    the simulator's truth folder (or the dataset folder containing it).
    """
    started = time.perf_counter()
    settings = with_bundle_horizon(settings, bundle)
    truth = truth_folder(truth)
    groups = load_cause_groups(settings.cause_groups_path)
    catalogue = load_catalogue(settings.catalogue_path, set(groups))
    rules = load_rules(settings.rules_path, settings.rule_income_multiplier)
    panel = Panel(store)
    data = build_backtest_data(panel, catalogue, rules, settings)
    chosen_origins = rolling_origins(
        data.frame["cutoff"],
        settings.horizon_months,
        origins or settings.backtest_origins,
        settings.backtest_test_cutoffs,
        settings.validation_fraction,
    )
    run = run_backtest(data, chosen_origins, settings)
    oracle = read_oracle_risk(truth)

    stamp = datetime.now(UTC)
    version = bundle.version if bundle is not None else f"run-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    folder = report_path(settings.work_dir, version).parent
    targets, plots, notes = _evaluate_targets(run, oracle, settings, folder, version)
    notes.extend(_notes(data, run, oracle, settings))
    cause_recovery = _cause_recovery(store, bundle, catalogue, truth, settings, notes)

    report = EvaluationReport(
        version=version,
        created_at=stamp.isoformat(timespec="seconds"),
        dataset=store.info.name,
        store=str(store.folder),
        bundle_version=None if bundle is None else bundle.version,
        mlflow_run_id=None if bundle is None else _string_or_none(bundle.training.get("mlflow_run_id")),
        capacity_share=settings.capacity_share,
        max_recall_gap=settings.max_recall_gap,
        settings=_settings_snapshot(settings),
        origins=_origin_specs(chosen_origins, run.train_households),
        targets=targets,
        cause_recovery=cause_recovery,
        notes=notes,
    )
    report.elapsed_seconds = time.perf_counter() - started
    path = report.write(report_path(settings.work_dir, version))
    logger.info("Wrote the evaluation report of %s to %s in %.1f s", version, path, report.elapsed_seconds)
    if report.mlflow_run_id:
        from warning.evaluate.tracking import log_evaluation

        log_evaluation(report, path, plots, settings)
    return EvaluationResult(report=report, path=path, plots=plots)


def _string_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _notes(
    data: BacktestData, run: BacktestRun, oracle: pd.DataFrame | None, settings: Settings
) -> list[str]:
    notes = []
    households = data.frame["household_id"].nunique()
    if run.train_households < households:
        notes.append(
            f"each origin trained and validated on a seeded sample of {run.train_households} of {households} "
            "households (backtest_max_train_households); test rows cover every household"
        )
    if oracle is None:
        notes.append("no oracle risk (truth/risk) was found, so there is no ceiling")
    else:
        tested = {
            month for fits in run.fits.values() for fit in fits for month in fit.origin.describe()["test"]
        }
        uncovered = sorted(tested - set(oracle["cutoff"].astype(str).str[:7]))
        if uncovered:
            notes.append(
                f"the oracle has no risk at test cut-offs {uncovered}; simulate with those oracle_cutoffs "
                "for a ceiling on every origin"
            )
    notes.append(
        "rankings (ROC-AUC, PR-AUC, capacity) use the raw model probability; Brier score and ECE use the "
        "probability calibrated with each target's chosen method"
    )
    return notes


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_summary(report: EvaluationReport, path: Path) -> str:
    """Return a compact table of the headline numbers per target and where the report was written."""
    percent = f"{100 * report.capacity_share:g}%"
    header = (
        f"{'target':<16} {'ROC-AUC':>7} {'PR-AUC':>7} {'Brier':>7} {'ECE':>7} {'recall':>7} {'rule':>7} "
        f"{'margin':>7} {'or.AUC':>7} {'or.rec':>7} {'calib':>8} {'max gap':>8}"
    )
    lines = [
        f"Backtest of {report.version} on {report.dataset}: {len(report.origins)} origins "
        f"({', '.join(origin.origin for origin in report.origins)}); means over origins. "
        f"Recall at capacity: riskiest {percent} per county; rule at the same count; "
        "or.AUC and or.rec: model ROC-AUC and recall as shares of the true risk's",
        header,
    ]
    for target, evaluation in report.targets.items():
        gaps = [dimension.recall_gap for dimension in evaluation.slices if dimension.recall_gap is not None]
        auc_share = None if evaluation.oracle is None else evaluation.oracle.auc_share
        recall_share = None if evaluation.oracle is None else evaluation.oracle.recall_share
        lines.append(
            f"{target:<16} {_cell(evaluation.model.roc_auc):>7} {_cell(evaluation.model.pr_auc):>7} "
            f"{_cell(evaluation.model.brier, 4):>7} {_cell(evaluation.model.ece, 4):>7} "
            f"{_cell(evaluation.at_capacity.model_recall):>7} {_cell(evaluation.at_capacity.rule_recall):>7} "
            f"{_cell(evaluation.at_capacity.recall_margin):>7} "
            f"{_cell(auc_share):>7} {_cell(recall_share):>7} "
            f"{evaluation.calibration.method:>8} {_cell(max(gaps) if gaps else None):>8}"
        )
    lines.extend(f"Note: {note}" for note in report.notes)
    lines.append(f"Report written to {path} in {report.elapsed_seconds:.0f} s")
    return "\n".join(lines)
