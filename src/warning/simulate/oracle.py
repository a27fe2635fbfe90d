"""The true risk of each household, estimated by running the simulation forward from a cut-off many times.

At each requested cut-off month the whole simulation state (members,
households, registrations and the trailing 12 months of income and rigid
spending) is copied after that month is complete. Each copy runs
``horizon_months`` months on its own random stream, and a household's risk
is the share of copies (replicas) in which the event happens:

- ``p_fall``: trailing 12-month income per person (income table sources,
  without the assistance table) is below that year's line in any month
  after the cut-off and within the horizon. This is the definition of the
  labels, so for a household at or above its line at the cut-off it is the
  probability that its label is 1.
- ``p_hardship``: in any of those months, income minus out-of-pocket medical
  and schooling costs per person is below the line while income alone is not.

Every household is written for every cut-off, including those already below
the line (``below_at_cutoff``): for them ``p_fall`` is the probability of
being below the line in some month of the horizon, which labels do not ask.
The copies draw from streams of their own, so the observed run writes the
same tables with or without the oracle. Replica ``r`` draws the same stream
whatever the number of replicas, so more replicas extend a run's estimate.

NOTE: the shares are Monte Carlo estimates, and with few replicas most
households get ``p_fall = 0``, which ties them and lowers the oracle's
ROC-AUC. On 20,000 households (seed 20210101, cut-offs 2024-09 and 2024-12),
5, 20 and 80 replicas gave an AUC of 0.91, 0.95 and 0.98 against the
observed falls. A model's AUC as a share of the oracle's is therefore
overstated when replicas are few.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from warning.simulate.dynamics import Simulation
from warning.simulate.run import TRUTH_FOLDER
from warning.simulate.truth import WINDOW_MONTHS, TruthTracker

if TYPE_CHECKING:
    from warning.simulate.run import _Run

logger = logging.getLogger(__name__)

RISK_NAME = "risk"
RISK_COLUMNS = (
    "household_id",
    "cutoff",
    "below_at_cutoff",
    "hardship_at_cutoff",
    "p_fall",
    "p_hardship",
    "replicas",
)
# First entry of the spawn key of every replica stream. The observed run's
# generator has an empty spawn key, so replica streams never overlap it.
ORACLE_STREAM = 0x6F7261636C65


def replica_generator(seed: int, cutoff_month: int, replica: int) -> np.random.Generator:
    """Return the random generator of one replica, fixed by seed, absolute cut-off month and replica."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(ORACLE_STREAM, cutoff_month, replica))
    )


def _month_number(text: str, name: str) -> int:
    """Return a ``YYYY-MM`` month as months counted from year 0."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", str(text))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"{name} must be a month written YYYY-MM, got {text!r}")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def _month_label(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


class TrailingWindow:
    """The last 12 months of household income and rigid spending, without the tracker's causes."""

    def __init__(self, tracker: TruthTracker) -> None:
        self.members = tracker.members
        self.income = tracker.income.copy()
        self.spend = tracker.spend.copy()
        self.months_seen = tracker.months_seen

    def monthly_income_estimate(self) -> np.ndarray:
        """Return mean monthly household income over the last 12 months."""
        return self.income.sum(axis=0) / min(self.months_seen, WINDOW_MONTHS)

    def add(
        self, month: int, income: np.ndarray, spend: np.ndarray, line: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add one month and return trailing income per person, below-line flags and hardship flags.

        The flags follow ``TruthTracker.update``, and so do the labels.
        """
        slot = month % WINDOW_MONTHS
        self.income[slot] = income
        self.spend[slot] = spend
        self.months_seen += 1
        income_12 = self.income.sum(axis=0)
        spend_12 = self.spend.sum(axis=0)
        per_person = income_12 / self.members
        below = per_person < line
        hardship = ~below & ((income_12 - spend_12) / self.members < line)
        return per_person, below, hardship


@dataclass
class CutoffRisk:
    """Risk of every household at one cut-off, in household order."""

    cutoff: str
    below_at_cutoff: np.ndarray
    hardship_at_cutoff: np.ndarray
    p_fall: np.ndarray
    p_hardship: np.ndarray


class RiskOracle:
    """Replicate the simulation forward from each cut-off and collect the share of replicas with each event.

    The constructor checks the cut-offs against the run. A cut-off needs 12
    months of income up to and including it, so that households can be
    compared with the line. It also needs ``horizon_months`` simulated months
    after it, so that labels exist for it.
    """

    def __init__(
        self,
        cutoffs: list[str],
        start: str,
        months: int,
        seed: int,
        replicas: int = 20,
        horizon_months: int = 12,
    ) -> None:
        for name, value in (("oracle_replicas", replicas), ("horizon_months", horizon_months)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        self.start_month = _month_number(start, "start")
        self.seed = seed
        self.replicas = int(replicas)
        self.horizon_months = int(horizon_months)
        first = WINDOW_MONTHS - 1
        last = months - 1 - horizon_months
        self.offsets: dict[int, str] = {}
        for cutoff in cutoffs:
            offset = _month_number(cutoff, "every oracle cut-off") - self.start_month
            label = _month_label(self.start_month + offset)
            if not first <= offset <= last:
                earliest = _month_label(self.start_month + first)
                latest = _month_label(self.start_month + last)
                allowed = f"from {earliest} to {latest}" if first <= last else "none: simulate more months"
                raise ValueError(
                    f"oracle cut-off {cutoff!r} is outside the run: with start {start}, {months} months and "
                    f"a {horizon_months}-month horizon, a cut-off needs 12 months of income up to it and "
                    f"{horizon_months} simulated months after it, so valid cut-offs are {allowed}"
                )
            if offset in self.offsets:
                raise ValueError(f"oracle cut-off {cutoff!r} is listed twice in oracle_cutoffs {cutoffs}")
            self.offsets[offset] = label
        self.results: list[CutoffRisk] = []

    def wants(self, month: int) -> bool:
        """Return whether ``month`` (counted from the start month) is a cut-off."""
        return month in self.offsets

    def record(self, run: _Run, month: int) -> None:
        """Run the replicas from the state at the end of ``month`` and store each household's risk.

        Call it after the month's step, tracker update and registry update. It
        leaves ``run`` unchanged, including its random generator.
        """
        began = time.perf_counter()
        tracker = run.tracker
        if tracker.below is None or tracker.hardship is None:
            raise RuntimeError(f"oracle cut-off month {month} comes before 12 months of income were tracked")
        households = run.population.household_count
        falls = np.zeros(households, dtype=np.int64)
        hardship = np.zeros(households, dtype=np.int64)
        for replica in range(self.replicas):
            rng = replica_generator(self.seed, self.start_month + month, replica)
            fell, hard = self._run_replica(run, month, rng)
            falls += fell
            hardship += hard
        label = self.offsets[month]
        self.results.append(
            CutoffRisk(
                cutoff=label,
                below_at_cutoff=tracker.below.copy(),
                hardship_at_cutoff=tracker.hardship.copy(),
                p_fall=falls / self.replicas,
                p_hardship=hardship / self.replicas,
            )
        )
        at_risk = ~tracker.below
        logger.info(
            "Oracle at cut-off %s: %d replicas of %d months in %.1f s, mean p_fall %.4f over %d households "
            "at or above the line",
            label,
            self.replicas,
            self.horizon_months,
            time.perf_counter() - began,
            float(self.results[-1].p_fall[at_risk].mean()) if at_risk.any() else 0.0,
            int(at_risk.sum()),
        )

    def _run_replica(self, run: _Run, month: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Run a copy of the state ``horizon_months`` months on, and flag who fell and who met hardship.

        The steps repeat the monthly loop of ``run._run_months`` without writing
        tables or attributing causes.
        """
        simulation = fork_simulation(run.simulation, rng)
        registry = copy.deepcopy(run.registry)
        window = TrailingWindow(run.tracker)
        households = run.population.household_count
        ever_below = np.zeros(households, dtype=bool)
        ever_hardship = np.zeros(households, dtype=bool)
        start_month_of_year = self.start_month % 12
        for step in range(month + 1, month + 1 + self.horizon_months):
            year_index = (start_month_of_year + step) // 12
            result = simulation.step(step, year_index, window.monthly_income_estimate())
            total = sum(result.income.values())
            line = run.lines[:, year_index]
            per_person, below, hardship = window.add(step, total, result.spend, line)
            ever_below |= below
            ever_hardship |= hardship
            registry.update(
                step,
                simulation.rng,
                per_person,
                line,
                run.allowance[:, year_index],
                simulation.labour_now(),
                simulation.allowance_on,
                simulation.low_income_on,
            )
        return ever_below, ever_hardship

    def frame(self, household_ids: np.ndarray) -> pd.DataFrame:
        """Return one row per household and cut-off, cut-offs in the order they were run."""
        parts = [
            pd.DataFrame(
                {
                    "household_id": np.asarray(household_ids).astype(str),
                    "cutoff": result.cutoff,
                    "below_at_cutoff": result.below_at_cutoff,
                    "hardship_at_cutoff": result.hardship_at_cutoff,
                    "p_fall": result.p_fall,
                    "p_hardship": result.p_hardship,
                    "replicas": np.int64(self.replicas),
                },
                columns=list(RISK_COLUMNS),
            )
            for result in self.results
        ]
        if not parts:
            return pd.DataFrame({name: pd.Series(dtype=object) for name in RISK_COLUMNS})
        return pd.concat(parts, ignore_index=True)

    def write(
        self, out_dir: Path, file_format: Literal["parquet", "csv"], household_ids: np.ndarray
    ) -> pd.DataFrame:
        """Write ``truth/risk.<format>`` under ``out_dir`` and return its rows."""
        missing = sorted(set(self.offsets.values()) - {result.cutoff for result in self.results})
        if missing:
            raise RuntimeError(f"oracle cut-offs {missing} were never reached by the monthly loop")
        frame = self.frame(household_ids)
        path = Path(out_dir) / TRUTH_FOLDER / f"{RISK_NAME}.{file_format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if file_format == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        logger.info(
            "Wrote true risk of %d households at %d cut-offs (%d replicas each) to %s",
            len(household_ids),
            len(self.results),
            self.replicas,
            path,
        )
        return frame


def fork_simulation(simulation: Simulation, rng: np.random.Generator) -> Simulation:
    """Return an independent copy of the simulation state that draws from ``rng``.

    The population, the parameters and the allowance standards are shared,
    because no step changes them.
    """
    memo: dict[int, object] = {
        id(simulation.pop): simulation.pop,
        id(simulation.params): simulation.params,
        id(simulation.standards): simulation.standards,
        # The copy never writes employment spells, so it starts with none.
        id(simulation.closed_spells): [],
    }
    fork = copy.deepcopy(simulation, memo)
    fork.rng = rng
    return fork


def read_oracle(out_dir: Path) -> pd.DataFrame:
    """Read ``truth/risk`` of a simulated dataset, Parquet or CSV.

    Columns: household_id, cutoff (``YYYY-MM``), below_at_cutoff,
    hardship_at_cutoff, p_fall, p_hardship and replicas.
    """
    folder = Path(out_dir) / TRUTH_FOLDER
    parquet, csv = folder / f"{RISK_NAME}.parquet", folder / f"{RISK_NAME}.csv"
    if parquet.exists():
        return pd.read_parquet(parquet)
    if csv.exists():
        return pd.read_csv(csv, dtype={"household_id": str, "cutoff": str})
    raise FileNotFoundError(
        f"true risk file {RISK_NAME}.parquet or {RISK_NAME}.csv not found in {folder}: "
        "run simulate with oracle_cutoffs first"
    )
