"""Run the household simulator and write a dataset folder plus the true causes of falls."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from warning.contract import (
    ASSISTANCE_PROGRAMMES,
    CLAIM_CATEGORIES,
    EMPLOYMENT_KINDS,
    EVENT_KINDS,
    INCOME_SOURCES,
    INSURANCE_SCHEMES,
    REGISTRATION_STATUSES,
    TABLES,
    DatasetInfo,
)
from warning.simulate.dynamics import Simulation
from warning.simulate.params import Parameters
from warning.simulate.population import Population, draw_population
from warning.simulate.regions import Standards, line_matrix, load_regions
from warning.simulate.registrations import OPEN, Registry
from warning.simulate.state import MonthResult
from warning.simulate.truth import TruthRecords, TruthTracker
from warning.simulate.writer import TableWriter, lookup, table_schema

if TYPE_CHECKING:
    from warning.simulate.oracle import RiskOracle

logger = logging.getLogger(__name__)

TRUTH_FOLDER = "truth"
TRUTH_COLUMNS = ("household_id", "month", "cause")
LOG_EVERY_MONTHS = 12
# Month labels reach this far before the start, which covers a working life of spells.
EARLIEST_MONTH_OFFSET = 1200


@dataclass
class SimulationSummary:
    """Counts of one simulation run: rows per table, falls by cause and shares below the line."""

    out_dir: Path
    households: int
    months: int
    start: str
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    falls_by_cause: dict[str, int] = field(default_factory=dict)
    hardship_by_cause: dict[str, int] = field(default_factory=dict)
    households_with_falls: int = 0
    below_line_last_month: dict[str, float] = field(default_factory=dict)
    elapsed_seconds: float = 0.0


def _parse_start(start: str) -> tuple[int, int]:
    """Return (year, zero-based month of year) of a ``YYYY-MM`` string."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", start)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"start must be a month written YYYY-MM, got {start!r}")
    return int(match.group(1)), int(match.group(2)) - 1


class MonthLabels:
    """``YYYY-MM`` labels of month offsets from the start month, as an Arrow dictionary."""

    def __init__(self, start_year: int, start_month_of_year: int, first: int, last: int) -> None:
        self.first = first
        absolute = start_year * 12 + start_month_of_year + np.arange(first, last + 1)
        self.labels = pa.array(
            [f"{value // 12:04d}-{value % 12 + 1:02d}" for value in absolute], type=pa.string()
        )

    def take(self, offsets: np.ndarray) -> pa.Array:
        """Return labels of month offsets, with null for ``OPEN``."""
        offsets = np.asarray(offsets, dtype=np.int64)
        codes = np.where(offsets == OPEN, -1, offsets - self.first)
        if codes.size and (codes.max() >= len(self.labels) or ((codes < 0) & (offsets != OPEN)).any()):
            raise ValueError(
                f"month offsets {offsets.min()}..{offsets.max()} fall outside the labelled months"
            )
        return lookup(self.labels, codes)

    def label(self, offset: int) -> str:
        return str(self.labels[offset - self.first])


def _categories(names: tuple[str, ...] | list[str]) -> pa.Array:
    return pa.array(list(names), type=pa.string())


def simulate(
    out_dir: Path,
    households: int = 50_000,
    months: int = 60,
    start: str = "2021-01",
    seed: int = 20210101,
    file_format: Literal["parquet", "csv"] = "parquet",
    parameters_path: Path | None = None,
    oracle_cutoffs: list[str] | None = None,
    oracle_replicas: int = 20,
    horizon_months: int = 12,
    as_feeds: bool = False,
    feed_part: int | None = None,
) -> SimulationSummary:
    """Simulate households month by month and write one file per contract table to ``out_dir``.

    Also writes ``dataset.yaml`` and, under ``truth/``, the true cause of every
    fall below the line (``falls``) and of every onset of sudden hardship
    (``hardship``), in the same file format as the tables. The same seed and
    parameters give identical files.

    With ``oracle_cutoffs`` (``YYYY-MM`` months), it also writes ``truth/risk``:
    each household's probability of falling below the line within
    ``horizon_months`` after each cut-off, from ``oracle_replicas`` runs forward
    from the state at that cut-off (see ``warning.simulate.oracle``). The
    tables stay the same as without it.

    With ``as_feeds``, the tables are also written as department feeds under
    ``feeds/`` (see ``warning.simulate.feeds``); ``feed_part`` makes them one
    part of a larger delivery (``warning.simulate.feeds.write_feeds``).
    """
    began = time.perf_counter()
    if households < 1:
        raise ValueError(f"households must be at least 1, got {households}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', got {file_format!r}")
    start_year, start_month_of_year = _parse_start(start)
    out_dir = Path(out_dir)
    (out_dir / TRUTH_FOLDER).mkdir(parents=True, exist_ok=True)
    logger.info(
        "Simulating %d households over %d months from %s (seed %d) into %s",
        households,
        months,
        start,
        seed,
        out_dir,
    )

    oracle = None
    if oracle_cutoffs:
        # Imported here because the oracle module imports this one.
        from warning.simulate.oracle import RiskOracle

        oracle = RiskOracle(oracle_cutoffs, start, months, seed, oracle_replicas, horizon_months)

    params = Parameters.load(parameters_path)
    run = _prepare(params, households, months, start_year, start_month_of_year, seed)
    writers = {
        name: TableWriter(out_dir, name, table_schema(TABLES[name]), file_format)
        for name in ("income", "medical_claims", "assistance", "events", "insurance")
    }
    per_person = _run_months(run, writers, months, start_month_of_year, oracle)
    rows = {name: writer.close() for name, writer in writers.items()}
    rows.update(_write_start_and_spell_tables(out_dir, file_format, run))
    DatasetInfo(
        name="simulated",
        period="month",
        description="Households simulated month by month with seeded shocks. The true causes of "
        "falls below the line are under truth/.",
        extra={
            "seed": seed,
            "households": households,
            "months": months,
            "start": start,
            "generator": "warning.simulate",
        },
    ).write(out_dir)

    if as_feeds:
        from warning.simulate.feeds import write_feeds

        write_feeds(
            out_dir, run.population, start_year, start_month_of_year, seed, file_format, part=feed_part
        )
    causes = [str(name) for name in params.get("causes")]
    ids = run.population.household_ids
    falls = _write_truth(out_dir, "falls", file_format, run.tracker.falls, ids, run.labels, causes)
    hardship = _write_truth(
        out_dir, "hardship", file_format, run.tracker.hardship_onsets, ids, run.labels, causes
    )
    if oracle is not None:
        oracle.write(out_dir, file_format, ids)
    summary = SimulationSummary(
        out_dir=out_dir,
        households=households,
        months=months,
        start=start,
        seed=seed,
        rows={name: rows[name] for name in TABLES},
        falls_by_cause=_count_causes(falls, causes),
        hardship_by_cause=_count_causes(hardship, causes),
        households_with_falls=int(falls["household_id"].nunique()),
        below_line_last_month=_below_shares(per_person, run.lines[:, -1], run.population.urban),
        elapsed_seconds=time.perf_counter() - began,
    )
    logger.info(
        "Simulation done in %.1f s: %d falls in %d households, causes %s",
        summary.elapsed_seconds,
        len(falls),
        summary.households_with_falls,
        summary.falls_by_cause,
    )
    return summary


@dataclass
class _Run:
    """State shared by the monthly loop and the table writers."""

    params: Parameters
    years: list[int]
    lines_table: pd.DataFrame
    population: Population
    lines: np.ndarray
    allowance: np.ndarray
    simulation: Simulation
    registry: Registry
    tracker: TruthTracker
    labels: MonthLabels
    ids: pa.Array
    person_ids: pa.Array


def _prepare(
    params: Parameters, households: int, months: int, start_year: int, start_month_of_year: int, seed: int
) -> _Run:
    """Draw the population and its poor history, and set up lines, standards and trackers."""
    regions = load_regions(params)
    standards = Standards(params)
    years = list(range(start_year, start_year + (start_month_of_year + months - 1) // 12 + 1))
    lines_table = standards.poverty_lines(years)
    rng = np.random.default_rng(seed)

    region_codes = np.array([region.code for region in regions], dtype=object)
    rural_line_at_start = line_matrix(
        lines_table, region_codes, np.zeros(len(regions), dtype=bool), years[:1]
    )[:, 0]
    population = draw_population(params, regions, households, seed, start_year, rural_line_at_start, rng)
    lines = line_matrix(lines_table, population.region_codes, population.urban, years)
    standard_by_region = {
        (position, is_urban): [standards.allowance_standard(year, is_urban, region.city) for year in years]
        for position, region in enumerate(regions)
        for is_urban in (False, True)
    }
    allowance = np.array(
        [
            standard_by_region[(int(region), bool(urban))]
            for region, urban in zip(population.region, population.urban, strict=True)
        ]
    ).reshape(households, len(years))

    simulation = Simulation(
        params,
        population,
        len(regions),
        np.array([region.disaster_risk for region in regions]),
        allowance,
        start_month_of_year,
        rng,
    )
    registry = Registry(params, households)
    registry.add_history(
        rng,
        population.former_poor,
        population.urban,
        population.expected_income_per_person,
        lines[:, 0],
        allowance[:, 0],
        simulation.allowance_on,
        simulation.low_income_on,
    )
    tracker = TruthTracker(
        population.members,
        simulation.cause_count,
        simulation.cause["other"],
        params.probability("truth.min_cause_share"),
    )
    return _Run(
        params=params,
        years=years,
        lines_table=lines_table,
        population=population,
        lines=lines,
        allowance=allowance,
        simulation=simulation,
        registry=registry,
        tracker=tracker,
        labels=MonthLabels(start_year, start_month_of_year, -EARLIEST_MONTH_OFFSET, months),
        ids=pa.array(population.household_ids.tolist(), type=pa.string()),
        person_ids=pa.array(population.person_ids.tolist(), type=pa.string()),
    )


def _run_months(
    run: _Run,
    writers: dict[str, TableWriter],
    months: int,
    start_month_of_year: int,
    oracle: RiskOracle | None = None,
) -> np.ndarray | None:
    """Step every month, write its rows and track falls; return the last trailing income per person.

    At each of the ``oracle``'s cut-offs, the oracle runs its replicas from the
    state at the end of that month. Changes here must be repeated in
    ``RiskOracle._run_replica``.
    """
    population, tracker = run.population, run.tracker
    fallback = population.expected_income_per_person * population.members / 12.0
    per_person: np.ndarray | None = None
    for month in range(months):
        year_index = (start_month_of_year + month) // 12
        result = run.simulation.step(month, year_index, tracker.monthly_income_estimate(fallback))
        _write_month(
            writers,
            result,
            month,
            run.years[year_index],
            run.labels,
            run.ids,
            run.person_ids,
            population.person_household,
        )
        total = sum(result.income.values())
        line = run.lines[:, year_index]
        per_person = tracker.update(month, total, result.loss, result.spend, result.spend_shock, line)
        estimate = (
            per_person
            if per_person is not None
            else tracker.monthly_income_estimate(fallback) * 12.0 / population.members
        )
        run.registry.update(
            month,
            run.simulation.rng,
            estimate,
            line,
            run.allowance[:, year_index],
            run.simulation.labour_now(),
            run.simulation.allowance_on,
            run.simulation.low_income_on,
        )
        if oracle is not None and oracle.wants(month):
            oracle.record(run, month)
        if (month + 1) % LOG_EVERY_MONTHS == 0 or month + 1 == months:
            logger.info(
                "Simulated month %s (%d of %d): %d falls below the line so far",
                run.labels.label(month),
                month + 1,
                months,
                sum(len(part) for part in tracker.falls.households),
            )
    return per_person


def _write_start_and_spell_tables(out_dir: Path, file_format: str, run: _Run) -> dict[str, int]:
    """Write the households at the start, the registration and employment spells, and the lines."""
    return {
        "households": _write_households(out_dir, file_format, run.population),
        "registrations": _write_registrations(
            out_dir, file_format, run.registry, run.simulation, run.ids, run.labels
        ),
        "employment": _write_employment(
            out_dir, file_format, run.simulation, run.population, run.ids, run.labels
        ),
        "poverty_lines": _write_frame(out_dir, "poverty_lines", file_format, run.lines_table),
    }


def _count_causes(frame: pd.DataFrame, causes: list[str]) -> dict[str, int]:
    return frame["cause"].value_counts().reindex(causes, fill_value=0).astype(int).to_dict()


def _below_shares(per_person: np.ndarray | None, line: np.ndarray, urban: np.ndarray) -> dict[str, float]:
    if per_person is None:
        return {}
    below = per_person < line
    return {
        "all": float(below.mean()),
        "urban": float(below[urban].mean()) if urban.any() else 0.0,
        "rural": float(below[~urban].mean()) if (~urban).any() else 0.0,
    }


def _household_rows(values: dict[str, np.ndarray], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Return household rows and category codes of every nonzero value, category by category."""
    households, codes = [], []
    for code, name in enumerate(names):
        rows = np.flatnonzero(values[name] != 0)
        households.append(rows)
        codes.append(np.full(rows.size, code, dtype=np.int64))
    return np.concatenate(households), np.concatenate(codes)


def _write_month(
    writers: dict[str, TableWriter],
    result: MonthResult,
    month: int,
    year: int,
    labels: MonthLabels,
    ids: pa.Array,
    person_ids: pa.Array,
    person_household: np.ndarray,
) -> None:
    def month_column(count: int) -> pa.Array:
        return labels.take(np.full(count, month, dtype=np.int64))

    rows, codes = _household_rows(result.income, INCOME_SOURCES)
    amounts = np.stack([result.income[name] for name in INCOME_SOURCES])[codes, rows]
    writers["income"].append(
        {
            "household_id": lookup(ids, rows),
            "month": month_column(rows.size),
            "source": lookup(_categories(INCOME_SOURCES), codes),
            "amount": amounts,
        }
    )

    totals = {name: claim[0] for name, claim in result.claims.items()}
    rows, codes = _household_rows(totals, CLAIM_CATEGORIES)
    claims = np.stack([np.stack(result.claims[name]) for name in CLAIM_CATEGORIES])
    writers["medical_claims"].append(
        {
            "household_id": lookup(ids, rows),
            "month": month_column(rows.size),
            "category": lookup(_categories(CLAIM_CATEGORIES), codes),
            "total_cost": claims[codes, 0, rows],
            "reimbursed": claims[codes, 1, rows],
            "out_of_pocket": claims[codes, 2, rows],
        }
    )

    rows, codes = _household_rows(result.assistance, ASSISTANCE_PROGRAMMES)
    amounts = np.stack([result.assistance[name] for name in ASSISTANCE_PROGRAMMES])[codes, rows]
    writers["assistance"].append(
        {
            "household_id": lookup(ids, rows),
            "month": month_column(rows.size),
            "programme": lookup(_categories(ASSISTANCE_PROGRAMMES), codes),
            "amount": amounts,
        }
    )

    rows, codes = _household_rows(result.event_count, EVENT_KINDS)
    losses = np.stack([result.event_loss[name] for name in EVENT_KINDS])[codes, rows]
    writers["events"].append(
        {
            "household_id": lookup(ids, rows),
            "month": month_column(rows.size),
            "kind": lookup(_categories(EVENT_KINDS), codes),
            "loss_amount": np.rint(losses),
        }
    )

    if result.insurance is not None:
        persons, schemes, enrolled = result.insurance
        writers["insurance"].append(
            {
                "person_id": lookup(person_ids, persons),
                "household_id": lookup(ids, person_household[persons]),
                "year": np.full(persons.size, year, dtype=np.int64),
                "scheme": lookup(_categories(INSURANCE_SCHEMES), schemes),
                "enrolled": enrolled,
            }
        )


def _write_frame(out_dir: Path, name: str, file_format: str, frame: pd.DataFrame) -> int:
    writer = TableWriter(out_dir, name, table_schema(TABLES[name]), file_format)  # type: ignore[arg-type]
    writer.append(
        {field.name: pa.Array.from_pandas(frame[field.name], type=field.type) for field in writer.schema}
    )
    return writer.close()


def _write_households(out_dir: Path, file_format: str, population: Population) -> int:
    # NOTE: the table describes households in the start month. Later deaths,
    # disabilities and school leavers show only in events and employment, so
    # per-person income keeps the starting member count.
    counts = population.counts_at_start()
    frame = pd.DataFrame(
        {
            "household_id": population.household_ids,
            "region_code": population.region_codes,
            "township_code": population.township_codes,
            "urban_rural": np.where(population.urban, "urban", "rural"),
            "members": population.members,
            **counts,
        }
    )
    return _write_frame(out_dir, "households", file_format, frame[TABLES["households"].column_names])


def _write_registrations(
    out_dir: Path,
    file_format: str,
    registry: Registry,
    simulation: Simulation,
    ids: pa.Array,
    labels: MonthLabels,
) -> int:
    households, statuses, starts, ends = registry.spells(simulation.allowance_on, simulation.low_income_on)
    order = np.lexsort((starts, statuses, households))
    writer = TableWriter(out_dir, "registrations", table_schema(TABLES["registrations"]), file_format)  # type: ignore[arg-type]
    writer.append(
        {
            "household_id": lookup(ids, households[order]),
            "status": lookup(_categories(REGISTRATION_STATUSES), statuses[order]),
            "start_month": labels.take(starts[order]),
            "end_month": labels.take(ends[order]),
        }
    )
    return writer.close()


def _write_employment(
    out_dir: Path,
    file_format: str,
    simulation: Simulation,
    population: Population,
    ids: pa.Array,
    labels: MonthLabels,
) -> int:
    persons, kinds, sectors, starts, ends = simulation.employment_spells(OPEN)
    order = np.lexsort((starts, persons))
    persons, kinds, sectors, starts, ends = (
        column[order] for column in (persons, kinds, sectors, starts, ends)
    )
    writer = TableWriter(out_dir, "employment", table_schema(TABLES["employment"]), file_format)  # type: ignore[arg-type]
    writer.append(
        {
            "person_id": lookup(pa.array(population.person_ids.tolist(), type=pa.string()), persons),
            "household_id": lookup(ids, population.person_household[persons]),
            "kind": lookup(_categories(EMPLOYMENT_KINDS), kinds),
            "sector": lookup(_categories(population.sector_names), sectors),
            "start_month": labels.take(starts),
            "end_month": labels.take(ends),
        }
    )
    return writer.close()


def _write_truth(
    out_dir: Path,
    name: str,
    file_format: str,
    records: TruthRecords,
    household_ids: np.ndarray,
    labels: MonthLabels,
    causes: list[str],
) -> pd.DataFrame:
    households, months, codes = records.arrays()
    frame = pd.DataFrame(
        {
            "household_id": household_ids[households].astype(str),
            "month": labels.take(months).to_pylist(),
            "cause": np.array(causes, dtype=object)[codes].astype(str),
        },
        columns=list(TRUTH_COLUMNS),
    )
    path = out_dir / TRUTH_FOLDER / f"{name}.{file_format}"
    if file_format == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    logger.info("Wrote %d true causes of %s to %s", len(frame), name, path)
    return frame


def read_truth(out_dir: Path, name: Literal["falls", "hardship"] = "falls") -> pd.DataFrame:
    """Read ``truth/falls`` or ``truth/hardship`` of a simulated dataset, Parquet or CSV."""
    folder = Path(out_dir) / TRUTH_FOLDER
    for suffix, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
        path = folder / f"{name}{suffix}"
        if path.exists():
            return reader(path, dtype=str) if suffix == ".csv" else reader(path)
    raise FileNotFoundError(
        f"truth file {name}.parquet or {name}.csv not found in {folder}: run the simulator first"
    )
