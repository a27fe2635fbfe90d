"""Shared state codes of the monthly simulation and the per-month result it returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warning.contract import ASSISTANCE_PROGRAMMES, CLAIM_CATEGORIES, EVENT_KINDS, INCOME_SOURCES

# Member status: why a member with an earning role earns less than their potential.
ACTIVE, OFF, UNEMPLOYED, DISABLED, DEAD, RETIRED = range(6)
# Employment kinds as indices into contract EMPLOYMENT_KINDS.
KIND_UNEMPLOYED, KIND_OUT_OF_LABOUR_FORCE = 4, 5
NO_KIND = -1
# Insurance schemes as indices into contract INSURANCE_SCHEMES.
MEDICAL, CRITICAL_ILLNESS, PENSION, UNEMPLOYMENT, WORK_INJURY = range(5)
# Lower bounds of the age groups in the parameters (households.age_groups), checked at load.
AGE_GROUP_LOWER_BOUNDS = np.array([0, 6, 16, 23, 50, 65])


def lognormal(rng: np.random.Generator, mean: np.ndarray | float, sigma: float, size: int) -> np.ndarray:
    """Draw log-normal values with the given arithmetic mean."""
    return np.asarray(mean) * np.exp(sigma * rng.standard_normal(size) - 0.5 * sigma**2)


def age_group(age_years: np.ndarray) -> np.ndarray:
    return np.searchsorted(AGE_GROUP_LOWER_BOUNDS, age_years, side="right") - 1


@dataclass
class MonthResult:
    """Household-level outputs of one month, one ``(households,)`` array per table value."""

    income: dict[str, np.ndarray]
    claims: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    assistance: dict[str, np.ndarray]
    event_count: dict[str, np.ndarray]
    event_loss: dict[str, np.ndarray]
    loss: np.ndarray
    spend: np.ndarray
    spend_shock: np.ndarray
    insurance: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def empty(cls, households: int, causes: int) -> MonthResult:
        zeros = lambda: np.zeros(households)  # noqa: E731
        return cls(
            income={source: zeros() for source in INCOME_SOURCES},
            claims={category: (zeros(), zeros(), zeros()) for category in CLAIM_CATEGORIES},
            assistance={programme: zeros() for programme in ASSISTANCE_PROGRAMMES},
            event_count={kind: zeros() for kind in EVENT_KINDS},
            event_loss={kind: zeros() for kind in EVENT_KINDS},
            loss=np.zeros((households, causes)),
            spend=zeros(),
            spend_shock=np.zeros((households, causes)),
        )

    def add_event(self, kind: str, households: np.ndarray, loss: np.ndarray) -> None:
        size = len(self.spend)
        self.event_count[kind] += np.bincount(households, minlength=size)
        self.event_loss[kind] += np.bincount(households, weights=loss, minlength=size)

    def add_claims(
        self, category: str, households: np.ndarray, cost: np.ndarray, reimbursed: np.ndarray
    ) -> None:
        size = len(self.spend)
        total, paid, own = self.claims[category]
        total += np.bincount(households, weights=cost, minlength=size)
        paid += np.bincount(households, weights=reimbursed, minlength=size)
        own += np.bincount(households, weights=cost - reimbursed, minlength=size)
