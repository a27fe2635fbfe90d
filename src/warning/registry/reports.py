"""Read the evaluation report of a bundle version, with errors that name the file and the invalid field."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from warning.evaluate.report import SCHEMA_VERSION, EvaluationReport, report_path
from warning.settings import Settings

logger = logging.getLogger(__name__)


class ReportError(ValueError):
    """An evaluation report exists but cannot be used."""


def evaluation_path(settings: Settings, version: str) -> Path:
    """Return where ``povwarn evaluate`` writes the report of ``version``."""
    return report_path(settings.work_dir, version)


def read_evaluation(path: Path, version: str | None = None) -> EvaluationReport:
    """Read and check an evaluation report.

    Raises ReportError when the file is not a report of the known schema
    version, or evaluates another bundle version than ``version``.
    """
    path = Path(path)
    try:
        report = EvaluationReport.read(path)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ())) or "(document)"
        raise ReportError(
            f"evaluation report {path} is invalid at {location}: {first.get('msg')} "
            f"({error.error_count()} error(s)); run povwarn evaluate again"
        ) from error
    if report.schema_version != SCHEMA_VERSION:
        raise ReportError(
            f"evaluation report {path} has schema version {report.schema_version}, "
            f"but this code reads version {SCHEMA_VERSION}; run povwarn evaluate again"
        )
    evaluated = report.bundle_version or report.version
    if version is not None and evaluated != version:
        raise ReportError(f"evaluation report {path} evaluates bundle {evaluated!r}, not {version!r}")
    return report


def find_evaluation(settings: Settings, version: str) -> EvaluationReport | None:
    """Return the evaluation report of ``version``, or None when it was never written."""
    path = evaluation_path(settings, version)
    if not path.exists():
        logger.info("No evaluation report for bundle %s at %s", version, path)
        return None
    return read_evaluation(path, version)
