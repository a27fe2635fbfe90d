"""The promotion rules: when a challenger's backtest is not worse than the champion's.

"Not worse" means, for every target of the champion, on the means over the
backtest origins:

- the challenger has the target;
- ROC-AUC >= champion ROC-AUC - ``promotion_auc_tolerance``;
- recall at capacity >= champion recall - ``promotion_recall_tolerance``;
- ECE <= champion ECE + ``promotion_ece_tolerance``;

and, for every target of the challenger and every slice dimension (urban or
rural, province, ...), the largest gap in recall at capacity between its
slices is at most ``max_recall_gap``. With ``promotion_same_origins`` both
backtests must also have used the same origins. A metric that is undefined
(null) for the champion cannot be compared, so it passes. A metric that is
defined for the champion but undefined for the challenger fails. Without a
champion, only the challenger's own slice gaps are checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from warning.evaluate.report import EvaluationReport, TargetEvaluation
from warning.settings import Settings

# Mean metrics compared with the champion, and whether a higher value is better.
COMPARED_METRICS = {"roc_auc": True, "recall_at_capacity": True, "ece": False}


@dataclass(frozen=True)
class Tolerances:
    """How much worse than the champion a challenger may be, and the bound on slice recall gaps."""

    roc_auc: float
    recall_at_capacity: float
    ece: float
    max_recall_gap: float
    same_origins: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Tolerances:
        return cls(
            roc_auc=settings.promotion_auc_tolerance,
            recall_at_capacity=settings.promotion_recall_tolerance,
            ece=settings.promotion_ece_tolerance,
            max_recall_gap=settings.max_recall_gap,
            same_origins=settings.promotion_same_origins,
        )

    def of(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Candidate:
    """A bundle version in a promotion and its evaluation report, None when none was found."""

    version: str
    report_path: Path
    report: EvaluationReport | None = None
    # Why an existing report could not be read.
    report_error: str | None = None
    # The bundle folder that ``povwarn evaluate --bundle`` takes, for the hint in messages.
    bundle_folder: Path | None = None


@dataclass(frozen=True)
class Check:
    """One promotion rule applied to one target: the values compared, the bound and the outcome."""

    rule: str
    passed: bool
    message: str
    target: str | None = None
    challenger: float | None = None
    champion: float | None = None
    # The limit the challenger's value was held to.
    bound: float | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _format(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def compare_metric(
    target: str, metric: str, challenger: float | None, champion: float | None, tolerance: float
) -> Check:
    """Check one mean metric of one target against the champion's, within ``tolerance``."""
    higher_is_better = COMPARED_METRICS[metric]
    if champion is None:
        return Check(
            rule=metric,
            target=target,
            passed=True,
            challenger=challenger,
            message=f"{target}: mean {metric} of the champion is undefined, so there is nothing to compare "
            f"(challenger {_format(challenger)})",
        )
    bound = champion - tolerance if higher_is_better else champion + tolerance
    if challenger is None:
        return Check(
            rule=metric,
            target=target,
            passed=False,
            champion=champion,
            bound=bound,
            message=f"{target}: mean {metric} of the challenger is undefined, "
            f"while the champion's is {_format(champion)}",
        )
    passed = challenger >= bound if higher_is_better else challenger <= bound
    if higher_is_better:
        relation = "at least" if passed else "below"
        limit = f"the champion's {_format(champion)} minus tolerance {tolerance:g}"
    else:
        relation = "at most" if passed else "above"
        limit = f"the champion's {_format(champion)} plus tolerance {tolerance:g}"
    return Check(
        rule=metric,
        target=target,
        passed=passed,
        challenger=challenger,
        champion=champion,
        bound=bound,
        message=f"{target}: mean {metric} {_format(challenger)} of the challenger is {relation} "
        f"{limit} ({_format(bound)})",
    )


def slice_gap_checks(target: str, evaluation: TargetEvaluation, max_recall_gap: float) -> list[Check]:
    """Check the largest recall gap between slices of each dimension against ``max_recall_gap``."""
    checks = []
    for dimension in evaluation.slices:
        gap = dimension.recall_gap
        rule = f"recall_gap_{dimension.dimension}"
        if gap is None:
            checks.append(
                Check(
                    rule=rule,
                    target=target,
                    passed=True,
                    bound=max_recall_gap,
                    message=f"{target}: recall gap between {dimension.dimension} slices is undefined "
                    "(fewer than two slices with enough positives), so it is not checked",
                )
            )
            continue
        passed = gap <= max_recall_gap
        checks.append(
            Check(
                rule=rule,
                target=target,
                passed=passed,
                challenger=gap,
                bound=max_recall_gap,
                message=f"{target}: recall gap between {dimension.dimension} slices {gap:.4f} "
                f"({dimension.highest} highest, {dimension.lowest} lowest) is "
                f"{'within' if passed else 'beyond'} max_recall_gap {max_recall_gap:g}",
            )
        )
    return checks


def _report_check(role: str, candidate: Candidate) -> Check | None:
    if candidate.report is not None:
        return None
    if candidate.report_error is not None:
        message = f"{role} {candidate.version}: {candidate.report_error}"
    else:
        command = "povwarn evaluate" + (f" --bundle {candidate.bundle_folder}" if candidate.bundle_folder else "")
        message = (
            f"{role} {candidate.version} has no evaluation report at {candidate.report_path}; "
            f"run {command} on the store both bundles are compared on"
        )
    return Check(rule="evaluation_report", passed=False, message=message)


def _origins(report: EvaluationReport) -> list[str]:
    return [origin.origin for origin in report.origins]


def judge(challenger: Candidate, champion: Candidate | None, tolerances: Tolerances) -> list[Check]:
    """Apply the promotion rules of this module and return every check, passed or not."""
    checks = [
        check
        for check in (
            _report_check("challenger", challenger),
            None if champion is None else _report_check("champion", champion),
        )
        if check is not None
    ]
    if challenger.report is None:
        return checks
    challenger_targets = challenger.report.targets

    if champion is not None and champion.report is not None:
        champion_report = champion.report
        if tolerances.same_origins:
            ours, theirs = _origins(challenger.report), _origins(champion_report)
            same = ours == theirs
            checks.append(
                Check(
                    rule="same_origins",
                    passed=same,
                    message=f"backtest origins {'match' if same else 'differ'}: challenger {ours}, "
                    f"champion {theirs}"
                    + ("" if same else "; evaluate both bundles on the same store"),
                )
            )
        for target, theirs_evaluation in champion_report.targets.items():
            ours_evaluation = challenger_targets.get(target)
            if ours_evaluation is None:
                checks.append(
                    Check(
                        rule="target_present",
                        target=target,
                        passed=False,
                        message=f"{target}: the champion was evaluated on this target, the challenger was not",
                    )
                )
                continue
            for metric in COMPARED_METRICS:
                checks.append(
                    compare_metric(
                        target,
                        metric,
                        getattr(ours_evaluation.model, metric),
                        getattr(theirs_evaluation.model, metric),
                        tolerances.of(metric),
                    )
                )

    for target, evaluation in challenger_targets.items():
        checks.extend(slice_gap_checks(target, evaluation, tolerances.max_recall_gap))
    return checks
