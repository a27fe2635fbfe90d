"""The versioned table of administrative division codes, and resolving a code to its county.

County-level codes change when a county becomes a district or a city, so the
same place has different codes in different years. The table
(``region_codes.csv``: code, name, valid_from, valid_to, successor, note)
lists every code that departments may send. A retired code names its
successor, and ``RegionCodes.resolve`` follows successors to the code in use
today, so that one county keeps one code across years in the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_REGION_CODES_PATH = Path(__file__).with_name("region_codes.csv")
REGION_COLUMNS = ("code", "name", "valid_from", "valid_to", "successor")


class RegionTableError(ValueError):
    """The region code table itself is invalid."""


@dataclass(frozen=True)
class Resolution:
    """Resolved codes of a column: the current code, or missing, and which codes were retired."""

    current: pd.Series
    unknown: pd.Series
    retired: pd.Series


class RegionCodes:
    """Administrative division codes with validity dates and successors."""

    def __init__(self, table: pd.DataFrame, source: str = "region table") -> None:
        missing = [name for name in REGION_COLUMNS if name not in table.columns]
        if missing:
            raise RegionTableError(f"{source}: missing columns {missing}")
        table = table.astype({name: "string" for name in REGION_COLUMNS})
        bad = table.loc[~table["code"].str.fullmatch(r"\d{6}").fillna(False), "code"]
        if len(bad):
            raise RegionTableError(f"{source}: codes must have 6 digits, got {bad.tolist()}")
        if table["code"].duplicated().any():
            raise RegionTableError(
                f"{source}: codes repeat: {table.loc[table['code'].duplicated(), 'code'].tolist()}"
            )
        known = set(table["code"])
        successors = table["successor"].dropna()
        unknown = sorted(set(successors) - known)
        if unknown:
            raise RegionTableError(f"{source}: successors {unknown} are not codes of the table")
        self.source = source
        self.table = table.set_index("code")
        self._current = {code: self._follow(code) for code in known}

    @classmethod
    def load(cls, path: Path | None = None) -> RegionCodes:
        """Read the table from a CSV file; ``None`` reads the table shipped with the package."""
        path = Path(path) if path is not None else DEFAULT_REGION_CODES_PATH
        if not path.is_file():
            raise FileNotFoundError(f"region code table {path} not found; set POVWARN_REGION_CODES_PATH")
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        codes = cls(table, source=str(path))
        logger.info("Read %d region codes from %s", len(table), path)
        return codes

    def _follow(self, code: str) -> str:
        seen = [code]
        while True:
            successor = self.table.at[seen[-1], "successor"]
            if pd.isna(successor):
                return seen[-1]
            if successor in seen:
                raise RegionTableError(f"{self.source}: successors of {code} form a cycle {seen}")
            seen.append(str(successor))

    def current(self, code: str) -> str:
        """Return the code in use today for ``code``; raises ``KeyError`` naming an unknown code."""
        try:
            return self._current[code]
        except KeyError:
            raise KeyError(f"unknown region code {code!r}: not in {self.source}") from None

    def resolve(self, codes: pd.Series) -> Resolution:
        """Resolve a column of codes at once; unknown codes get a missing current code."""
        values, uniques = pd.factorize(codes, use_na_sentinel=True)
        mapped = np.array([self._current.get(str(code)) for code in uniques] + [None], dtype=object)
        retired = np.array([self._current.get(str(code), code) != code for code in uniques] + [False])
        current = pd.Series(mapped[values], index=codes.index, dtype="string")
        return Resolution(
            current=current,
            unknown=codes.notna() & current.isna(),
            retired=pd.Series(retired[values], index=codes.index, dtype=bool),
        )
