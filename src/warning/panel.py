"""The household x period grid that features and labels are computed on.

A period is a month for monthly records and a calendar year for survey waves
(``DatasetInfo.period``). Every series is a dense ``(households, periods)``
array built from one contract table. A period in which a household was not
observed is NaN, so that a missing survey wave never reads as zero income.

Features and labels both build on this module; neither imports the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from warning.store import Store

logger = logging.getLogger(__name__)

SPELL_TABLES = ("employment", "registrations")


def month_number(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Return months as integers counted from year 0, so that months subtract."""
    stamps = pd.DatetimeIndex(values)
    return (stamps.year.to_numpy() * 12 + stamps.month.to_numpy() - 1).astype(np.int64)


def month_start(numbers: np.ndarray) -> pd.DatetimeIndex:
    numbers = np.asarray(numbers, dtype=np.int64)
    years, months = np.divmod(numbers, 12)
    return pd.to_datetime({"year": years, "month": months + 1, "day": 1}).astype("datetime64[ms]")


@dataclass(frozen=True)
class SeriesSpec:
    """How to turn one contract table into a household x period series."""

    table: str
    value: str
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()


class LineTable:
    """The poverty-lines table, looked up by region code, urban/rural and year.

    The line of a household is the row for its urban/rural kind whose region
    prefix is the longest prefix of its region code; an empty prefix applies
    everywhere. A year without a line takes the latest earlier one. Lookups
    are remembered, so a service that builds one table per model answers each
    request without searching the lines again.
    """

    def __init__(self, lines: pd.DataFrame):
        if lines.empty:
            raise ValueError("the poverty_lines table is empty, so no household can be compared with a line")
        self.lines = lines
        self._prefixes = lines["region_prefix"].fillna("").astype(str).str.strip().to_numpy()
        self._kinds = lines["urban_rural"].astype(str).to_numpy()
        self._by_key: dict[tuple[str, str], pd.Series] = {}

    def _yearly(self, region_code: str, urban_rural: str) -> pd.Series:
        key = (region_code, urban_rural)
        if key not in self._by_key:
            match = (self._kinds == urban_rural) & np.array([region_code.startswith(prefix) for prefix in self._prefixes])
            if not match.any():
                raise ValueError(
                    f"no poverty line matches region_code {region_code!r} ({urban_rural}); "
                    "add a poverty_lines row with its prefix or an empty prefix"
                )
            candidates = self.lines.loc[match].assign(prefix_length=[len(prefix) for prefix in self._prefixes[match]])
            best = candidates.sort_values(["year", "prefix_length"]).groupby("year").tail(1)
            self._by_key[key] = best.set_index("year")["line"].sort_index()
        return self._by_key[key]

    def lines_for(self, region_code: str, urban_rural: str, years: np.ndarray) -> np.ndarray:
        """Return the line per person per year of one kind of household in each of ``years``."""
        by_year = self._yearly(region_code, urban_rural)
        position = np.searchsorted(by_year.index.to_numpy(), years, side="right") - 1
        if (position < 0).any():
            year = int(np.asarray(years)[position < 0][0])
            raise ValueError(f"no poverty line for year {year} or earlier for region_code {region_code!r} ({urban_rural})")
        return by_year.to_numpy(dtype=np.float64)[position]


class Panel:
    """Households, the period grid, monitoring lines and observed cells of one store.

    ``lines`` overrides the store's poverty-lines table, which is how the
    service scores request histories against the lines the model learned with.
    """

    def __init__(self, store: Store, lines: pd.DataFrame | LineTable | None = None, last_month: int | None = None):
        self.store = store
        self.period_months = store.info.period_months
        households = store.table("households").drop_duplicates("household_id").reset_index(drop=True)
        if households.empty:
            raise ValueError(f"store {store.folder} has no households")
        self.households = households
        self.household_ids = households["household_id"].to_numpy()
        self.members = households["members"].to_numpy(dtype=np.float64)
        self._index = pd.Index(self.household_ids)

        income = store.table("income")
        if income.empty:
            raise ValueError(f"store {store.folder} has no income rows, so there is no period grid")
        income_months = month_number(income["month"])
        first = int(income_months.min())
        last = int(income_months.max()) if last_month is None else int(last_month)
        if self.period_months == 12:
            first -= first % 12
        self.first_month = first
        self.n_periods = (last - first) // self.period_months + 1
        self.period_start_months = first + self.period_months * np.arange(self.n_periods)
        self.observed = self._observed_cells(income, income_months)
        self.lines = self._line_per_cell(store.table("poverty_lines") if lines is None else lines)
        self._cache: dict[SeriesSpec, np.ndarray] = {}
        self._rows_cache: dict[str, np.ndarray] = {}
        self._columns_cache: dict[tuple[str, str], np.ndarray] = {}
        self._categories_cache: dict[tuple[str, str], pd.Index] = {}
        self._periods_cache: dict[tuple[str, str], np.ndarray] = {}
        logger.debug(
            "Built panel of %d households x %d periods of %d month(s) from %s",
            len(self.household_ids),
            self.n_periods,
            self.period_months,
            store.folder,
        )

    # Grid helpers.

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.household_ids), self.n_periods

    @property
    def periods_per_year(self) -> int:
        return 12 // self.period_months

    def period_of_month(self, months: np.ndarray) -> np.ndarray:
        return (np.asarray(months, dtype=np.int64) - self.first_month) // self.period_months

    def periods_for_months(self, months: int) -> int:
        """Return how many periods a window of ``months`` covers, rounded up."""
        return max(1, -(-int(months) // self.period_months))

    def cutoff_months(self, periods: np.ndarray) -> np.ndarray:
        """Return the last month of each period, the month a cut-off at that period is dated."""
        return self.period_start_months[np.asarray(periods)] + self.period_months - 1

    def household_positions(self, ids: pd.Series) -> np.ndarray:
        """Return each id's row in the grid, or -1 where the household is unknown."""
        return self._index.get_indexer(ids.to_numpy())

    def _observed_cells(self, income: pd.DataFrame, income_months: np.ndarray) -> np.ndarray:
        if self.period_months == 1:
            # Monthly records omit zero-income months, so every month is observed.
            return np.ones(self.shape, dtype=bool)
        observed = np.zeros(self.shape, dtype=bool)
        rows = self.household_positions(income["household_id"])
        periods = self.period_of_month(income_months)
        keep = (rows >= 0) & (periods >= 0) & (periods < self.n_periods)
        observed[rows[keep], periods[keep]] = True
        return observed

    def _line_per_cell(self, lines: pd.DataFrame | LineTable) -> np.ndarray:
        """Return the yearly monitoring line per person for every household and period."""
        table = lines if isinstance(lines, LineTable) else LineTable(lines)
        years = (self.period_start_months // 12).astype(np.int64)
        grid_years = np.unique(years)
        year_position = np.searchsorted(grid_years, years)
        cell_lines = np.empty(self.shape)
        keys = zip(self.households["region_code"].astype(str), self.households["urban_rural"].astype(str))
        for row, (region_code, urban_rural) in enumerate(keys):
            cell_lines[row] = table.lines_for(region_code, urban_rural, grid_years)[year_position]
        return cell_lines

    # Series.

    def series(self, spec: SeriesSpec) -> np.ndarray:
        """Return a float ``(households, periods)`` array, NaN in periods not observed.

        A table the dataset does not have gives NaN everywhere: a survey without
        medical records has no medical costs, which is not the same as zero costs.
        """
        if spec not in self._cache:
            if spec.table in self.store.tables:
                values = self._build_series(spec)
            else:
                values = np.full(self.shape, np.nan)
            values[~self.observed] = np.nan
            self._cache[spec] = values
        return self._cache[spec]

    def _table_rows(self, table: str) -> np.ndarray:
        """Return the grid row of every record of a table, computed once per table."""
        if table not in self._rows_cache:
            self._rows_cache[table] = self.household_positions(self.store.table(table)["household_id"])
        return self._rows_cache[table]

    def _table_periods(self, table: str, column: str) -> np.ndarray:
        """Return the grid period of a month column of a table, computed once per column."""
        key = (table, column)
        if key not in self._periods_cache:
            frame = self.store.table(table)
            months = frame[column]
            numbers = np.full(len(frame), -(10**9), dtype=np.int64)
            present = months.notna().to_numpy()
            numbers[present] = month_number(months[present])
            periods = self.period_of_month(numbers)
            periods[~present] = -1
            self._periods_cache[key] = periods
        return self._periods_cache[key]

    def _column(self, table: str, column: str) -> np.ndarray:
        """Return a table column as a numpy array, converted once per column.

        Text columns become integer codes (see ``_categories``), which compare
        and filter far faster than Python strings.
        """
        key = (table, column)
        if key not in self._columns_cache:
            frame = self.store.table(table)
            if column not in frame.columns:
                raise KeyError(f"series filter names column {column!r}, which table {table!r} lacks")
            values = frame[column]
            if values.dtype.kind in "fiub":
                self._columns_cache[key] = values.to_numpy()
            else:
                codes, categories = pd.factorize(values, use_na_sentinel=True)
                self._columns_cache[key] = codes
                self._categories_cache[key] = pd.Index(categories)
        return self._columns_cache[key]

    def _codes_of(self, table: str, column: str, allowed: tuple[str, ...]) -> np.ndarray:
        self._column(table, column)
        categories = self._categories_cache[(table, column)]
        positions = categories.get_indexer(list(allowed))
        return positions[positions >= 0]

    def _selection(self, spec: SeriesSpec) -> np.ndarray:
        selected = np.ones(len(self.store.table(spec.table)), dtype=bool)
        for column, allowed in spec.where:
            selected &= np.isin(self._column(spec.table, column), self._codes_of(spec.table, column, allowed))
        return selected

    def _build_series(self, spec: SeriesSpec) -> np.ndarray:
        if spec.table == "insurance":
            if spec.value != "enrolled":
                raise ValueError(f"insurance series take value 'enrolled', got {spec.value!r}")
            return self._insurance_share(self._selection(spec))
        selected = self._selection(spec)
        rows = self._table_rows(spec.table)[selected]
        if spec.table in SPELL_TABLES:
            start = self._table_periods(spec.table, "start_month")[selected]
            if spec.value == "starts":
                return self._accumulate(rows, start, np.ones(len(rows)))
            if spec.value != "active":
                raise ValueError(f"spell series take value 'active' or 'starts', got {spec.value!r}")
            end_month = self.store.table(spec.table)["end_month"][selected]
            end = self._table_periods(spec.table, "end_month")[selected]
            # An open spell (no end month) runs to the end of the grid.
            end = np.where(end_month.isna().to_numpy(), self.n_periods - 1, end)
            return self._spell_counts(rows, start, end)
        periods = self._table_periods(spec.table, "month")[selected]
        frame = self.store.table(spec.table)
        if spec.value == "rows":
            weights = np.ones(len(rows))
        elif spec.value in frame.columns:
            weights = frame[spec.value].to_numpy(dtype=np.float64, na_value=0.0)[selected]
        else:
            raise KeyError(f"series value {spec.value!r} is neither 'rows' nor a column of {spec.table!r}")
        return self._accumulate(rows, periods, weights)

    def _accumulate(self, rows: np.ndarray, periods: np.ndarray, weights: np.ndarray) -> np.ndarray:
        n_households, n_periods = self.shape
        keep = (rows >= 0) & (periods >= 0) & (periods < n_periods)
        flat = rows[keep] * n_periods + periods[keep]
        totals = np.bincount(flat, weights=weights[keep], minlength=n_households * n_periods)
        return totals.reshape(n_households, n_periods).astype(np.float64)

    def _spell_counts(self, rows: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Count the spells open in each period.

        A spell's end only matters for periods it covers, so an end after a
        cut-off never changes values at or before that cut-off.
        """
        n_households, n_periods = self.shape
        keep = (rows >= 0) & (end >= 0) & (start < n_periods) & (end >= start)
        first = np.clip(start[keep], 0, n_periods - 1)
        stop = np.clip(end[keep], 0, n_periods - 1) + 1
        change = np.zeros(n_households * (n_periods + 1))
        change += np.bincount(rows[keep] * (n_periods + 1) + first, minlength=change.size)
        change -= np.bincount(rows[keep] * (n_periods + 1) + stop, minlength=change.size)
        return np.cumsum(change.reshape(n_households, n_periods + 1), axis=1)[:, :n_periods]

    def _insurance_share(self, selected: np.ndarray) -> np.ndarray:
        """Return the share of members enrolled, per household and period.

        A yearly enrolment is known from January of that year, when the
        contribution is paid, so it applies to every period of the year. A
        person counts once per year, however many rows name them.
        """
        keep = selected & self._column("insurance", "enrolled").astype(bool)
        rows = self._table_rows("insurance")[keep]
        years = self._column("insurance", "year")[keep].astype(np.int64)
        persons = self._column("insurance", "person_id")[keep]
        period_years = self.period_start_months // 12
        shares = np.zeros(self.shape)
        if rows.size == 0:
            return shares
        # Unique per household too: two households naming the same person must
        # not take each other's enrolments.
        keys = np.stack([rows, persons.astype(np.int64), years], axis=1)
        _, first = np.unique(keys, axis=0, return_index=True)
        rows, years = rows[first], years[first]
        for year in np.unique(years):
            columns = np.flatnonzero(period_years == year)
            in_year = (years == year) & (rows >= 0)
            if columns.size == 0 or not in_year.any():
                continue
            counts = np.bincount(rows[in_year], minlength=len(self.members))
            share = np.minimum(counts / self.members, 1.0)
            shares[:, columns] = share[:, None]
        return shares

    # Income against the line.

    def _trailing_per_person(self, values: np.ndarray) -> np.ndarray:
        """Return the trailing 12-month sum per person at every period.

        NaN until a full year of periods is available or where any period of
        the year was not observed.
        """
        window = self.periods_per_year
        totals = np.cumsum(np.nan_to_num(values, nan=0.0), axis=1)
        trailing = totals.copy()
        trailing[:, window:] -= totals[:, :-window]
        observed = np.cumsum(self.observed, axis=1)
        observed_in_window = observed.copy()
        observed_in_window[:, window:] -= observed[:, :-window]
        trailing[observed_in_window < window] = np.nan
        trailing[:, : window - 1] = np.nan
        return trailing / self.members[:, None]

    def income_per_person_12m(self) -> np.ndarray:
        """Return trailing 12-month net income per person at every period."""
        return self._trailing_per_person(self.series(SeriesSpec("income", "amount")))

    def rigid_spending_per_person_12m(self) -> np.ndarray:
        """Return trailing 12-month spending a household cannot avoid, per person.

        Rigid spending is out-of-pocket medical cost plus schooling cost (events
        of kind ``schooling``). A table the dataset lacks counts as no spending,
        so that survey data without medical records still has hardship labels
        equal to the income test.
        """
        total = np.zeros(self.shape)
        for spec in (SeriesSpec("medical_claims", "out_of_pocket"), SeriesSpec("events", "loss_amount", (("kind", ("schooling",)),))):
            if spec.table in self.store.tables:
                total += np.nan_to_num(self.series(spec), nan=0.0)
        total[~self.observed] = np.nan
        return self._trailing_per_person(total)

    def below_line(self) -> np.ndarray:
        """Return 1.0 where trailing income per person is under the line, 0.0 above, NaN unknown."""
        income = self.income_per_person_12m()
        below = (income < self.lines).astype(np.float64)
        below[np.isnan(income)] = np.nan
        return below

    def in_hardship(self) -> np.ndarray:
        """Return 1.0 where income minus rigid spending is under the line but income is not.

        0.0 where neither holds, NaN where income is unknown or already under
        the line (those households are poor, not in sudden hardship).
        """
        income = self.income_per_person_12m()
        after_spending = income - self.rigid_spending_per_person_12m()
        hardship = (after_spending < self.lines).astype(np.float64)
        hardship[np.isnan(income) | (income < self.lines)] = np.nan
        return hardship
