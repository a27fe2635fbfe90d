"""Write the simulator's tables as department feeds, with synthetic identity numbers.

Each export of the feed specifications (``warning.feeds.spec``) is written by
inverting its mapping: the contract rows it covers are selected by its
constants and codes, and every value goes back to the department's column,
code, date format and unit. Ingesting the feeds with ``warning.feeds`` gives
the same contract tables as the simulator writes, under hashed ids.

Identity numbers are synthetic but valid: the household's region code, a
birth date consistent with the member's age at the start month, a sequence
number unique within region and birth date, and the ISO 7064 MOD 11-2 check
character. Rows the simulator keeps per household name the head, except
schooling (a student), disability (a disabled member), and wages and
pensions, which are split in whole yuan among the members who earn them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from warning.contract import TABLES
from warning.feeds.identity import IdentityHasher, check_characters
from warning.feeds.spec import ExportSpec, load_specs
from warning.simulate.population import ROLE_LOCAL, ROLE_MIGRANT, Population

logger = logging.getLogger(__name__)

FEEDS_FOLDER = "feeds"
IDENTITIES_FILE = "identities"
# Exports whose rows name a particular member, by the member flag that picks them.
CHOSEN_MEMBER = {
    "education.students": "student",
    "education.subsidies": "student",
    "disabled_persons_federation.certificates": "disabled",
}
# Exports whose household amounts are split among the members who earn them.
SPLIT_AMONG = {"hrss.wages": "wage_earner", "hrss.pensions": "pensioner"}
# Income exports that cover only urban or only rural households.
URBAN_RURAL_SCOPE = {"civil_affairs.income_checks": "urban", "rural_revitalisation.household_income": "rural"}
# Relation-to-head codes of the members export, by position in the household.
HEAD_CODE, SPOUSE_CODE, CHILD_CODE = "01", "02", "03"
# Identity sequence numbers (within a region and birth date) that each part of a delivery may use.
SEQUENCES_PER_PART = 50


class Identities:
    """Synthetic identity numbers of the simulated persons, and each household's head."""

    def __init__(
        self, population: Population, start_year: int, start_month_of_year: int, seed: int, part: int | None = None
    ) -> None:
        rng = np.random.default_rng([seed, 11643])
        persons = population.person_count
        household = population.person_household
        start = start_year * 12 + start_month_of_year
        birth = start - population.age_months
        years, months = birth // 12, birth % 12 + 1
        days = rng.integers(1, 29, persons)
        regions = population.region_codes[household].astype(str)
        dates = pd.Series(years * 10000 + months * 100 + days).astype(str).str.zfill(8).to_numpy()
        # The sequence is unique within region and birth date; its parity stands for the sex.
        group = pd.Series(regions) + pd.Series(dates)
        order = group.groupby(group).cumcount().to_numpy()
        if part is not None:
            # Parts simulated separately get disjoint sequence ranges, so their numbers never collide.
            if order.max(initial=0) >= SEQUENCES_PER_PART:
                raise ValueError(
                    f"more than {SEQUENCES_PER_PART} simulated people share a region and birth date in "
                    "one part; simulate fewer households per part"
                )
            order = order + part * SEQUENCES_PER_PART
        if order.max(initial=0) >= 500:
            raise ValueError("too many simulated people share a region and birth date for 3-digit sequences")
        sequence = order * 2 + rng.integers(0, 2, persons)
        first_17 = (
            pd.Series(regions) + pd.Series(dates) + pd.Series(sequence).astype(str).str.zfill(3)
        ).to_numpy(dtype=str)
        self.numbers = np.char.add(first_17, check_characters(first_17))
        self.person_index = pd.Index(population.person_ids.astype(str))
        self.household_index = pd.Index(population.household_ids.astype(str))
        _, first = np.unique(household, return_index=True)
        self.head = first
        self.household = household
        self.slot = np.arange(persons) - first[household]
        self.flags = {
            "student": population.student,
            "disabled": population.disabled,
            "wage_earner": np.isin(population.role, (ROLE_LOCAL, ROLE_MIGRANT)),
            "pensioner": population.pension > 0,
        }

    def of_persons(self, person_ids: pd.Series) -> np.ndarray:
        return self.numbers[self.person_index.get_indexer(person_ids.astype(str))]

    def households(self, household_ids: pd.Series) -> np.ndarray:
        """Return the position of each household id in the population."""
        positions = self.household_index.get_indexer(household_ids.astype(str))
        if (positions < 0).any():
            raise ValueError("the simulated tables name households that the population lacks")
        return positions

    def chosen_member(self, households: np.ndarray, flag: str) -> np.ndarray:
        """Return, per household position, its first member with ``flag``, or the head."""
        flagged = np.flatnonzero(self.flags[flag])
        none = len(self.household)
        first = np.full(len(self.head), none)
        np.minimum.at(first, self.household[flagged], flagged)
        chosen = np.where(first < none, first, self.head)
        return chosen[households]

    def frame(self, population: Population) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "person_id": population.person_ids.astype(str),
                "household_id": population.household_ids[self.household].astype(str),
                "identity_number": self.numbers,
                "is_head": self.slot == 0,
            }
        )


def _split(
    rows: pd.DataFrame, households: np.ndarray, identities: Identities, flag: str, column: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Split each household amount in whole yuan among the flagged members (the head if none)."""
    eligible = np.flatnonzero(identities.flags[flag])
    count = np.bincount(identities.household[eligible], minlength=len(identities.head))
    order = eligible[np.argsort(identities.household[eligible], kind="stable")]
    offsets = np.concatenate([[0], np.cumsum(count)[:-1]])
    parts = np.maximum(count[households], 1)
    repeated = np.repeat(np.arange(len(rows)), parts)
    position = np.arange(len(repeated)) - np.repeat(np.cumsum(parts) - parts, parts)
    household = households[repeated]
    has_eligible = count[household] > 0
    member = np.where(
        has_eligible,
        order[np.minimum(offsets[household] + position, len(order) - 1)],
        identities.head[household],
    )
    amount = rows[column].to_numpy(dtype="float64")[repeated]
    share = np.floor(amount / parts[repeated])
    remainder = amount - share * parts[repeated]
    split = rows.iloc[repeated].reset_index(drop=True)
    split[column] = share + np.where(position == 0, remainder, 0.0)
    return split, member


def _number_text(values: pd.Series, scale: float) -> pa.Array:
    scaled = values.to_numpy(dtype="float64") / scale
    if scale < 1:
        scaled = np.rint(scaled)
    return pc.cast(pa.array(scaled, from_pandas=True), pa.string())


def _column_text(spec: ExportSpec, source: str, values: pd.Series, rng: np.random.Generator) -> pa.Array:
    """Write contract values back as the department's text for one source column."""
    column = spec.columns[source]
    if column.type in ("month", "date"):
        months = pd.to_datetime(values.astype("string"), format="%Y-%m")
        if column.type == "date":
            months = months + pd.to_timedelta(rng.integers(0, 28, len(values)), unit="D")
        text = months.dt.strftime(str(column.format))
        return pa.array(text.astype(object).where(months.notna(), None), type=pa.string())
    if column.type == "number":
        return _number_text(values, column.scale)
    if column.type in ("code", "flag"):
        inverse = {value: code for code, value in reversed(list(column.codes.items()))}
        return pa.array(values.map(inverse).astype(object).where(values.notna(), None), type=pa.string())
    return pa.array(values.astype("string").astype(object).where(values.notna(), None), type=pa.string())


def _select_rows(spec: ExportSpec, table: pd.DataFrame, urban: pd.Series | None) -> pd.DataFrame:
    rows = table
    for item in spec.mapping:
        if item.value is not None:
            rows = rows[rows[item.target] == item.value]
        elif item.source is not None and spec.columns[item.source].type == "code":
            rows = rows[rows[item.target].isin(list(spec.columns[item.source].codes.values()))]
    scope = URBAN_RURAL_SCOPE.get(spec.feed)
    if scope is not None and urban is not None:
        rows = rows[rows["household_id"].map(urban).eq(scope).to_numpy()]
    return rows.reset_index(drop=True)


def _export_table(
    spec: ExportSpec,
    table: pd.DataFrame,
    identities: Identities,
    urban: pd.Series | None,
    rng: np.random.Generator,
) -> pa.Table:
    rows = _select_rows(spec, table, urban)
    columns: dict[str, pa.Array] = {}
    link = spec.link
    person_link = next((item for item in spec.mapping if item.link == "person"), None)
    if person_link is not None:
        columns[str(person_link.source)] = pa.array(
            identities.of_persons(rows[person_link.target]), type=pa.string()
        )
    elif link is not None:
        households = identities.households(rows["household_id"])
        if spec.feed in SPLIT_AMONG:
            amount = next(item.target for item in spec.mapping if item.target == "amount")
            rows, members = _split(rows, households, identities, SPLIT_AMONG[spec.feed], amount)
        elif spec.feed in CHOSEN_MEMBER:
            members = identities.chosen_member(households, CHOSEN_MEMBER[spec.feed])
        else:
            members = identities.head[households]
        columns[str(link.source)] = pa.array(identities.numbers[members], type=pa.string())
    for item in spec.mapping:
        if item.source is None or item.source in columns:
            continue
        if item.link == "person":
            columns[item.source] = pa.array(identities.of_persons(rows[item.target]), type=pa.string())
        else:
            columns[item.source] = _column_text(spec, item.source, rows[item.target], rng)
    ordered = [name for name in spec.columns if name in columns]
    return pa.table({name: columns[name] for name in ordered})


def _members_table(identities: Identities) -> pa.Table:
    relation = np.where(
        identities.slot == 0, HEAD_CODE, np.where(identities.slot == 1, SPOUSE_CODE, CHILD_CODE)
    )
    return pa.table(
        {
            "身份证号": pa.array(identities.numbers, type=pa.string()),
            "户主身份证号": pa.array(
                identities.numbers[identities.head[identities.household]], type=pa.string()
            ),
            "与户主关系": pa.array(relation, type=pa.string()),
        }
    )


def _read_contract(folder: Path, name: str) -> pd.DataFrame:
    parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
    if parquet.is_file():
        return pd.read_parquet(parquet)
    return pd.read_csv(
        csv,
        dtype={
            column.name: "string"
            for column in TABLES[name].columns
            if column.kind in ("id", "text", "region", "category", "month")
        },
    )


def feed_household_ids(truth_dir: Path, hasher: IdentityHasher) -> pd.Series:
    """Return the household id that feed ingest gives each simulated household, indexed by the simulator's id.

    Feed ingest names a household by the keyed hash of its head's identity
    number, so truth files join a store built from the feeds through this map.
    """
    identities = pd.read_parquet(Path(truth_dir) / f"{IDENTITIES_FILE}.parquet")
    heads = identities[identities["is_head"]]
    hashed = hasher.hash_many("household", heads["identity_number"].astype(str))
    return pd.Series(hashed, index=pd.Index(heads["household_id"].astype(str)), dtype="string")


def _write(table: pa.Table, path: Path, file_format: str) -> None:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="zstd")
    else:
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def write_feeds(
    contract_dir: Path,
    population: Population,
    start_year: int,
    start_month_of_year: int,
    seed: int,
    file_format: Literal["parquet", "csv"] = "csv",
    specs: list[ExportSpec] | None = None,
    part: int | None = None,
) -> dict[str, int]:
    """Write every export of the feed specifications to ``contract_dir/feeds`` from the simulated tables.

    With ``part`` (0 to 9), the files are one part of a delivery too large to
    simulate at once: their names end in ``-partNN`` and their identity
    numbers use sequence numbers no other part uses, so the parts of several
    runs (with different seeds) can be delivered together. Also writes ``truth/identities`` (simulator person and household ids
    with their identity numbers), so that truth files can be joined to the
    hashed ids of a store built from the feeds. Returns rows written per feed.
    """
    contract_dir = Path(contract_dir)
    out = contract_dir / FEEDS_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    specs = specs if specs is not None else load_specs()
    identities = Identities(population, start_year, start_month_of_year, seed, part)
    suffix = "" if part is None else f"-part{part:02d}"
    rng = np.random.default_rng([seed, 7064])
    households = _read_contract(contract_dir, "households")
    urban = pd.Series(households["urban_rural"].to_numpy(), index=households["household_id"].astype(str))
    tables: dict[str, pd.DataFrame] = {}
    rows: dict[str, int] = {}
    for spec in specs:
        if spec.role == "members":
            table = _members_table(identities)
        else:
            name = str(spec.target)
            if name not in tables:
                tables[name] = _read_contract(contract_dir, name)
            table = _export_table(spec, tables[name], identities, urban, rng)
        _write(table, out / f"{spec.department}_{spec.name}{suffix}.{file_format}", file_format)
        rows[spec.feed] = table.num_rows
    identities.frame(population).to_parquet(
        contract_dir / "truth" / f"{IDENTITIES_FILE}.parquet", index=False
    )
    logger.info("Wrote %d feed files with %d rows to %s", len(rows), sum(rows.values()), out)
    return rows
