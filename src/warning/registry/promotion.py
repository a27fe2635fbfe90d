"""Promote a challenger to champion in the MLflow registry when the gate passes, or when an analyst forces it.

Every decision, promoted or rejected, is logged check by check, written to
``<work_dir>/reports/promotions/<UTC timestamp>.json`` and tagged on the
challenger's registered model versions. On promotion the ``champion`` alias
moves to the challenger's model versions, the ``challenger`` alias is removed
from them, and the bundle is published to ``<work_dir>/models/champion``.
"""

from __future__ import annotations

import getpass
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from warning.bundle import CHAMPION, ModelBundle, models_dir, publish_champion
from warning.registry.aliases import (
    CHALLENGER,
    RegisteredBundle,
    RegistryError,
    bundle_folder,
    find_alias,
    find_bundle,
    point_alias,
    registry_client,
    registry_exists,
    remove_alias,
    tag_model_versions,
)
from warning.registry.gate import Candidate, Check, Tolerances, judge
from warning.registry.reports import ReportError, evaluation_path, find_evaluation
from warning.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

# MLflow rejects tag values longer than 8000 characters (MLflow 3.x limit); stay below it.
MAX_TAG_LENGTH = 5000


@dataclass
class PromotionDecision:
    """The outcome of one promotion request and everything it was based on."""

    decided_at: str
    challenger: str
    champion_before: str | None
    promoted: bool
    forced: bool
    checks: list[Check]
    tolerances: Tolerances
    requested_by: str
    override_reason: str | None = None
    # Registered model name -> version, of the challenger and of the champion before the decision.
    challenger_model_versions: dict[str, str] = field(default_factory=dict)
    champion_model_versions: dict[str, str] = field(default_factory=dict)
    evaluation_reports: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    record_path: Path | None = None

    @property
    def gate_passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def outcome(self) -> str:
        """Return ``promoted`` (the gate passed), ``forced`` (promoted against the gate) or ``rejected``."""
        if not self.promoted:
            return "rejected"
        return "forced" if self.forced and not self.gate_passed else "promoted"

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    @property
    def champion_after(self) -> str | None:
        return self.challenger if self.promoted else self.champion_before

    def to_json(self) -> dict[str, object]:
        return {
            "decided_at": self.decided_at,
            "outcome": self.outcome,
            "promoted": self.promoted,
            "gate_passed": self.gate_passed,
            "forced": self.forced,
            "override_reason": self.override_reason,
            "requested_by": self.requested_by,
            "challenger": self.challenger,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "challenger_model_versions": self.challenger_model_versions,
            "champion_model_versions": self.champion_model_versions,
            "evaluation_reports": self.evaluation_reports,
            "tolerances": {
                "roc_auc": self.tolerances.roc_auc,
                "recall_at_capacity": self.tolerances.recall_at_capacity,
                "ece": self.tolerances.ece,
                "max_recall_gap": self.tolerances.max_recall_gap,
                "same_origins": self.tolerances.same_origins,
            },
            "reasons": [check.message for check in self.failed],
            "checks": [check.to_json() for check in self.checks],
            "notes": self.notes,
        }

    def summary(self) -> str:
        """Return the decision and each failed check, one per line."""
        if self.outcome == "promoted":
            head = f"Promoted {self.challenger} to champion (was {self.champion_before or 'none'}): all {len(self.checks)} checks passed"
        elif self.outcome == "forced":
            head = (
                f"Promoted {self.challenger} to champion by analyst override (was {self.champion_before or 'none'}), "
                f"{len(self.failed)} of {len(self.checks)} checks failed; reason: {self.override_reason}"
            )
        else:
            head = (
                f"Rejected {self.challenger}: {len(self.failed)} of {len(self.checks)} checks failed; "
                f"the champion stays {self.champion_before or 'none'}"
            )
        lines = [head]
        lines.extend(f"  failed: {check.message}" for check in self.failed)
        lines.extend(f"  note: {note}" for note in self.notes)
        if self.record_path is not None:
            lines.append(f"Decision record: {self.record_path}")
        return "\n".join(lines)


def _candidate(settings: Settings, version: str) -> Candidate:
    path = evaluation_path(settings, version)
    folder = models_dir(settings) / version
    try:
        report = find_evaluation(settings, version)
    except (ReportError, OSError) as error:
        return Candidate(version=version, report_path=path, report_error=str(error), bundle_folder=folder)
    return Candidate(version=version, report_path=path, report=report, bundle_folder=folder)


def _requesting_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # Some containers have no login name. The CLI option --by then names the requester.
        return "unknown"


def promotions_dir(settings: Settings) -> Path:
    return Path(settings.work_dir) / "reports" / "promotions"


def write_record(decision: PromotionDecision, settings: Settings) -> Path:
    """Write the decision as JSON to ``reports/promotions/<timestamp>.json``, never over an earlier record."""
    folder = promotions_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(decision.decided_at).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{stamp}.json"
    suffix = 2
    while path.exists():
        path = folder / f"{stamp}-{suffix}.json"
        suffix += 1
    path.write_text(json.dumps(decision.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _tags(decision: PromotionDecision) -> dict[str, str]:
    reasons = "; ".join(check.message for check in decision.failed) or "all checks passed"
    tags = {
        "promotion_outcome": decision.outcome,
        "promotion_decided_at": decision.decided_at,
        "promotion_requested_by": decision.requested_by,
        "promotion_record": decision.record_path.name if decision.record_path else "",
        "promotion_reasons": reasons[:MAX_TAG_LENGTH],
        "promotion_champion_before": decision.champion_before or "none",
    }
    if decision.forced:
        tags["promotion_forced"] = "true"
        tags["promotion_override_reason"] = (decision.override_reason or "")[:MAX_TAG_LENGTH]
    return tags


def _log_checks(decision: PromotionDecision) -> None:
    for check in decision.checks:
        if check.passed:
            logger.info("Promotion check passed: %s", check.message)
        else:
            logger.warning("Promotion check failed: %s", check.message)


def _resolve_challenger(client: MlflowClient, prefix: str, version: str | None) -> RegisteredBundle:
    if version is not None:
        return find_bundle(client, prefix, version)
    challenger = find_alias(client, prefix, CHALLENGER)
    if challenger is None:
        raise LookupError(
            f"no registered model under {prefix!r} has the {CHALLENGER!r} alias; "
            "train a new model with povwarn train or name a bundle with --version"
        )
    return challenger


def promote(
    settings: Settings,
    version: str | None = None,
    force: bool = False,
    reason: str | None = None,
    requested_by: str | None = None,
) -> PromotionDecision:
    """Judge a challenger against the champion and promote it when the gate passes or ``force`` is set.

    ``version`` names the bundle to promote; by default it is the one the
    ``challenger`` alias points at. ``force`` promotes regardless of the
    checks and needs a non-empty ``reason``, recorded as an analyst override.
    Raises ValueError for a forced promotion without a reason or a version
    that is already the champion, LookupError for an unknown version and
    FileNotFoundError without a registry.
    """
    reason = (reason or "").strip() or None
    if force and reason is None:
        raise ValueError("a forced promotion needs a reason: pass --reason with the analyst's justification")
    if not registry_exists(settings):
        raise FileNotFoundError(
            f"no MLflow registry at {settings.mlflow_tracking_uri}; train a model first with povwarn train"
        )
    prefix = settings.registered_model_prefix
    client = registry_client(settings)
    challenger = _resolve_challenger(client, prefix, version)
    notes = []
    try:
        champion = find_alias(client, prefix, CHAMPION)
    except RegistryError as error:
        if not force:
            raise
        notes.append(f"the champion alias pointed at several runs and is replaced: {error}")
        champion = None
    if champion is not None and champion.bundle_version == challenger.bundle_version:
        raise ValueError(f"bundle {challenger.bundle_version} is already the champion ({champion.describe(prefix)})")

    tolerances = Tolerances.from_settings(settings)
    challenger_candidate = _candidate(settings, challenger.bundle_version)
    champion_candidate = None if champion is None else _candidate(settings, champion.bundle_version)
    checks = judge(challenger_candidate, champion_candidate, tolerances)
    gate_passed = all(check.passed for check in checks)
    decision = PromotionDecision(
        decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
        challenger=challenger.bundle_version,
        champion_before=None if champion is None else champion.bundle_version,
        promoted=gate_passed or force,
        forced=force,
        override_reason=reason if force else None,
        checks=checks,
        tolerances=tolerances,
        requested_by=requested_by or _requesting_user(),
        challenger_model_versions=challenger.names(prefix),
        champion_model_versions={} if champion is None else champion.names(prefix),
        evaluation_reports={
            "challenger": str(challenger_candidate.report_path) if challenger_candidate.report else None,
            "champion": (
                str(champion_candidate.report_path) if champion_candidate and champion_candidate.report else None
            ),
        },
        notes=notes,
    )
    if force and gate_passed:
        decision.notes.append("every check passed, so the promotion did not need the override")
    _log_checks(decision)

    if decision.promoted:
        folder = bundle_folder(settings, client, challenger)
        # Fail before moving the alias if the bundle cannot be loaded.
        ModelBundle.load(folder)
        point_alias(client, prefix, CHAMPION, challenger)
        current = find_alias(client, prefix, CHALLENGER)
        if current is not None and current.bundle_version == challenger.bundle_version:
            remove_alias(client, prefix, CHALLENGER)
        publish_champion(folder, settings)

    decision.record_path = write_record(decision, settings)
    tag_model_versions(client, prefix, challenger, _tags(decision))
    if decision.promoted and champion is not None:
        tag_model_versions(client, prefix, champion, {"replaced_by": challenger.bundle_version})
    log = logger.warning if decision.outcome != "promoted" else logger.info
    log(
        "Promotion of %s %s (champion before: %s, %d of %d checks failed%s); record %s",
        decision.challenger,
        decision.outcome,
        decision.champion_before or "none",
        len(decision.failed),
        len(decision.checks),
        f", override reason: {reason}" if decision.forced else "",
        decision.record_path,
    )
    return decision
