"""Registration spells: the poor history before the start, and low-income and allowance spells over time."""

from __future__ import annotations

import numpy as np

from warning.contract import REGISTRATION_STATUSES
from warning.simulate.params import Parameters

POOR, EXITED, LOW_INCOME, ALLOWANCE = (
    REGISTRATION_STATUSES.index(s) for s in ("poor", "exited", "low_income", "allowance")
)
# End month of a spell still open at the end of the run, written as an empty end month.
OPEN = np.iinfo(np.int64).min


class Registry:
    """Closed and open registration spells, with months counted from the start month (0)."""

    def __init__(self, params: Parameters, households: int) -> None:
        self.params = params
        self.households: list[np.ndarray] = []
        self.statuses: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        self.allowance_start = np.zeros(households, dtype=np.int64)
        self.low_income_start = np.zeros(households, dtype=np.int64)
        self.months_above_allowance = np.zeros(households, dtype=np.int64)
        self.months_above_low_income = np.zeros(households, dtype=np.int64)

    def add(self, households: np.ndarray, status: int, starts: np.ndarray, ends: np.ndarray) -> None:
        self.households.append(households)
        self.statuses.append(np.full(len(households), status, dtype=np.int64))
        self.starts.append(np.asarray(starts, dtype=np.int64))
        self.ends.append(np.asarray(ends, dtype=np.int64))

    def add_history(
        self,
        rng: np.random.Generator,
        former_poor: np.ndarray,
        urban: np.ndarray,
        income_per_person: np.ndarray,
        line: np.ndarray,
        standard: np.ndarray,
        allowance_on: np.ndarray,
        low_income_on: np.ndarray,
    ) -> None:
        """Write spells that began before the start, and set who is on the allowance or low-income list.

        Registered poor households were filed, stayed registered at least a
        year and exited by the month before the start. Their ``exited`` spell
        stays open. Households below the allowance standard take it up with a
        given probability, and households near the line may be listed as low income.
        Allowance and low-income spells stay open in the flags until they end.
        """
        pr = self.params
        n = len(former_poor)
        earliest, latest = (int(value) for value in pr.vector("registrations.filing_months_before_start", 2))
        minimum = pr.integer("registrations.min_months_registered", 1)
        if latest <= minimum:
            raise ValueError(
                f"simulator parameters {pr.source}: registrations.filing_months_before_start "
                f"must end more than {minimum} months before the start, got {latest}"
            )
        poor = np.flatnonzero(former_poor)
        filed = -rng.integers(latest, earliest + 1, poor.size)
        exited = rng.integers(filed + minimum, 0)
        self.add(poor, POOR, filed, exited)
        self.add(poor, EXITED, exited + 1, np.full(poor.size, OPEN))

        take_up = rng.random(n) < pr.probability("allowance_standard.take_up")
        on_allowance = (income_per_person < 12.0 * standard) & take_up
        allowance_households = np.flatnonzero(on_allowance)
        earliest_allowance = pr.integer("registrations.allowance_months_before_start", 1)
        starts = -rng.integers(1, earliest_allowance + 1, allowance_households.size)
        allowance_on[allowance_households] = True
        self.allowance_start[allowance_households] = starts

        near = (
            ~on_allowance
            & ~urban
            & (income_per_person < pr.number("registrations.low_income_upper_ratio", 1.0) * line)
            & (rng.random(n) < pr.probability("registrations.low_income_share_near_line"))
        )
        listed = np.flatnonzero(near)
        earliest_low_income = pr.integer("registrations.low_income_months_before_start", 1)
        starts = -rng.integers(1, earliest_low_income + 1, listed.size)
        low_income_on[listed] = True
        self.low_income_start[listed] = starts

    def update(
        self,
        month: int,
        rng: np.random.Generator,
        income_per_person: np.ndarray,
        line: np.ndarray,
        standard: np.ndarray,
        labour_now: np.ndarray,
        allowance_on: np.ndarray,
        low_income_on: np.ndarray,
    ) -> None:
        """Register households found below their line, and end spells after stable months above it."""
        pr = self.params
        n = len(line)
        below = income_per_person < line
        found = (
            below
            & ~allowance_on
            & ~low_income_on
            & (rng.random(n) < pr.probability("registrations.detection_monthly"))
        )
        needs_allowance = (labour_now == 0) | (income_per_person < 12.0 * standard)
        to_allowance = (
            found & needs_allowance & (rng.random(n) < pr.probability("allowance_standard.take_up"))
        )
        to_low_income = found & ~to_allowance
        allowance_on[to_allowance] = True
        self.allowance_start[to_allowance] = month
        low_income_on[to_low_income] = True
        self.low_income_start[to_low_income] = month

        ratio = pr.number("registrations.exit_ratio", 0.0)
        needed = pr.integer("registrations.exit_months_above", 1)
        exit_probability = pr.probability("registrations.exit_probability_monthly")
        self.months_above_low_income = np.where(
            low_income_on & (income_per_person >= ratio * line), self.months_above_low_income + 1, 0
        )
        self.months_above_allowance = np.where(
            allowance_on & (income_per_person >= ratio * 12.0 * standard), self.months_above_allowance + 1, 0
        )
        draws = rng.random(n)
        leaving = np.flatnonzero(
            low_income_on & (self.months_above_low_income >= needed) & (draws < exit_probability)
        )
        self.add(leaving, LOW_INCOME, self.low_income_start[leaving], np.full(leaving.size, month))
        low_income_on[leaving] = False
        self.months_above_low_income[leaving] = 0
        leaving = np.flatnonzero(
            allowance_on & (self.months_above_allowance >= needed) & (draws < exit_probability)
        )
        self.add(leaving, ALLOWANCE, self.allowance_start[leaving], np.full(leaving.size, month))
        allowance_on[leaving] = False
        self.months_above_allowance[leaving] = 0

    def spells(self, allowance_on: np.ndarray, low_income_on: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return household, status, start and end of every spell, with ``OPEN`` as the end of open spells."""
        open_allowance = np.flatnonzero(allowance_on)
        open_low_income = np.flatnonzero(low_income_on)
        households = self.households + [open_allowance, open_low_income]
        statuses = self.statuses + [
            np.full(open_allowance.size, ALLOWANCE, dtype=np.int64),
            np.full(open_low_income.size, LOW_INCOME, dtype=np.int64),
        ]
        starts = self.starts + [self.allowance_start[open_allowance], self.low_income_start[open_low_income]]
        ends = self.ends + [np.full(open_allowance.size, OPEN), np.full(open_low_income.size, OPEN)]
        return tuple(np.concatenate(part) for part in (households, statuses, starts, ends))
