"""Origins of the rolling-origin backtest: which cut-offs train, validate and test at each one.

The labelled cut-offs at the end of the data are cut into consecutive groups
of ``test_cutoffs`` cut-offs, one group per origin, latest last. An origin is
the month before its first test cut-off, the last month whose outcomes the
model may know. A label at cut-off ``c`` reads outcomes up to
``c + horizon``, so a training or validation cut-off must have
``c + horizon <= origin``. No label window of those cut-offs reaches a test
cut-off, as when the model is retrained at the origin and then used.

Inside the training window, validation takes the latest eligible cut-offs
(``validation_fraction`` of them, rounded, at least one) for early stopping
and calibration. Training cut-offs end their labels by the first validation
cut-off (``c + horizon <= first validation cut-off``), the embargo rule of
``warning.train.split``. When that leaves fewer training than validation
cut-offs, validation shrinks, down to one cut-off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warning.panel import month_number, month_start

logger = logging.getLogger(__name__)


def month_text(months: np.ndarray | list[int]) -> list[str]:
    """Return month numbers (counted from year 0) as ``YYYY-MM`` strings."""
    return [stamp.strftime("%Y-%m") for stamp in month_start(np.asarray(months, dtype=np.int64))]


@dataclass(frozen=True)
class BacktestOrigin:
    """One origin: month numbers (see ``warning.panel.month_number``) of the origin and its cut-offs."""

    origin: int
    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]

    @property
    def name(self) -> str:
        return month_text([self.origin])[0]

    def cutoff_dates(self, block: str) -> pd.DatetimeIndex:
        """Return a block's cut-offs as first-of-month dates, as in feature and label frames."""
        return pd.DatetimeIndex(month_start(np.asarray(getattr(self, block), dtype=np.int64)))

    def describe(self) -> dict[str, list[str]]:
        return {block: month_text(list(getattr(self, block))) for block in ("train", "validation", "test")}


def _carve_validation(
    eligible: np.ndarray, horizon_months: int, fraction: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Split eligible cut-off months into training and validation, or None when no training cut-off fits."""
    wanted = max(1, round(len(eligible) * fraction))
    for size in range(wanted, 0, -1):
        validation = eligible[-size:]
        train = eligible[eligible + horizon_months <= validation[0]]
        if len(train) >= size:
            return train, validation
    return None


def rolling_origins(
    cutoffs: pd.Series | pd.DatetimeIndex,
    horizon_months: int,
    origins: int,
    test_cutoffs: int,
    validation_fraction: float,
) -> list[BacktestOrigin]:
    """Return ``origins`` successive backtest origins over the given labelled cut-off dates, oldest first.

    Raises ValueError when the data cannot hold that many origins, with the
    number it can hold.
    """
    if origins < 1 or test_cutoffs < 1:
        raise ValueError(f"origins and test_cutoffs must be at least 1, got {origins} and {test_cutoffs}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    months = np.unique(month_number(pd.DatetimeIndex(cutoffs)))
    result: list[BacktestOrigin] = []
    for position in range(origins):
        stop = len(months) - position * test_cutoffs
        start = stop - test_cutoffs
        failure = None
        if start < 1:
            failure = f"only {len(months)} labelled cut-offs exist"
        else:
            test = months[start:stop]
            origin = int(test[0]) - 1
            eligible = months[months + horizon_months <= origin]
            blocks = _carve_validation(eligible, horizon_months, validation_fraction)
            if blocks is None:
                failure = (
                    f"origin {month_text([origin])[0]} has {len(eligible)} cut-off(s) whose "
                    f"{horizon_months}-month labels end by then, too few for training and validation"
                )
        if failure is not None:
            raise ValueError(
                f"the backtest needs {origins} origins of {test_cutoffs} test cut-off(s), but {failure}; "
                f"this data has room for {position} origin(s). "
                "Use fewer origins (--origins, POVWARN_BACKTEST_ORIGINS), "
                "fewer test cut-offs per origin or longer data"
            )
        train, validation = blocks
        result.append(
            BacktestOrigin(
                origin=origin,
                train=tuple(int(month) for month in train),
                validation=tuple(int(month) for month in validation),
                test=tuple(int(month) for month in test),
            )
        )
    result.reverse()
    for origin in result:
        described = origin.describe()
        logger.info(
            "Backtest origin %s: train %s; validation %s; test %s",
            origin.name,
            ",".join(described["train"]),
            ",".join(described["validation"]),
            ",".join(described["test"]),
        )
    return result
