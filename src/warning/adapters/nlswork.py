"""Convert the NLS Young Women panel (``nlswork``) into a contract dataset folder.

The rules live in ``nlswork.yaml`` next to this module. The code applies them
and decides nothing on its own. Each woman becomes a one-person household with
a hashed id. Each wave with a wage, weekly hours and weeks worked becomes one
annual ``wage`` income row, and waves missing any of them get no income row, so
the pipeline counts them as not observed. Employment spells come from weeks
worked and weeks unemployed.

The survey has no poverty line and no registrations. The adapter writes a
relative line (a share of each year's median income) and derives ``poor``
registration spells from waves below it. Those spells are a stand-in built
from income, not records of any agency, so a relapse label on this dataset
means "below the relative line again after an earlier wave below it".
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from warning.contract import EMPLOYMENT_KINDS, INCOME_SOURCES, REGISTRATION_STATUSES, TABLES, DatasetInfo
from warning.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_MAPPING_PATH = Path(__file__).with_name("nlswork.yaml")
REAL_DATA_ENV = "POVWARN_REAL_DATA_DIR"
WRITTEN_TABLES = ("households", "income", "employment", "poverty_lines", "registrations")

UrbanRural = Literal["urban", "rural"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceMapping(_Strict):
    id_column: str
    year_column: str
    year_offset: int


class DatasetMapping(_Strict):
    name: str
    period: Literal["month", "year"]
    currency: str
    description: str
    notes: list[str] = Field(default_factory=list)


class IdentityMapping(_Strict):
    salt: str
    hex_length: int = Field(ge=8, le=64)


class CodedColumn(_Strict):
    """A source column whose integer codes map to output values, reduced to one value per person."""

    column: str
    codes: dict[int, str]
    aggregate: Literal["mode"]


class HouseholdMapping(_Strict):
    members: int = Field(ge=1)
    labour_capable: int = Field(ge=0)
    disabled: int = Field(ge=0)
    elderly: int = Field(ge=0)
    children_in_school: int = Field(ge=0)
    urban_rural: CodedColumn
    region_code: CodedColumn
    township_code: None = None

    @model_validator(mode="after")
    def _check_codes(self) -> HouseholdMapping:
        invalid = set(self.urban_rural.codes.values()) - {"urban", "rural"}
        if invalid:
            raise ValueError(f"households.urban_rural.codes maps to {sorted(invalid)}, expected urban or rural")
        bad_regions = [code for code in self.region_code.codes.values() if not (code.isdigit() and len(code) == 6)]
        if bad_regions:
            raise ValueError(f"households.region_code.codes must be 6-digit strings, got {bad_regions}")
        return self


class WeeksMapping(_Strict):
    annualise: Literal["wave_quantile", "none"]
    quantile: float = Field(gt=0, le=1)
    weeks_per_year: float = Field(gt=0)


class IncomeMapping(_Strict):
    source: str
    month: int = Field(ge=1, le=12)
    log_hourly_wage: str
    hours_per_week: str
    weeks_worked: str
    decimals: int = Field(ge=0)

    @model_validator(mode="after")
    def _check_source(self) -> IncomeMapping:
        if self.source not in INCOME_SOURCES:
            raise ValueError(f"income.source {self.source!r} is not one of {INCOME_SOURCES}")
        return self


class WorkedSpell(_Strict):
    kind: str
    sector_column: str
    start_month: int = Field(ge=1, le=12)


class UnemployedSpell(_Strict):
    kind: str
    weeks_column: str
    end_month: int = Field(ge=1, le=12)


class OutOfLabourForceSpell(_Strict):
    kind: str
    enabled: bool


class EmploymentMapping(_Strict):
    weeks_per_month: float = Field(gt=0)
    worked: WorkedSpell
    unemployed: UnemployedSpell
    out_of_labour_force: OutOfLabourForceSpell

    @model_validator(mode="after")
    def _check_kinds(self) -> EmploymentMapping:
        for spell in (self.worked, self.unemployed, self.out_of_labour_force):
            if spell.kind not in EMPLOYMENT_KINDS:
                raise ValueError(f"employment kind {spell.kind!r} is not one of {EMPLOYMENT_KINDS}")
        return self


class PovertyLineMapping(_Strict):
    share_of_median: float = Field(gt=0)
    region_prefix: str
    urban_rural: list[UrbanRural] = Field(min_length=1)
    decimals: int = Field(ge=0)


class RegistrationMapping(_Strict):
    status: str
    start_month: int = Field(ge=1, le=12)
    end_month: int = Field(ge=1, le=12)

    @model_validator(mode="after")
    def _check_spell(self) -> RegistrationMapping:
        if self.status not in REGISTRATION_STATUSES:
            raise ValueError(f"registrations.status {self.status!r} is not one of {REGISTRATION_STATUSES}")
        if self.end_month < self.start_month:
            raise ValueError(f"registrations.end_month {self.end_month} is before start_month {self.start_month}")
        return self


class NlsworkMapping(_Strict):
    """The parsed ``nlswork.yaml``: every rule the adapter applies."""

    source: SourceMapping
    dataset: DatasetMapping
    identity: IdentityMapping
    households: HouseholdMapping
    weeks: WeeksMapping
    income: IncomeMapping
    employment: EmploymentMapping
    poverty_lines: PovertyLineMapping
    registrations: RegistrationMapping

    def numeric_columns(self) -> list[str]:
        """Return the source columns the rules read, id and year first."""
        columns = [
            self.source.id_column,
            self.source.year_column,
            self.households.urban_rural.column,
            self.households.region_code.column,
            self.income.log_hourly_wage,
            self.income.hours_per_week,
            self.income.weeks_worked,
            self.employment.worked.sector_column,
            self.employment.unemployed.weeks_column,
        ]
        return list(dict.fromkeys(columns))


@dataclass(frozen=True)
class AdapterSummary:
    """Counts from one conversion, for the CLI and the logs."""

    source: Path
    out_dir: Path
    persons: int
    person_waves: int
    waves: int
    years: tuple[int, ...]
    rows: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "out_dir": str(self.out_dir),
            "persons": self.persons,
            "person_waves": self.person_waves,
            "waves": self.waves,
            "years": list(self.years),
            "rows": dict(self.rows),
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }


def load_mapping(path: Path | None = None) -> NlsworkMapping:
    """Read and validate a mapping file, by default the ``nlswork.yaml`` shipped with this module."""
    path = Path(path) if path is not None else DEFAULT_MAPPING_PATH
    if not path.exists():
        raise FileNotFoundError(f"nlswork mapping file {path} not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return NlsworkMapping.model_validate(raw)
    except ValidationError as error:
        raise ValueError(f"invalid nlswork mapping file {path}: {error}") from error


def default_nlswork_path() -> Path | None:
    """Find ``nlswork.csv`` and return its path, or None when it is absent.

    With ``POVWARN_REAL_DATA_DIR`` set, only that folder is searched, as
    ``<dir>/nlswork/nlswork.csv`` then ``<dir>/nlswork.csv``. Otherwise the
    path is ``shared/data/real/nlswork/nlswork.csv`` in the folder that
    contains the repository.
    """
    override = os.environ.get(REAL_DATA_ENV)
    if override:
        candidates = [Path(override) / "nlswork" / "nlswork.csv", Path(override) / "nlswork.csv"]
    else:
        candidates = [PROJECT_ROOT.parent / "shared" / "data" / "real" / "nlswork" / "nlswork.csv"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    logger.info("nlswork.csv not found at %s", ", ".join(str(candidate) for candidate in candidates))
    return None


def convert_nlswork(csv_path: Path, out_dir: Path, mapping_path: Path | None = None) -> AdapterSummary:
    """Convert ``nlswork.csv`` into a contract dataset folder and return what was written.

    Writes ``households``, ``income``, ``employment``, ``poverty_lines`` and
    ``registrations`` as CSV with months as ``YYYY-MM``, plus ``dataset.yaml``
    with ``period: year``. Raises ValueError naming column, line and value on
    invalid input, and before writing anything if ``out_dir`` already contains
    contract tables this adapter does not write.
    """
    csv_path = Path(csv_path)
    out_dir = Path(out_dir)
    mapping = load_mapping(mapping_path)
    _check_out_dir(out_dir)
    logger.info("Converting %s into %s", csv_path, out_dir)

    waves = read_nlswork(csv_path, mapping)
    person_waves = len(waves)
    waves, households, dropped = build_households(waves, mapping)
    waves = add_annual_weeks(waves, mapping)
    income, income_skipped = build_income(waves, mapping)
    employment = build_employment(waves, mapping)
    lines = build_poverty_lines(income, mapping)
    registrations = build_registrations(income, households, lines, mapping)

    tables = {
        "households": households,
        "income": income,
        "employment": employment,
        "poverty_lines": lines,
        "registrations": registrations,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.loc[:, TABLES[name].column_names].to_csv(out_dir / f"{name}.csv", index=False)
    _dataset_info(csv_path, mapping).write(out_dir)

    years = tuple(sorted(int(year) for year in waves["survey_year"].unique()))
    summary = AdapterSummary(
        source=csv_path,
        out_dir=out_dir,
        persons=len(households),
        person_waves=person_waves,
        waves=len(years),
        years=years,
        rows={name: len(frame) for name, frame in tables.items()},
        skipped={**dropped, **income_skipped},
        notes=tuple(mapping.dataset.notes),
    )
    logger.info(
        "Wrote nlswork dataset to %s: %d persons, %d waves, rows %s, skipped %s",
        out_dir,
        summary.persons,
        summary.waves,
        summary.rows,
        summary.skipped,
    )
    return summary


def _check_out_dir(out_dir: Path) -> None:
    """Raise if ``out_dir`` contains contract tables that would mix with this dataset."""
    if not out_dir.exists():
        return
    foreign = []
    for name in TABLES:
        for suffix in (".csv", ".parquet"):
            path = out_dir / f"{name}{suffix}"
            written_here = name in WRITTEN_TABLES and suffix == ".csv"
            if path.exists() and not written_here:
                foreign.append(path.name)
    if foreign:
        raise ValueError(
            f"output folder {out_dir} already contains {sorted(foreign)}, which the nlswork adapter does not "
            "write and which would be read as part of this dataset. Use an empty folder or remove them."
        )


def _dataset_info(csv_path: Path, mapping: NlsworkMapping) -> DatasetInfo:
    checksum = hashlib.md5(csv_path.read_bytes()).hexdigest()
    return DatasetInfo(
        name=mapping.dataset.name,
        period=mapping.dataset.period,
        currency=mapping.dataset.currency,
        description=mapping.dataset.description,
        extra={"source_file": csv_path.name, "source_md5": checksum, "notes": list(mapping.dataset.notes)},
    )


def _invalid(csv_path: Path, column: str, index: int, value: object, expected: str) -> ValueError:
    # The header is line 1 and the frame keeps the default RangeIndex, so row i is on line i + 2.
    line = index + 2
    return ValueError(f"{csv_path.name}: column {column!r}, line {line}: invalid value {value!r}. Expected {expected}.")


def read_nlswork(csv_path: Path, mapping: NlsworkMapping) -> pd.DataFrame:
    """Read the CSV, check the columns the mapping uses and add ``person_id`` and ``survey_year``.

    Raises ValueError naming the column, line and value of the first invalid
    entry, and on a person interviewed twice in one year.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"nlswork file {csv_path} not found")
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    needed = mapping.numeric_columns()
    missing = [column for column in needed if column not in raw.columns]
    if missing:
        raise ValueError(f"{csv_path.name} lacks columns {missing}, which the nlswork mapping reads")

    frame = pd.DataFrame(index=raw.index)
    for column in needed:
        text = raw[column].str.strip()
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        unparsed = values.isna() & (text != "")
        if unparsed.any():
            index = int(unparsed.idxmax())
            raise _invalid(csv_path, column, index, raw.at[index, column], "a number or an empty cell")
        frame[column] = values.astype("float64")

    _check_values(frame, raw, csv_path, mapping)
    id_column = mapping.source.id_column
    year_column = mapping.source.year_column
    frame[id_column] = frame[id_column].astype("int64")
    frame["survey_year"] = frame[year_column].astype("int64") + mapping.source.year_offset
    for coded in (mapping.households.urban_rural, mapping.households.region_code):
        frame[coded.column] = frame[coded.column].astype("Int64")

    duplicated = frame.duplicated([id_column, "survey_year"])
    if duplicated.any():
        index = int(duplicated.idxmax())
        raise _invalid(csv_path, year_column, index, raw.at[index, year_column], f"one row per {id_column} and year")

    frame["person_id"] = hash_ids(frame[id_column], mapping.identity)
    logger.info("Read %d rows for %d persons from %s", len(frame), frame[id_column].nunique(), csv_path)
    return frame


def _check_values(frame: pd.DataFrame, raw: pd.DataFrame, csv_path: Path, mapping: NlsworkMapping) -> None:
    """Raise on the first value outside its range, quoting the text of the CSV cell."""

    def first_bad(column: str, bad: pd.Series, expected: str) -> None:
        if bad.any():
            index = int(bad.idxmax())
            raise _invalid(csv_path, column, index, raw.at[index, column], expected)

    for column in (mapping.source.id_column, mapping.source.year_column):
        values = frame[column]
        first_bad(column, values.isna(), "a value in every row")
        first_bad(column, values != values.round(), "a whole number")
    year = frame[mapping.source.year_column]
    first_bad(mapping.source.year_column, (year < 0) | (year > 99), "a two-digit year from 0 to 99")

    non_negative = (
        mapping.income.hours_per_week,
        mapping.income.weeks_worked,
        mapping.employment.unemployed.weeks_column,
    )
    for column in non_negative:
        first_bad(column, frame[column] < 0, "a number >= 0 or an empty cell")

    for coded in (mapping.households.urban_rural, mapping.households.region_code):
        values = frame[coded.column]
        allowed = sorted(coded.codes)
        first_bad(coded.column, values.notna() & ~values.isin(allowed), f"one of {allowed} or an empty cell")


def hash_ids(ids: pd.Series, identity: IdentityMapping) -> pd.Series:
    """Return the salted sha256 of each id, cut to ``identity.hex_length`` hex characters."""
    hashed = {
        value: hashlib.sha256(f"{identity.salt}{value}".encode()).hexdigest()[: identity.hex_length]
        for value in ids.unique()
    }
    if len(set(hashed.values())) != len(hashed):
        raise ValueError(f"hashed ids collide at hex_length {identity.hex_length}. Increase identity.hex_length.")
    return ids.map(hashed).astype("string")


def _person_mode(waves: pd.DataFrame, coded: CodedColumn) -> pd.Series:
    """Return each person's most frequent code mapped to its output value, ties to the earliest wave."""
    known = waves.loc[waves[coded.column].notna(), ["person_id", "survey_year", coded.column]]
    counts = (
        known.groupby(["person_id", coded.column])
        .agg(waves=("survey_year", "size"), first_year=("survey_year", "min"))
        .reset_index()
        .sort_values(["person_id", "waves", "first_year"], ascending=[True, False, True])
        .drop_duplicates("person_id")
    )
    codes = {int(code): value for code, value in coded.codes.items()}
    return counts.set_index("person_id")[coded.column].astype("int64").map(codes)


def build_households(
    waves: pd.DataFrame, mapping: NlsworkMapping
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Build one household row per person.

    Persons without a code for urban/rural or region in any wave are dropped
    from every table, because those contract columns cannot be empty. Returns
    the remaining waves, the households and the dropped counts by reason.
    """
    rules = mapping.households
    urban_rural = _person_mode(waves, rules.urban_rural)
    region = _person_mode(waves, rules.region_code)
    persons = pd.Index(waves["person_id"].unique(), name="person_id")

    dropped: dict[str, int] = {}
    keep = pd.Series(True, index=persons)
    for coded, chosen in ((rules.urban_rural, urban_rural), (rules.region_code, region)):
        lacking = ~persons.isin(chosen.index)
        if lacking.any():
            dropped[f"persons dropped: {coded.column} missing in every wave"] = int(lacking.sum())
            keep &= ~lacking
    kept_persons = persons[keep.to_numpy()]
    if dropped:
        logger.warning("Dropped persons without household codes: %s", dropped)

    households = pd.DataFrame(
        {
            "household_id": pd.array(kept_persons, dtype="string"),
            "region_code": pd.array(region.reindex(kept_persons), dtype="string"),
            "township_code": pd.array([pd.NA] * len(kept_persons), dtype="string"),
            "urban_rural": pd.array(urban_rural.reindex(kept_persons), dtype="string"),
            "members": rules.members,
            "labour_capable": rules.labour_capable,
            "disabled": rules.disabled,
            "elderly": rules.elderly,
            "children_in_school": rules.children_in_school,
        }
    )
    remaining = waves.loc[waves["person_id"].isin(kept_persons)].copy()
    return remaining, households, dropped


def add_annual_weeks(waves: pd.DataFrame, mapping: NlsworkMapping) -> pd.DataFrame:
    """Add ``weeks_worked_year`` and ``weeks_unemployed_year``, rescaled to one year by the ``weeks`` rules."""
    rules = mapping.weeks
    worked = waves[mapping.income.weeks_worked]
    unemployed = waves[mapping.employment.unemployed.weeks_column]
    waves = waves.copy()
    if rules.annualise == "none":
        waves["weeks_worked_year"] = worked
        waves["weeks_unemployed_year"] = unemployed
        return waves

    # Weeks count since the previous interview, so a wave's reference period is
    # what a worker employed all along reports, estimated by a high quantile.
    reference = worked.groupby(waves["survey_year"]).quantile(rules.quantile).clip(lower=rules.weeks_per_year)
    reference = reference.fillna(rules.weeks_per_year)
    logger.info("Reference weeks per wave: %s", {int(year): float(weeks) for year, weeks in reference.items()})
    scale = rules.weeks_per_year / waves["survey_year"].map(reference)
    waves["weeks_worked_year"] = (worked * scale).clip(upper=rules.weeks_per_year)
    waves["weeks_unemployed_year"] = (unemployed * scale).clip(upper=rules.weeks_per_year)
    return waves


def _months(years: pd.Series, months: pd.Series | int) -> pd.Series:
    if isinstance(months, int):
        months = pd.Series(months, index=years.index)
    return years.astype("int64").astype(str) + "-" + months.astype("int64").astype(str).str.zfill(2)


def build_income(waves: pd.DataFrame, mapping: NlsworkMapping) -> tuple[pd.DataFrame, dict[str, int]]:
    """Build one income row per wave with every piece present, and count the waves skipped by missing piece."""
    rules = mapping.income
    pieces = [rules.log_hourly_wage, rules.hours_per_week, rules.weeks_worked]
    missing = waves[pieces].isna()
    complete = ~missing.any(axis=1)

    skipped: dict[str, int] = {}
    if not complete.all():
        reasons = missing.loc[~complete].apply(lambda row: ", ".join(row.index[row]), axis=1)
        for reason, count in reasons.value_counts().sort_index().items():
            skipped[f"waves without income row: {reason} missing"] = int(count)

    observed = waves.loc[complete]
    amount = np.exp(observed[rules.log_hourly_wage]) * observed[rules.hours_per_week] * observed["weeks_worked_year"]
    income = pd.DataFrame(
        {
            "household_id": observed["person_id"],
            "month": _months(observed["survey_year"], rules.month),
            "source": rules.source,
            "amount": amount.round(rules.decimals),
            "year": observed["survey_year"],
        }
    ).reset_index(drop=True)
    logger.info(
        "Built %d income rows (%d with zero earnings) and skipped %d waves",
        len(income),
        int((income["amount"] == 0).sum()),
        sum(skipped.values()),
    )
    return income, skipped


def _spell_months(weeks: pd.Series, weeks_per_month: float) -> pd.Series:
    # Half-up rounding, because numpy rounds halves to even.
    return np.floor(weeks / weeks_per_month + 0.5).clip(1, 12).astype("int64")


def _code_text(code: float) -> object:
    if pd.isna(code):
        return pd.NA
    if float(code).is_integer():
        return str(int(code))
    return str(code)


def _sector_text(codes: pd.Series) -> pd.Series:
    """Return industry codes as text, ``11`` rather than ``11.0``."""
    return codes.map(_code_text).astype("string")


def build_employment(waves: pd.DataFrame, mapping: NlsworkMapping) -> pd.DataFrame:
    """Build work, unemployment and out-of-labour-force spells inside each wave year."""
    rules = mapping.employment
    worked_weeks = waves["weeks_worked_year"]
    unemployed_weeks = waves["weeks_unemployed_year"]
    spells = []

    worked = waves.loc[worked_weeks > 0]
    length = _spell_months(worked["weeks_worked_year"], rules.weeks_per_month)
    start = pd.Series(rules.worked.start_month, index=worked.index)
    spells.append(
        pd.DataFrame(
            {
                "person_id": worked["person_id"],
                "kind": rules.worked.kind,
                "sector": _sector_text(worked[rules.worked.sector_column]),
                "start_month": _months(worked["survey_year"], start),
                "end_month": _months(worked["survey_year"], (start + length - 1).clip(upper=12)),
            }
        )
    )

    unemployed = waves.loc[unemployed_weeks > 0]
    length = _spell_months(unemployed["weeks_unemployed_year"], rules.weeks_per_month)
    end = pd.Series(rules.unemployed.end_month, index=unemployed.index)
    spells.append(
        pd.DataFrame(
            {
                "person_id": unemployed["person_id"],
                "kind": rules.unemployed.kind,
                "sector": pd.Series(pd.NA, index=unemployed.index, dtype="string"),
                "start_month": _months(unemployed["survey_year"], (end - length + 1).clip(lower=1)),
                "end_month": _months(unemployed["survey_year"], end),
            }
        )
    )

    if rules.out_of_labour_force.enabled:
        idle = waves.loc[(worked_weeks == 0) & (unemployed_weeks == 0)]
        spells.append(
            pd.DataFrame(
                {
                    "person_id": idle["person_id"],
                    "kind": rules.out_of_labour_force.kind,
                    "sector": pd.Series(pd.NA, index=idle.index, dtype="string"),
                    "start_month": _months(idle["survey_year"], 1),
                    "end_month": _months(idle["survey_year"], 12),
                }
            )
        )

    employment = pd.concat(spells, ignore_index=True)
    employment["household_id"] = employment["person_id"]
    employment = employment.sort_values(["person_id", "start_month", "kind"], ignore_index=True)
    logger.info("Built %d employment spells: %s", len(employment), employment["kind"].value_counts().to_dict())
    return employment


def build_poverty_lines(income: pd.DataFrame, mapping: NlsworkMapping) -> pd.DataFrame:
    """Build the relative line per year: the mapped share of the median income amount that year."""
    rules = mapping.poverty_lines
    median = income.groupby("year")["amount"].median()
    rows = [
        {
            "year": int(year),
            "region_prefix": rules.region_prefix,
            "urban_rural": urban_rural,
            "line": round(float(value) * rules.share_of_median, rules.decimals),
        }
        for year, value in median.items()
        for urban_rural in rules.urban_rural
    ]
    lines = pd.DataFrame(rows, columns=TABLES["poverty_lines"].column_names)
    logger.info("Built %d poverty line rows for %d years", len(lines), len(median))
    return lines


def build_registrations(
    income: pd.DataFrame, households: pd.DataFrame, lines: pd.DataFrame, mapping: NlsworkMapping
) -> pd.DataFrame:
    """Derive one registration spell for every wave whose income amount is below that year's line."""
    rules = mapping.registrations
    located = income.merge(households[["household_id", "urban_rural"]], on="household_id", how="left")
    compared = located.merge(lines[["year", "urban_rural", "line"]], on=["year", "urban_rural"], how="inner")
    below = compared.loc[compared["amount"] < compared["line"]]
    registrations = pd.DataFrame(
        {
            "household_id": below["household_id"],
            "status": rules.status,
            "start_month": _months(below["year"], rules.start_month),
            "end_month": _months(below["year"], rules.end_month),
        }
    ).sort_values(["household_id", "start_month"], ignore_index=True)
    logger.info(
        "Derived %d %s spells for %d households from the relative line",
        len(registrations),
        rules.status,
        registrations["household_id"].nunique(),
    )
    return registrations
