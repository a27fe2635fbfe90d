"""Model evaluation: rolling-origin backtest, rule baseline, calibration choice, oracle ceiling and slices.

``evaluate`` retrains each target at successive origins, compares it with the
department rules at the same per-county capacity, and writes an
``EvaluationReport`` to ``<work_dir>/reports/evaluation/<version>.json``.
"""

from warning.evaluate.capacity import capacity_flags, capacity_quota, recall_precision, top_per_group
from warning.evaluate.origins import BacktestOrigin, rolling_origins
from warning.evaluate.report import EvaluationReport, report_path
from warning.evaluate.rules import RuleSet, load_rules, rule_frame
from warning.evaluate.run import EvaluationResult, evaluate
from warning.evaluate.slices import slice_dimension

__all__ = [
    "BacktestOrigin",
    "EvaluationReport",
    "EvaluationResult",
    "RuleSet",
    "capacity_flags",
    "capacity_quota",
    "evaluate",
    "load_rules",
    "recall_precision",
    "report_path",
    "rolling_origins",
    "rule_frame",
    "slice_dimension",
    "top_per_group",
]
