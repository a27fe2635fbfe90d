"""The data contract: the tables a dataset folder contains and their columns.

A dataset is a folder with one file per table, ``<table>.csv`` or
``<table>.parquet``, plus an optional ``dataset.yaml`` (see ``DatasetInfo``).
Households are joined across tables by ``household_id``, a hashed identity,
never a raw personal id. Months are written ``YYYY-MM`` in CSV files; the typed
store keeps them as the first day of the month.

This module only describes the tables. Validation lives in ``warning.ingest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

ColumnKind = Literal["id", "month", "year", "text", "category", "int", "float", "bool", "region"]

URBAN_RURAL = ("urban", "rural")
REGISTRATION_STATUSES = ("poor", "exited", "low_income", "allowance")
INCOME_SOURCES = ("wage", "business", "farming", "property", "transfers", "pensions")
EMPLOYMENT_KINDS = (
    "local_wage",
    "migrant",
    "self_employed",
    "farming",
    "unemployed",
    "out_of_labour_force",
)
INSURANCE_SCHEMES = ("basic_medical", "critical_illness", "pension", "unemployment", "work_injury")
CLAIM_CATEGORIES = ("inpatient", "outpatient", "chronic")
ASSISTANCE_PROGRAMMES = (
    "allowance",
    "temporary_assistance",
    "medical_assistance",
    "education_subsidy",
    "disaster_relief",
    "employment_support",
)
# Plausibility bounds. Ingest quarantines values outside them, and the API rejects them.
EARLIEST_YEAR = 1900
# A fixed bound, not "next year": lines are published ahead, and a bound that
# moved with the clock would change the published API document every January.
# Months, which record what happened, may not lie in the future (checked apart).
LATEST_YEAR = 2100
MAX_HOUSEHOLD_MEMBERS = 100
MAX_AMOUNT = 1e9  # yuan per row, in either direction
MAX_POVERTY_LINE = 1e7  # yuan per person per year

EVENT_KINDS = (
    "illness",
    "disability",
    "disaster",
    "accident",
    "business_failure",
    "job_loss",
    "death",
    "schooling",
)


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    ``min_value`` and ``max_value`` are inclusive bounds of a numeric or year column.
    Months have fixed bounds instead: from ``EARLIEST_YEAR``-01 to the current month.
    """

    name: str
    kind: ColumnKind
    nullable: bool = False
    categories: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Table:
    """One contract table: its grain, columns and the columns that make a row unique."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = True

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}")


HOUSEHOLD_ID = Column("household_id", "id", description="hashed household identity")
PERSON_ID = Column("person_id", "id", description="hashed person identity")
MONTH = Column("month", "month", description="calendar month, YYYY-MM")

TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        Table(
            "households",
            "household",
            (
                HOUSEHOLD_ID,
                Column("region_code", "region", description="6-digit county-level division code"),
                Column(
                    "township_code",
                    "text",
                    nullable=True,
                    description="9-digit township code starting with the region code",
                ),
                Column("urban_rural", "category", categories=URBAN_RURAL),
                Column("members", "int", min_value=1, max_value=MAX_HOUSEHOLD_MEMBERS),
                Column(
                    "labour_capable",
                    "int",
                    min_value=0,
                    max_value=MAX_HOUSEHOLD_MEMBERS,
                    description="members able to work",
                ),
                Column("disabled", "int", min_value=0, max_value=MAX_HOUSEHOLD_MEMBERS),
                Column(
                    "elderly",
                    "int",
                    min_value=0,
                    max_value=MAX_HOUSEHOLD_MEMBERS,
                    description="members aged 65 or over",
                ),
                Column("children_in_school", "int", min_value=0, max_value=MAX_HOUSEHOLD_MEMBERS),
            ),
            key=("household_id",),
        ),
        Table(
            "registrations",
            "status spell",
            (
                HOUSEHOLD_ID,
                Column("status", "category", categories=REGISTRATION_STATUSES),
                Column("start_month", "month"),
                Column("end_month", "month", nullable=True, description="empty while the spell is open"),
            ),
            key=("household_id", "status", "start_month"),
            required=False,
        ),
        Table(
            "income",
            "household x month x source",
            (
                HOUSEHOLD_ID,
                MONTH,
                Column("source", "category", categories=INCOME_SOURCES),
                Column(
                    "amount",
                    "float",
                    min_value=-MAX_AMOUNT,
                    max_value=MAX_AMOUNT,
                    description="net yuan in the month; business and farming may be negative",
                ),
            ),
            key=("household_id", "month", "source"),
        ),
        Table(
            "employment",
            "person spell",
            (
                PERSON_ID,
                HOUSEHOLD_ID,
                Column("kind", "category", categories=EMPLOYMENT_KINDS),
                Column("sector", "text", nullable=True),
                Column("start_month", "month"),
                Column("end_month", "month", nullable=True, description="empty while the spell is open"),
            ),
            key=("person_id", "start_month", "kind"),
            required=False,
        ),
        Table(
            "insurance",
            "person x year x scheme",
            (
                PERSON_ID,
                HOUSEHOLD_ID,
                Column("year", "year", min_value=EARLIEST_YEAR, max_value=LATEST_YEAR),
                Column("scheme", "category", categories=INSURANCE_SCHEMES),
                Column("enrolled", "bool"),
            ),
            key=("person_id", "year", "scheme"),
            required=False,
        ),
        Table(
            "medical_claims",
            "household x month x category",
            (
                HOUSEHOLD_ID,
                MONTH,
                Column("category", "category", categories=CLAIM_CATEGORIES),
                Column("total_cost", "float", min_value=0, max_value=MAX_AMOUNT),
                Column("reimbursed", "float", min_value=0, max_value=MAX_AMOUNT),
                Column("out_of_pocket", "float", min_value=0, max_value=MAX_AMOUNT),
            ),
            key=("household_id", "month", "category"),
            required=False,
        ),
        Table(
            "assistance",
            "household x month x programme",
            (
                HOUSEHOLD_ID,
                MONTH,
                Column("programme", "category", categories=ASSISTANCE_PROGRAMMES),
                Column("amount", "float", min_value=0, max_value=MAX_AMOUNT),
            ),
            key=("household_id", "month", "programme"),
            required=False,
        ),
        Table(
            "events",
            "household x month x kind",
            (
                HOUSEHOLD_ID,
                MONTH,
                Column("kind", "category", categories=EVENT_KINDS),
                Column(
                    "loss_amount",
                    "float",
                    nullable=True,
                    min_value=0,
                    max_value=MAX_AMOUNT,
                    description="yuan lost or spent",
                ),
            ),
            key=("household_id", "month", "kind"),
            required=False,
        ),
        Table(
            "poverty_lines",
            "year x region prefix x urban/rural",
            (
                Column("year", "year", min_value=EARLIEST_YEAR, max_value=LATEST_YEAR),
                Column(
                    "region_prefix",
                    "text",
                    nullable=True,
                    description="leading digits of the region code; empty applies to every region",
                ),
                Column("urban_rural", "category", categories=URBAN_RURAL),
                Column(
                    "line",
                    "float",
                    min_value=0,
                    max_value=MAX_POVERTY_LINE,
                    description="per person per year, same currency as income",
                ),
            ),
            key=("year", "region_prefix", "urban_rural"),
        ),
    )
}

TABLE_ORDER = tuple(TABLES)


@dataclass
class DatasetInfo:
    """What ``dataset.yaml`` in a dataset folder states about the data.

    ``period`` is how often values are observed: ``month`` for monthly records,
    ``year`` for survey waves. With ``year``, months are floored to their year
    and a year with no income rows counts as not observed, not as zero income.
    """

    name: str = "dataset"
    period: Literal["month", "year"] = "month"
    currency: str = "yuan"
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def period_months(self) -> int:
        return 1 if self.period == "month" else 12

    @classmethod
    def read(cls, folder: Path) -> DatasetInfo:
        path = Path(folder) / "dataset.yaml"
        if not path.exists():
            return cls(name=Path(folder).name)
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must be a mapping of keys to values, got {type(raw).__name__}")
        known = {key: raw.pop(key) for key in ("name", "period", "currency", "description") if key in raw}
        for key in ("name", "currency", "description"):
            value = known.get(key)
            # YAML reads an unquoted name such as 2023 as a number, which is still a usable name.
            if isinstance(value, int | float) and not isinstance(value, bool):
                known[key] = str(value)
            elif key in known and not isinstance(value, str):
                raise ValueError(f"{path}: {key} must be text, got {value!r}")
        info = cls(**known, extra=raw)
        if info.period not in ("month", "year"):
            raise ValueError(f"{path}: period must be 'month' or 'year', got {info.period!r}")
        return info

    def write(self, folder: Path) -> None:
        body = {
            "name": self.name,
            "period": self.period,
            "currency": self.currency,
            "description": self.description,
            **self.extra,
        }
        (Path(folder) / "dataset.yaml").write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
