"""Track trailing 12-month income and spending, and record each fall below the line with its true cause.

A fall is the first month in which a household's trailing 12-month income per
person drops from at or above its line to below it. Sudden hardship is the
first month in which income minus rigid spending (out-of-pocket medical and
schooling costs) per person drops below the line while income alone does not.

The cause of either is the cause group whose recent shocks removed the most
income (for hardship: removed income or added rigid spending) in the 12
months up to that month. It is ``other`` when the household would have been
below the line even without those shocks, or when no shock is large enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WINDOW_MONTHS = 12


@dataclass
class TruthRecords:
    """Falls or hardship onsets: household rows, month offsets and cause indices."""

    households: list[np.ndarray] = field(default_factory=list)
    months: list[np.ndarray] = field(default_factory=list)
    causes: list[np.ndarray] = field(default_factory=list)

    def add(self, households: np.ndarray, month: int, causes: np.ndarray) -> None:
        self.households.append(households)
        self.months.append(np.full(len(households), month, dtype=np.int64))
        self.causes.append(causes)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.households:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(self.households), np.concatenate(self.months), np.concatenate(self.causes)


class TruthTracker:
    """Ring buffers of the last 12 months of income, rigid spending and shock attributions."""

    def __init__(
        self, members: np.ndarray, cause_count: int, other_cause: int, min_cause_share: float
    ) -> None:
        households = len(members)
        self.members = members.astype(np.float64)
        self.other_cause = other_cause
        self.min_cause_share = min_cause_share
        self.income = np.zeros((WINDOW_MONTHS, households))
        self.spend = np.zeros((WINDOW_MONTHS, households))
        self.loss = np.zeros((WINDOW_MONTHS, households, cause_count), dtype=np.float32)
        self.spend_shock = np.zeros((WINDOW_MONTHS, households, cause_count), dtype=np.float32)
        self.months_seen = 0
        self.below: np.ndarray | None = None
        self.hardship: np.ndarray | None = None
        self.falls = TruthRecords()
        self.hardship_onsets = TruthRecords()

    def trailing_income(self) -> np.ndarray:
        """Return the household income summed over the months seen so far, at most 12."""
        return self.income.sum(axis=0)

    def monthly_income_estimate(self, fallback: np.ndarray) -> np.ndarray:
        """Return mean monthly household income over the months seen, or ``fallback`` before any."""
        if self.months_seen == 0:
            return fallback
        return self.trailing_income() / min(self.months_seen, WINDOW_MONTHS)

    def update(
        self,
        month: int,
        income: np.ndarray,
        loss: np.ndarray,
        spend: np.ndarray,
        spend_shock: np.ndarray,
        line: np.ndarray,
    ) -> np.ndarray | None:
        """Add one month and record falls and hardship onsets.

        Returns trailing 12-month income per person, or None before 12 months are seen.
        """
        slot = month % WINDOW_MONTHS
        self.income[slot] = income
        self.loss[slot] = loss
        self.spend[slot] = spend
        self.spend_shock[slot] = spend_shock
        self.months_seen += 1
        if self.months_seen < WINDOW_MONTHS:
            return None

        # Summing whole-yuan amounts is exact in float64, so this matches any
        # recomputation from the written income table.
        income_12 = self.income.sum(axis=0)
        spend_12 = self.spend.sum(axis=0)
        per_person = income_12 / self.members
        below = per_person < line
        hardship = ~below & ((income_12 - spend_12) / self.members < line)
        if self.below is not None and self.hardship is not None:
            fell = np.flatnonzero(below & ~self.below)
            if fell.size:
                self.falls.add(fell, month, self._fall_causes(fell, income_12, line))
            onset = np.flatnonzero(hardship & ~self.hardship)
            if onset.size:
                self.hardship_onsets.add(
                    onset, month, self._hardship_causes(onset, income_12, spend_12, line)
                )
        self.below = below
        self.hardship = hardship
        return per_person

    def _pick(
        self, shares: np.ndarray, explained: np.ndarray, rows: np.ndarray, line: np.ndarray
    ) -> np.ndarray:
        large_enough = shares.max(axis=1) >= self.min_cause_share * line[rows] * self.members[rows]
        return np.where(explained & large_enough, shares.argmax(axis=1), self.other_cause)

    def _fall_causes(self, rows: np.ndarray, income_12: np.ndarray, line: np.ndarray) -> np.ndarray:
        loss = self.loss[:, rows, :].sum(axis=0, dtype=np.float64)
        without_shocks = (income_12[rows] + loss.sum(axis=1)) / self.members[rows]
        return self._pick(loss, without_shocks >= line[rows], rows, line)

    def _hardship_causes(
        self, rows: np.ndarray, income_12: np.ndarray, spend_12: np.ndarray, line: np.ndarray
    ) -> np.ndarray:
        loss = self.loss[:, rows, :].sum(axis=0, dtype=np.float64)
        shock_spend = self.spend_shock[:, rows, :].sum(axis=0, dtype=np.float64)
        routine_spend = spend_12[rows] - shock_spend.sum(axis=1)
        without_shocks = (income_12[rows] + loss.sum(axis=1) - routine_spend) / self.members[rows]
        return self._pick(loss + shock_spend, without_shocks >= line[rows], rows, line)
