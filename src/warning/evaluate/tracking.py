"""Log the headline numbers of an evaluation to the MLflow run of the evaluated model."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from warning.evaluate.report import EvaluationReport
from warning.settings import Settings
from warning.train.tracking import resolve_tracking

logger = logging.getLogger(__name__)

METRIC_PREFIX = "backtest"
ARTIFACT_FOLDER = "evaluation"


def headline_metrics(report: EvaluationReport) -> dict[str, float]:
    """Return ``backtest_<target>_<metric>`` values: means over origins, rule margins, oracle, slice gaps."""
    metrics: dict[str, float | None] = {}
    for target, evaluation in report.targets.items():
        prefix = f"{METRIC_PREFIX}_{target}"
        for name in ("roc_auc", "pr_auc", "brier", "ece", "recall_at_capacity", "precision_at_capacity"):
            metrics[f"{prefix}_{name}"] = getattr(evaluation.model, name)
        metrics[f"{prefix}_rule_recall_at_capacity"] = evaluation.at_capacity.rule_recall
        metrics[f"{prefix}_recall_margin_over_rule"] = evaluation.at_capacity.recall_margin
        metrics[f"{prefix}_recall_margin_at_rule_count"] = evaluation.at_rule_count.recall_margin
        if evaluation.oracle is not None:
            metrics[f"{prefix}_oracle_roc_auc"] = evaluation.oracle.oracle_roc_auc
            metrics[f"{prefix}_oracle_auc_share"] = evaluation.oracle.auc_share
            metrics[f"{prefix}_oracle_recall_share"] = evaluation.oracle.recall_share
        gaps = []
        for dimension in evaluation.slices:
            metrics[f"{prefix}_recall_gap_{dimension.dimension}"] = dimension.recall_gap
            if dimension.recall_gap is not None:
                gaps.append(dimension.recall_gap)
        metrics[f"{prefix}_max_recall_gap"] = max(gaps) if gaps else None
    return {name: float(value) for name, value in metrics.items() if value is not None}


def log_evaluation(report: EvaluationReport, path: Path, plots: dict[str, Path], settings: Settings) -> bool:
    """Log headline metrics, calibration choices and the report files to the model's MLflow run.

    Returns False, with a warning, when the run cannot be reached (for
    example a bundle trained against another tracking store).
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    uri, _ = resolve_tracking(settings.mlflow_tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    run_id = report.mlflow_run_id
    stamp = int(time.time() * 1000)
    metrics = headline_metrics(report)
    try:
        client.get_run(run_id)
        client.log_batch(run_id, metrics=[Metric(name, value, stamp, 0) for name, value in metrics.items()])
        for target, evaluation in report.targets.items():
            client.set_tag(run_id, f"evaluation_calibration_{target}", evaluation.calibration.method)
        client.set_tag(run_id, "evaluation_report", str(path))
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_FOLDER)
        for plot in plots.values():
            client.log_artifact(run_id, str(plot), artifact_path=ARTIFACT_FOLDER)
    except MlflowException as error:
        logger.warning("Could not log the evaluation to MLflow run %s at %s: %s", run_id, uri, error)
        return False
    logger.info(
        "Logged %d evaluation metrics and %d files to MLflow run %s", len(metrics), 1 + len(plots), run_id
    )
    return True
