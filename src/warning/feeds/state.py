"""The rows each feed has delivered so far, and the rule that merges a new delivery into them.

Each feed keeps one Parquet file of current rows (``state/<feed>.parquet``):
the feed's own key (``key_0``, ``key_1``, ... with identity numbers replaced
by person ids and other cells as delivered), the contract columns it maps
to, and where the row came from (``_delivery``, ``_file``, ``_row``).

Merging a delivery follows one rule: the latest delivery wins. Within one
delivery a later row (by file name, then row number) replaces an earlier one
with the same key. A replaced row goes to ``history/<feed>.parquet`` with
the delivery and the reason, so nothing delivered is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("_delivery", "_file", "_row")
REPEATED_IN_DELIVERY = "repeats a row of the same delivery"
REPLACED_IN_DELIVERY = "replaced by a later row of the same delivery"
ALREADY_STORED = "already stored"
CORRECTED = "corrected by a later delivery"


def key_columns(count: int) -> list[str]:
    return [f"key_{position}" for position in range(count)]


@dataclass
class MergeResult:
    """What one delivery did to a feed's rows."""

    state: pd.DataFrame
    history: pd.DataFrame
    kept: pd.DataFrame
    corrected_before: pd.DataFrame
    merged_rows: pd.DataFrame

    @property
    def changed(self) -> bool:
        return len(self.kept) > 0


def _same_values(left: pd.DataFrame, right: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Return, row by row, whether two aligned frames hold the same values (missing equals missing)."""
    same = np.ones(len(left), dtype=bool)
    for column in columns:
        a = left[column].reset_index(drop=True)
        b = right[column].reset_index(drop=True)
        both_missing = (a.isna() & b.isna()).to_numpy(dtype=bool)
        equal = (a == b).fillna(False).to_numpy(dtype=bool)
        same &= equal | both_missing
    return same


def merge_delivery(
    state: pd.DataFrame, new: pd.DataFrame, keys: list[str], values: list[str], delivery: int
) -> MergeResult:
    """Merge the checked rows of one delivery into a feed's current rows.

    ``new`` has the key, value and lineage columns, in delivery order. Returns
    the new state, the rows moved to history, the rows kept from this
    delivery, the stored rows they corrected, and the delivered rows merged
    into others (repeats and rows replaced within the delivery), each with a
    ``_reason``.
    """
    new = new.reset_index(drop=True)
    last = ~new.duplicated(keys, keep="last")
    winners = new[last]
    losers = new[~last]
    merged_parts = []
    history_parts = []
    if len(losers):
        # Compare each replaced row with the row that replaced it.
        paired = losers[keys].merge(winners.reset_index(), on=keys, how="left")
        same = _same_values(losers, paired, values)
        source = "file " + paired["_file"].astype(str) + " row " + paired["_row"].astype(str)
        losers = losers.assign(
            _reason=np.where(same, REPEATED_IN_DELIVERY, REPLACED_IN_DELIVERY), _detail=source.to_numpy()
        )
        merged_parts.append(losers)
        history_parts.append(losers[~same].assign(_superseded_in=delivery))

    if len(state):
        joined = winners.reset_index(drop=True).merge(
            state[keys + values + list(LINEAGE_COLUMNS)],
            on=keys,
            how="left",
            suffixes=("", "_old"),
            indicator=True,
        )
        stored = (joined["_merge"] == "both").to_numpy()
        old = joined[[f"{column}_old" for column in values]].set_axis(values, axis=1)
        same = stored & _same_values(joined, old, values)
        repeats = winners.reset_index(drop=True)[same].assign(
            _reason=ALREADY_STORED,
            _detail=("delivery " + joined.loc[same, "_delivery_old"].astype("Int64").astype(str)).to_numpy(),
        )
        merged_parts.append(repeats)
        kept = winners.reset_index(drop=True)[~same]
        corrected_mask = stored & ~same
        corrected_keys = joined.loc[corrected_mask, keys]
        corrected_before = state.merge(corrected_keys, on=keys, how="inner")
        history_parts.append(corrected_before.assign(_reason=CORRECTED, _superseded_in=delivery))
        untouched = state.merge(kept[keys], on=keys, how="left", indicator=True)
        untouched = untouched[untouched["_merge"] == "left_only"].drop(columns="_merge")
        new_state = pd.concat([untouched, kept], ignore_index=True)
    else:
        kept = winners.reset_index(drop=True)
        corrected_before = new.iloc[0:0]
        new_state = kept

    merged_rows = (
        pd.concat(merged_parts, ignore_index=True)
        if merged_parts
        else new.iloc[0:0].assign(_reason="", _detail="")
    )
    history = (
        pd.concat(history_parts, ignore_index=True)
        if history_parts
        else new.iloc[0:0].assign(_reason="", _superseded_in=0)
    )
    return MergeResult(
        state=new_state[keys + values + list(LINEAGE_COLUMNS)].reset_index(drop=True),
        history=history,
        kept=kept,
        corrected_before=corrected_before,
        merged_rows=merged_rows,
    )


def read_frame(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None
