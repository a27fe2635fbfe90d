"""Temporal train / validation / test split of cut-offs, with an embargo between blocks.

A label at cut-off ``c`` reads outcomes in the months after ``c`` up to
``c + horizon``. A later block's first cut-off must therefore lie at least
``horizon`` months after an earlier block's last one. Then every training label
was already observable at the first validation cut-off, and every validation
label at the first test cut-off, as it would be when the model is used. The
cut-offs in between are left out (embargoed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warning.panel import month_number, month_start

logger = logging.getLogger(__name__)

BLOCKS = ("train", "validation", "test")


@dataclass(frozen=True)
class TemporalSplit:
    """Cut-off dates (first day of the cut-off month) of each block, oldest first."""

    train: tuple[pd.Timestamp, ...]
    validation: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]
    embargoed: tuple[pd.Timestamp, ...]
    embargo_months: int
    # What was shrunk because the data is short; empty when nothing was.
    adjustments: tuple[str, ...] = ()

    def block_cutoffs(self, block: str) -> tuple[pd.Timestamp, ...]:
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; blocks are {BLOCKS}")
        return getattr(self, block)

    def block_of(self, cutoffs: pd.Series) -> pd.Series:
        """Return each cut-off's block name, or missing for embargoed and unknown cut-offs."""
        names = {stamp: block for block in BLOCKS for stamp in self.block_cutoffs(block)}
        return pd.Series(pd.DatetimeIndex(cutoffs).map(names), index=cutoffs.index, dtype="string")

    def describe(self) -> dict[str, str]:
        """Return the cut-offs of each block and of the embargo as ``YYYY-MM`` lists."""
        blocks = {block: self.block_cutoffs(block) for block in BLOCKS}
        blocks["embargoed"] = self.embargoed
        return {
            block: ",".join(stamp.strftime("%Y-%m") for stamp in stamps) for block, stamps in blocks.items()
        }


def _attempt(months: np.ndarray, size: int, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Place ``size`` test and validation cut-offs from the end with ``gap`` months between blocks."""
    test = months[-size:]
    validation = months[months + gap <= test[0]][-size:]
    if len(validation) < size:
        return None
    train = months[months + gap <= validation[0]]
    # A training block smaller than the held-out blocks would leave the model
    # little to learn from, so hold out less instead.
    if len(train) < size:
        return None
    return train, validation, test


def split_cutoffs(
    cutoffs: pd.Series | pd.DatetimeIndex, horizon_months: int, holdout_fraction: float
) -> TemporalSplit:
    """Split cut-off dates into train, validation and test blocks, latest last.

    The test block holds the latest ``holdout_fraction`` of the cut-offs
    (rounded, at least one) and the validation block as many cut-offs before it,
    each separated from the previous block by ``horizon_months``. When the
    cut-offs are too few, the held-out blocks shrink first, down to one
    cut-off each, and only then the embargo, month by month. Every shrink is
    logged as a warning and kept in ``adjustments``.
    """
    months = np.unique(month_number(pd.DatetimeIndex(cutoffs)))
    if len(months) < 3:
        listed = ", ".join(stamp.strftime("%Y-%m") for stamp in month_start(months))
        raise ValueError(
            f"a temporal split needs at least 3 cut-offs with labels, "
            f"got {len(months)} ({listed or 'none'}); "
            "use longer data or a shorter cutoff_step_months"
        )
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be between 0 and 1, got {holdout_fraction}")
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be at least 1, got {horizon_months}")
    wanted = max(1, round(len(months) * holdout_fraction))

    chosen = None
    for gap in range(horizon_months, 0, -1):
        for size in range(wanted, 0, -1):
            blocks = _attempt(months, size, gap)
            if blocks is not None:
                chosen = (gap, size, blocks)
                break
        if chosen is not None:
            break
    # Three distinct cut-offs always fit with a one-month gap and one cut-off per block.
    assert chosen is not None
    gap, size, (train, validation, test) = chosen

    adjustments = []
    if size < wanted:
        adjustments.append(
            f"held out {size} test and {size} validation cut-off(s) instead of {wanted} "
            f"(holdout fraction {holdout_fraction} of {len(months)} cut-offs), so that a "
            f"{gap}-month embargo between blocks leaves at least as many training cut-offs"
        )
    if gap < horizon_months:
        adjustments.append(
            f"reduced the embargo between blocks from {horizon_months} to {gap} months because "
            f"{len(months)} cut-offs cannot hold three blocks {horizon_months} months apart. "
            f"Labels of the last training cut-off read outcomes up to {horizon_months - gap} month(s) "
            "past the first validation cut-off"
        )
    used = np.concatenate([train, validation, test])
    embargoed = np.setdiff1d(months, used)

    split = TemporalSplit(
        train=tuple(month_start(train)),
        validation=tuple(month_start(validation)),
        test=tuple(month_start(test)),
        embargoed=tuple(month_start(embargoed)),
        embargo_months=gap,
        adjustments=tuple(adjustments),
    )
    for message in adjustments:
        logger.warning("Temporal split: %s", message)
    described = split.describe()
    logger.info(
        "Temporal split with a %d-month embargo: train %s; validation %s; test %s; embargoed %s",
        gap,
        described["train"],
        described["validation"],
        described["test"],
        described["embargoed"] or "none",
    )
    return split
