"""Split one simulated delivery of department feeds into a first load and monthly deliveries.

Departments send a first load of their history, then a delivery each month.
The simulator writes all months as one delivery (``warning.simulate.feeds``).
This module moves the rows of the last months out of it into one folder per
month, so that the incremental path of ``povwarn feeds ingest`` can be run
on simulated data.

Only the monthly exports are split: those whose key has a month or date and
whose contract table is monthly (income, medical claims, assistance,
events). Rosters, employment spells, enrolment years, registrations and
poverty lines stay whole in the first load.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from warning.feeds.spec import ExportSpec, load_specs

logger = logging.getLogger(__name__)

MONTHLY_TABLES = frozenset({"income", "medical_claims", "assistance", "events"})


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    # Read as text, so that identity numbers, codes and amounts are written back as delivered.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _row_months(spec: ExportSpec, frame: pd.DataFrame) -> pd.Series | None:
    """Return the month (``YYYY-MM``) of each row of a monthly export, or None for other exports."""
    dated = [name for name in spec.key if spec.columns[name].type in ("month", "date")]
    if not dated or str(spec.target) not in MONTHLY_TABLES:
        return None
    column = spec.columns[dated[0]]
    parsed = pd.to_datetime(frame[column.name].astype(str), format=str(column.format), errors="coerce")
    return parsed.dt.strftime("%Y-%m")


def split_monthly_deliveries(
    feeds_dir: Path, deliveries_dir: Path, first_month: str, specs: list[ExportSpec] | None = None
) -> dict[str, int]:
    """Move the rows of monthly exports dated ``first_month`` (``YYYY-MM``) or later into monthly deliveries.

    The rows of each month go to ``deliveries_dir/YYYY-MM/`` under the file
    name they had in ``feeds_dir``, and ``feeds_dir`` keeps the earlier rows
    and every other export. Returns the rows moved per month.
    """
    specs = specs if specs is not None else load_specs()
    moved: dict[str, int] = {}
    for path in sorted(Path(feeds_dir).iterdir()):
        spec = next((spec for spec in specs if spec.matches(path.name)), None)
        if spec is None:
            continue
        frame = _read(path)
        months = _row_months(spec, frame)
        if months is None:
            continue
        later = (months >= first_month).to_numpy()
        for month, rows in frame[later].groupby(months[later].to_numpy(), sort=True):
            _write(rows, Path(deliveries_dir) / str(month) / path.name)
            moved[str(month)] = moved.get(str(month), 0) + len(rows)
        _write(frame[~later], path)
    logger.info(
        "Moved %d rows of %s into %d monthly deliveries under %s",
        sum(moved.values()),
        feeds_dir,
        len(moved),
        deliveries_dir,
    )
    return dict(sorted(moved.items()))
