"""Small random stores in the contract's typed shape, for tests of later stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from warning.contract import DatasetInfo
from warning.store import Store


def _months(start: str, count: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=count, freq="MS").astype("datetime64[ms]")


def make_store(households: int = 60, months: int = 36, seed: int = 0, start: str = "2021-01") -> Store:
    """Return a typed store with every contract table filled with random but plausible rows.

    Income falls for a third of the households in the second half, so both
    targets get positive labels.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"h{index:05d}" for index in range(households)])
    members = rng.integers(1, 6, households)
    labour = np.minimum(rng.integers(0, 4, households), members)
    urban = rng.random(households) < 0.4
    region = np.where(rng.random(households) < 0.5, "520121", "620102")
    household_table = pd.DataFrame(
        {
            "household_id": pd.array(ids, dtype="string"),
            "region_code": pd.array(region, dtype="string"),
            "township_code": pd.array([code + "001" for code in region], dtype="string"),
            "urban_rural": pd.array(np.where(urban, "urban", "rural"), dtype="string"),
            "members": members.astype("int64"),
            "labour_capable": labour.astype("int64"),
            "disabled": (rng.random(households) < 0.1).astype("int64"),
            "elderly": np.minimum(rng.integers(0, 2, households), members).astype("int64"),
            "children_in_school": rng.integers(0, 3, households).astype("int64"),
        }
    )

    month_index = _months(start, months)
    base = rng.lognormal(np.log(900), 0.6, households) * members
    falls = rng.random(households) < 0.33
    fall_month = rng.integers(months // 2, months, households)
    income_rows = []
    for position, month in enumerate(month_index):
        factor = np.where(falls & (position >= fall_month), 0.2, 1.0)
        wage = base * 0.6 * factor * rng.uniform(0.8, 1.2, households)
        farming = base * 0.4 * rng.uniform(0.5, 1.5, households)
        for source, amount in (("wage", wage), ("farming", farming)):
            income_rows.append(pd.DataFrame({"household_id": ids, "month": month, "source": source, "amount": amount}))
    income = pd.concat(income_rows, ignore_index=True)

    def monthly_events(kind_column: str, kinds: list[str], probability: float, value_columns: dict) -> pd.DataFrame:
        mask = rng.random((households, months)) < probability
        rows, columns = np.nonzero(mask)
        frame = pd.DataFrame(
            {
                "household_id": ids[rows],
                "month": month_index[columns],
                kind_column: rng.choice(kinds, len(rows)),
            }
        )
        for name, maker in value_columns.items():
            frame[name] = maker(len(rows))
        return frame.drop_duplicates(["household_id", "month", kind_column])

    claims = monthly_events("category", ["inpatient", "outpatient"], 0.03, {"total_cost": lambda n: rng.uniform(100, 20000, n)})
    claims["reimbursed"] = claims["total_cost"] * 0.6
    claims["out_of_pocket"] = claims["total_cost"] - claims["reimbursed"]
    events = monthly_events(
        "kind", ["illness", "job_loss", "disaster", "schooling"], 0.02, {"loss_amount": lambda n: rng.uniform(0, 5000, n)}
    )
    assistance = monthly_events("programme", ["allowance", "temporary_assistance"], 0.05, {"amount": lambda n: rng.uniform(100, 800, n)})

    persons = pd.DataFrame({"household_id": np.repeat(ids, members)})
    persons["person_id"] = persons["household_id"] + "-" + persons.groupby("household_id").cumcount().astype(str)
    employment = persons.assign(
        kind=rng.choice(["local_wage", "migrant", "farming", "unemployed"], len(persons)),
        sector="agriculture",
        start_month=month_index[rng.integers(0, months, len(persons))],
    )
    employment["end_month"] = employment["start_month"] + pd.DateOffset(months=6)
    employment.loc[rng.random(len(employment)) < 0.5, "end_month"] = pd.NaT
    insurance = pd.concat(
        [
            persons.assign(year=year, scheme=scheme, enrolled=rng.random(len(persons)) < 0.9)
            for year in sorted({stamp.year for stamp in month_index})
            for scheme in ("basic_medical", "critical_illness")
        ],
        ignore_index=True,
    )
    registered = rng.random(households) < 0.4
    registrations = pd.DataFrame(
        {
            "household_id": ids[registered],
            "status": "exited",
            "start_month": pd.Timestamp("2019-01-01"),
            "end_month": pd.NaT,
        }
    )
    years = sorted({stamp.year for stamp in month_index})
    lines = pd.DataFrame(
        [
            {"year": year, "region_prefix": prefix, "urban_rural": kind, "line": line + 300 * (year - years[0])}
            for year in years
            for prefix, kind, line in (("", "rural", 6000.0), ("52", "urban", 8000.0), ("62", "urban", 7500.0))
        ]
    )

    tables = {
        "households": household_table,
        "income": income,
        "medical_claims": claims,
        "events": events,
        "assistance": assistance,
        "employment": employment,
        "insurance": insurance[["person_id", "household_id", "year", "scheme", "enrolled"]],
        "registrations": registrations,
        "poverty_lines": lines,
    }
    for frame in tables.values():
        for column in frame.columns:
            if column.endswith("month") or column == "month":
                frame[column] = frame[column].astype("datetime64[ms]")
    return Store(folder=Path("memory"), info=DatasetInfo(name="factory"), tables=tables)
