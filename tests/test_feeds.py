"""Department feeds: identity checks and hashing, region codes, the simulated end-to-end path,
incremental deliveries, lineage, and the bad-input corpus under tests/data/bad."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from warning.contract import TABLES
from warning.explain.truth import read_falls
from warning.feeds import (
    FeedIngestError,
    FeedReport,
    IdentityHasher,
    MissingSecretError,
    RegionCodes,
    check_character,
    ingest_feeds,
    load_specs,
    mask_identity,
    resolve_secret,
)
from warning.feeds.check import HEAD_NOT_IN_ROSTER, NOT_IN_ROSTER, DeliveryRun
from warning.feeds.export import ALREADY_DELIVERED, UNIT_ERROR, unit_errors
from warning.feeds.identity import (
    BAD_BIRTH_DATE,
    BAD_CHECK_DIGIT,
    FUTURE_BIRTH_DATE,
    NOT_DIGITS,
    WRONG_LENGTH,
    identity_problems,
)
from warning.feeds.lookup import lookup_identities, read_roster
from warning.feeds.parse import date_pattern
from warning.feeds.partitions import Layout, choose_partitions, partition_of
from warning.feeds.pipeline import _store_lock
from warning.feeds.report import FileReport
from warning.feeds.read import iter_feed_file, read_feed_file
from warning.feeds.regions import RegionTableError
from warning.feeds.spec import SpecError, load_department
from warning.feeds.state import ALREADY_STORED, CORRECTED, REPLACED_IN_DELIVERY
from warning.ingest import ingest
from warning.settings import Settings
from warning.simulate import simulate
from warning.simulate.deliveries import split_monthly_deliveries
from warning.simulate.feeds import feed_household_ids

SECRET = "test-only-secret-0123456789"
CORPUS = Path(__file__).parent / "data" / "bad"
AS_OF = "2024-06-30"
SPECS = load_specs()
REGIONS = RegionCodes.load()
# A valid number from the examples of the identity number standard.
STANDARD_EXAMPLE = "11010519491231002X"


def _ingest(source: Path, store: Path, **options: object) -> FeedReport:
    """Run ``ingest_feeds`` with the specifications and region codes read once for the module."""
    return ingest_feeds(source, store, specs=SPECS, regions=REGIONS, **options)  # type: ignore[arg-type]


def _store_hash(store: Path) -> str:
    """Return a hash of every Parquet table under the store (contract tables, feed state, history, lineage)."""
    digest = hashlib.sha256()
    for path in sorted(path for path in store.rglob("*.parquet") if path.is_file()):
        digest.update(str(path.relative_to(store)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _sorted(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame.sort_values(list(TABLES[name].key)).reset_index(drop=True)


def _quarantine(store: Path, delivery: int = 1) -> pd.DataFrame:
    path = store / "feeds" / "deliveries" / f"{delivery:04d}" / "quarantine.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else pd.DataFrame()


# Identity numbers.


def test_check_character_of_standard_example() -> None:
    assert check_character(STANDARD_EXAMPLE[:17]) == "X"


def test_identity_problems_name_each_reason() -> None:
    values = pd.Series(
        [
            STANDARD_EXAMPLE,
            STANDARD_EXAMPLE.lower(),
            STANDARD_EXAMPLE[:17],
            "11010519491231002Y",
            "110105194902300021",
            "110105203001010010",
            "110105194912310021",
            None,
        ],
        dtype="string",
    )
    reasons = identity_problems(values, latest_birth=pd.Timestamp("2024-06-30"))
    assert pd.isna(reasons[0])
    assert pd.isna(reasons[1])
    assert reasons[2] == WRONG_LENGTH
    assert reasons[3] == NOT_DIGITS
    assert reasons[4] == BAD_BIRTH_DATE
    assert reasons[5] == FUTURE_BIRTH_DATE
    assert reasons[6] == BAD_CHECK_DIGIT
    assert pd.isna(reasons[7])


def test_identity_problems_point_to_spreadsheet_damage() -> None:
    from warning.feeds.identity import SPREADSHEET_NUMBER, ZEROED_BY_SPREADSHEET

    # A spreadsheet shows 110105194912310021 as 1.10105E+17, or keeps 15 digits and zeroes the rest.
    values = pd.Series(["1.10105E+17", "1.10105194912310E17", "110105194912310000", "110105194912310021"], dtype="string")
    reasons = identity_problems(values, latest_birth=pd.Timestamp("2024-06-30"))

    assert reasons[0] == SPREADSHEET_NUMBER
    assert reasons[1] == SPREADSHEET_NUMBER
    assert reasons[2] == ZEROED_BY_SPREADSHEET
    assert reasons[3] == BAD_CHECK_DIGIT


def test_mask_identity_hides_birth_date_and_sequence() -> None:
    assert mask_identity("52012119800101123X") == "520121********123X"
    assert mask_identity("123") == "***"
    assert mask_identity(None) == ""


def test_hasher_is_keyed_and_separates_kinds() -> None:
    first = IdentityHasher(SECRET)
    second = IdentityHasher(SECRET + "-other")
    person = first.hash_one("person", STANDARD_EXAMPLE)
    assert person == first.hash_one("person", STANDARD_EXAMPLE.lower())
    assert person != second.hash_one("person", STANDARD_EXAMPLE)
    assert person != first.hash_one("household", STANDARD_EXAMPLE)
    assert STANDARD_EXAMPLE[6:14] not in person
    assert len(person) == 24


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POVWARN_ID_HASH_SECRET", raising=False)
    settings = Settings()
    with pytest.raises(MissingSecretError, match="POVWARN_ID_HASH_SECRET is not set"):
        resolve_secret(None, settings)
    with pytest.raises(MissingSecretError, match="too short"):
        resolve_secret("short", settings)
    monkeypatch.setenv("POVWARN_ID_HASH_SECRET", SECRET)
    assert resolve_secret(None, Settings()) == SECRET.encode()


def test_ingest_without_secret_fails_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POVWARN_ID_HASH_SECRET", raising=False)
    with pytest.raises(MissingSecretError, match="POVWARN_ID_HASH_SECRET"):
        _ingest(CORPUS / "valid", tmp_path / "store", settings=Settings())
    assert not (tmp_path / "store").exists()


# Region codes and specifications.


def test_region_codes_follow_successors() -> None:
    regions = RegionCodes.load()
    assert regions.current("411626") == "411603"
    assert regions.current("520321") == "520304"
    assert regions.current("520123") == "520123"
    with pytest.raises(KeyError, match="unknown region code '999999'"):
        regions.current("999999")
    resolution = regions.resolve(pd.Series(["411626", "999999", None], dtype="string"))
    assert resolution.current.tolist()[0] == "411603"
    assert resolution.unknown.tolist() == [False, True, False]
    assert resolution.retired.tolist() == [True, False, False]


def test_region_table_rejects_cycles_and_unknown_successors() -> None:
    columns = ["code", "name", "valid_from", "valid_to", "successor"]
    unknown = pd.DataFrame([["111111", "a", None, None, "222222"]], columns=columns)
    with pytest.raises(RegionTableError, match="successors \\['222222'\\]"):
        RegionCodes(unknown)
    cycle = pd.DataFrame(
        [["111111", "a", None, None, "222222"], ["222222", "b", None, None, "111111"]], columns=columns
    )
    with pytest.raises(RegionTableError, match="cycle"):
        RegionCodes(cycle)


def test_specs_cover_every_department_and_table() -> None:
    specs = load_specs()
    departments = {spec.department for spec in specs}
    assert departments == {
        "civil_affairs",
        "medical_insurance",
        "hrss",
        "education",
        "emergency_management",
        "disabled_persons_federation",
        "rural_revitalisation",
    }
    assert {spec.target for spec in specs if spec.target} == set(TABLES)


def test_spec_with_unknown_contract_column_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "department: test\nexports:\n  - name: wages\n    target: income\n    key: [id]\n"
        "    columns: {id: identity, month: {type: month, format: '%Y%m'}, amount: number}\n"
        "    mapping: {household_id: {from: id, link: household}, month: month, source: {value: wage},"
        " amount: amount, bonus: amount}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match="unknown ones \\['bonus'\\]"):
        load_department(path)


# The simulated end-to-end path.


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("simulated")
    simulate(folder, households=40, months=12, start="2022-01", seed=7, file_format="csv", as_feeds=True)
    return folder


@pytest.fixture(scope="module")
def feed_store(simulated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeedReport]:
    store = tmp_path_factory.mktemp("feed_store") / "store"
    report = _ingest(simulated / "feeds", store, secret=SECRET)
    return store, report


def _hashed_truth(simulated: Path) -> tuple[dict[str, str], dict[str, str]]:
    identities = pd.read_parquet(simulated / "truth" / "identities.parquet")
    hasher = IdentityHasher(SECRET)
    persons = dict(
        zip(identities["person_id"], hasher.hash_many("person", identities["identity_number"]), strict=True)
    )
    heads = identities[identities["is_head"]]
    households = dict(
        zip(heads["household_id"], hasher.hash_many("household", heads["identity_number"]), strict=True)
    )
    return persons, households


def test_simulated_feeds_give_the_direct_store(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    store, report = feed_store
    ingest(simulated, tmp_path / "direct")
    persons, households = _hashed_truth(simulated)
    assert report.contract_quarantined == 0
    for name in TABLES:
        direct = pd.read_parquet(tmp_path / "direct" / f"{name}.parquet")
        if "household_id" in direct:
            direct["household_id"] = direct["household_id"].map(households).astype("string")
        if "person_id" in direct:
            direct["person_id"] = direct["person_id"].map(persons).astype("string")
        from_feeds = pd.read_parquet(store / f"{name}.parquet")
        pd.testing.assert_frame_equal(_sorted(from_feeds, name), _sorted(direct, name), check_exact=True)


def test_simulated_counts_lose_no_row(feed_store: tuple[Path, FeedReport]) -> None:
    _, report = feed_store
    for counts in report.feeds.values():
        assert counts.read == counts.kept + counts.quarantined + counts.merged, counts.feed
    assert report.totals["quarantined"] == 0
    assert report.feeds["hrss.wages"].read > 0
    assert report.feeds["civil_affairs.members"].linked == report.feeds["civil_affairs.members"].read


def test_simulated_identity_numbers_are_valid(simulated: Path) -> None:
    numbers = pd.read_parquet(simulated / "truth" / "identities.parquet")["identity_number"]
    assert numbers.is_unique
    assert identity_problems(numbers.astype("string"), pd.Timestamp("2022-01-31")).isna().all()


def test_store_holds_no_raw_identity_number(simulated: Path, feed_store: tuple[Path, FeedReport]) -> None:
    store, _ = feed_store
    numbers = set(pd.read_parquet(simulated / "truth" / "identities.parquet")["identity_number"])
    found = set()
    for path in store.rglob("*"):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            for column in frame.columns:
                if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
                    found |= numbers & set(frame[column].dropna().astype(str))
        elif path.is_file():
            text = path.read_text(encoding="utf-8")
            found |= {number for number in numbers if number in text}
    assert not found


def test_lineage_traces_income_to_file_rows(simulated: Path, feed_store: tuple[Path, FeedReport]) -> None:
    store, _ = feed_store
    income = pd.read_parquet(store / "income.parquet")
    lineage = pd.read_parquet(store / "feeds" / "lineage" / "income.parquet")
    keys = ["household_id", "month", "source"]
    assert (
        income[keys]
        .merge(lineage[keys].drop_duplicates(), how="left", indicator=True)["_merge"]
        .eq("both")
        .all()
    )
    wages = lineage[lineage["feed"] == "hrss.wages"]
    target = wages.groupby(keys).filter(lambda group: len(group) > 1).head(2)
    if target.empty:
        target = wages.head(1)
    rows = pd.read_csv(simulated / "feeds" / target["file"].iloc[0], dtype=str)
    amounts = rows.iloc[target["row"].to_numpy() - 1]["应发工资"].astype(float).sum()
    key = target.iloc[0][keys]
    stored = income[(income[keys] == key.to_numpy()).all(axis=1)]["amount"].iloc[0]
    group = wages[(wages[keys] == key.to_numpy()).all(axis=1)]
    assert len(group) == len(target)
    assert stored == amounts


def test_same_delivery_twice_changes_nothing(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(feed_store[0], store)
    before = _store_hash(store)
    again = _ingest(simulated / "feeds", store, secret=SECRET)
    assert _store_hash(store) == before
    assert not again.changed
    assert again.totals["merged"] == again.totals["read"]
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for path in (simulated / "feeds").iterdir():
        shutil.copy(path, renamed / f"{path.stem}-resent{path.suffix}")
    third = _ingest(renamed, store, secret=SECRET)
    assert _store_hash(store) == before
    assert third.feeds["hrss.wages"].problems == {}
    assert third.feeds["hrss.wages"].merged == third.feeds["hrss.wages"].read
    assert third.delivery == 3


def test_monthly_deliveries_build_the_same_store(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    one_shot, whole = feed_store
    first_load = tmp_path / "feeds"
    shutil.copytree(simulated / "feeds", first_load)
    moved = split_monthly_deliveries(first_load, tmp_path / "deliveries", "2022-07", specs=SPECS)
    assert list(moved) == ["2022-07", "2022-08", "2022-09", "2022-10", "2022-11", "2022-12"]
    store = tmp_path / "store"
    reports = [_ingest(first_load, store, secret=SECRET)]
    for month in moved:
        reports.append(_ingest(tmp_path / "deliveries" / month, store, secret=SECRET))
        assert reports[-1].totals["read"] == moved[month]
        assert reports[-1].totals["corrected"] == 0
        assert reports[-1].rescore_households == 0
    assert sum(report.totals["kept"] for report in reports) == whole.totals["kept"]
    assert not (store / "rescore.parquet").exists()
    for name in TABLES:
        pd.testing.assert_frame_equal(
            _sorted(pd.read_parquet(store / f"{name}.parquet"), name),
            _sorted(pd.read_parquet(one_shot / f"{name}.parquet"), name),
        )


def test_late_correction_marks_household_for_rescoring(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(feed_store[0], store)
    wages = pd.read_csv(simulated / "feeds" / "hrss_wages.csv", dtype=str)
    row = wages[wages["所属年月"] == "202203"].iloc[0]
    correction = tmp_path / "correction"
    correction.mkdir()
    corrected = row.copy()
    corrected["应发工资"] = str(float(row["应发工资"]) + 500)
    pd.DataFrame([corrected]).to_csv(correction / "hrss_wages-correction.csv", index=False)
    report = _ingest(correction, store, secret=SECRET)

    assert report.feeds["hrss.wages"].corrected == 1
    assert report.feeds["hrss.wages"].kept == 1
    household = IdentityHasher(SECRET)
    members = pd.read_parquet(store / "feeds" / "state" / "civil_affairs.members.parquet")
    person = household.hash_one("person", row["身份证号"])
    household_id = members.loc[members["person"] == person, "household_id"].iloc[0]
    rescore = pd.read_parquet(store / "rescore.parquet")
    assert rescore["household_id"].tolist() == [household_id]
    assert rescore["earliest_month"].iloc[0] == pd.Timestamp("2022-03-01")
    history = pd.read_parquet(store / "feeds" / "history" / "hrss.wages.parquet")
    assert history["_reason"].tolist() == [CORRECTED]
    assert history["amount"].iloc[0] == float(row["应发工资"])
    before = pd.read_parquet(feed_store[0] / "income.parquet")
    after = pd.read_parquet(store / "income.parquet")
    key = (
        (after["household_id"] == household_id)
        & (after["month"] == pd.Timestamp("2022-03-01"))
        & (after["source"] == "wage")
    )
    old = before[
        (before["household_id"] == household_id)
        & (before["month"] == pd.Timestamp("2022-03-01"))
        & (before["source"] == "wage")
    ]
    assert after.loc[key, "amount"].iloc[0] == old["amount"].iloc[0] + 500
    lineage = pd.read_parquet(store / "feeds" / "lineage" / "income.parquet")
    traced = lineage[
        (lineage["household_id"] == household_id)
        & (lineage["month"] == pd.Timestamp("2022-03-01"))
        & (lineage["source"] == "wage")
    ]
    assert "hrss_wages-correction.csv" in set(traced["file"])
    assert set(traced.loc[traced["file"] == "hrss_wages-correction.csv", "delivery"]) == {2}


def _same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    columns = list(left.columns)
    pd.testing.assert_frame_equal(
        left.sort_values(columns).reset_index(drop=True), right[columns].sort_values(columns).reset_index(drop=True)
    )


def test_partitioned_store_equals_one_partition(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    one_part, one_report = feed_store
    store = tmp_path / "store"
    report = _ingest(simulated / "feeds", store, secret=SECRET, settings=Settings(feed_partitions=4))

    assert Layout.load(store / "feeds").partitions == 4
    parts = sorted(path.name for path in (store / "feeds" / "state" / "hrss.wages.parquet").iterdir())
    assert parts == [f"part-{part:04d}.parquet" for part in range(4)]
    assert report.totals == one_report.totals
    assert report.store_rows == one_report.store_rows
    for name in TABLES:
        _same_rows(pd.read_parquet(store / f"{name}.parquet"), pd.read_parquet(one_part / f"{name}.parquet"))
    for name in ("income", "poverty_lines"):
        _same_rows(
            pd.read_parquet(store / "feeds" / "lineage" / f"{name}.parquet"),
            pd.read_parquet(one_part / "feeds" / "lineage" / f"{name}.parquet"),
        )


def test_partitioned_batches_and_correction_match_one_partition(simulated: Path, tmp_path: Path) -> None:
    shutil.copytree(simulated / "feeds", tmp_path / "batch1")
    split_monthly_deliveries(tmp_path / "batch1", tmp_path / "later", "2022-07", specs=SPECS)
    (tmp_path / "batch2").mkdir()
    for path in sorted((tmp_path / "later").glob("*/*")):
        # One delivery of the last six months, one file per month and export.
        shutil.copy(path, tmp_path / "batch2" / f"{path.stem}-{path.parent.name}{path.suffix}")
    wages = pd.read_csv(simulated / "feeds" / "hrss_wages.csv", dtype=str)
    corrected = wages[wages["所属年月"] == "202203"].iloc[[0]].copy()
    corrected["应发工资"] = (corrected["应发工资"].astype(float) + 500).astype(str)
    (tmp_path / "batch3").mkdir()
    corrected.to_csv(tmp_path / "batch3" / "hrss_wages-correction.csv", index=False)
    stores = {}
    for partitions in (1, 3):
        store = tmp_path / f"store-{partitions}"
        reports = [
            _ingest(tmp_path / batch, store, secret=SECRET, settings=Settings(feed_partitions=partitions))
            for batch in ("batch1", "batch2", "batch3")
        ]
        assert reports[2].feeds["hrss.wages"].corrected == 1
        stores[partitions] = store
    for name in TABLES:
        _same_rows(pd.read_parquet(stores[3] / f"{name}.parquet"), pd.read_parquet(stores[1] / f"{name}.parquet"))
    for path in ("rescore.parquet", "feeds/history/hrss.wages.parquet"):
        _same_rows(pd.read_parquet(stores[3] / path), pd.read_parquet(stores[1] / path))


def test_partition_of_household_without_income_is_built(tmp_path: Path) -> None:
    delivery = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", delivery)
    head = "52012319700101015" + check_character("52012319700101015")
    with (delivery / "civil_affairs_households.csv").open("a", encoding="utf-8") as households:
        households.write(f"{head},520123,520123101,2,1,1,0,0,0\n")
    with (delivery / "civil_affairs_members.csv").open("a", encoding="utf-8") as members:
        members.write(f"{head},{head},01\n")
    stores = {}
    for partitions in (1, 64):
        stores[partitions] = tmp_path / f"store-{partitions}"
        report = _ingest(delivery, stores[partitions], secret=SECRET, as_of=AS_OF, settings=Settings(feed_partitions=partitions))
        assert report.store_rows["households"] == 4

    households = pd.read_parquet(stores[64] / "households.parquet")["household_id"]
    with_income = pd.read_parquet(stores[64] / "income.parquet")["household_id"].unique()
    parts = dict(zip(households, partition_of(households, 64), strict=True))
    lone = [household for household in households if household not in set(with_income)]
    assert len(lone) == 1
    assert parts[lone[0]] not in {parts[household] for household in with_income}
    for name in ("households", "income", "poverty_lines"):
        _same_rows(pd.read_parquet(stores[64] / f"{name}.parquet"), pd.read_parquet(stores[1] / f"{name}.parquet"))


def test_person_moving_household_matches_one_partition(simulated: Path, tmp_path: Path) -> None:
    feeds = simulated / "feeds"
    members = pd.read_csv(feeds / "civil_affairs_members.csv", dtype=str)
    wages = pd.read_csv(feeds / "hrss_wages.csv", dtype=str)
    earners = members[(members["与户主关系"] != "01") & members["身份证号"].isin(wages["身份证号"])]
    mover = earners.iloc[0]
    heads = members.loc[members["与户主关系"] == "01", "身份证号"]
    moves = tmp_path / "moves"
    moves.mkdir()
    stores: dict[int, Path] = {}
    for new_head in heads[heads != mover["户主身份证号"]]:
        moved = mover.copy()
        moved["户主身份证号"] = new_head
        pd.DataFrame([moved]).to_csv(moves / "civil_affairs_members-move.csv", index=False)
        wages[wages["身份证号"] == mover["身份证号"]].to_csv(moves / "hrss_wages-move.csv", index=False)
        hasher = IdentityHasher(SECRET)
        old, new = (hasher.hash_one("household", head) for head in (mover["户主身份证号"], new_head))
        if len(set(partition_of(pd.Series([old, new]), 7))) == 2:
            break
    reports = {}
    for partitions in (1, 7):
        stores[partitions] = tmp_path / f"store-{partitions}"
        settings = Settings(feed_partitions=partitions)
        _ingest(feeds, stores[partitions], secret=SECRET, settings=settings)
        reports[partitions] = _ingest(moves, stores[partitions], secret=SECRET, settings=settings)

    months = int((wages["身份证号"] == mover["身份证号"]).sum())
    for partitions in (1, 7):
        assert reports[partitions].feeds["hrss.wages"].corrected == months
        assert reports[partitions].feeds["civil_affairs.members"].corrected == 1
        state = pd.read_parquet(stores[partitions] / "feeds" / "state" / "hrss.wages.parquet")
        assert len(state) == len(wages)
    for name in ("income", "households"):
        _same_rows(pd.read_parquet(stores[7] / f"{name}.parquet"), pd.read_parquet(stores[1] / f"{name}.parquet"))
    _same_rows(pd.read_parquet(stores[7] / "rescore.parquet"), pd.read_parquet(stores[1] / "rescore.parquet"))


def test_partitions_are_fixed_by_the_first_delivery(simulated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _ingest(simulated / "feeds", store, secret=SECRET, settings=Settings(feed_partitions=2))
    _ingest(simulated / "feeds", store, secret=SECRET, settings=Settings(feed_partitions=5))
    assert Layout.load(store / "feeds").partitions == 2


def test_partition_count_follows_delivered_size() -> None:
    assert choose_partitions(0, None, 256) == 1
    assert choose_partitions(600 * 2**20, None, 256) == 3
    assert choose_partitions(600 * 2**20, 8, 256) == 8
    assert choose_partitions(10**15, None, 1) == 1024


def test_household_partition_is_stable_and_total() -> None:
    ids = pd.Series(["a1b2c3d4e5f60718", "ffffffffffffffff", None, "a1b2c3d4e5f60718"], dtype="string")
    parts = partition_of(ids, 7)
    assert parts.tolist() == [
        zlib.crc32(b"a1b2c3d4e5f60718") % 7,
        zlib.crc32(b"ffffffffffffffff") % 7,
        0,
        zlib.crc32(b"a1b2c3d4e5f60718") % 7,
    ]
    assert partition_of(ids, 1).tolist() == [0, 0, 0, 0]


def _unit_flags(amounts: list[float]) -> list[bool]:
    """Return the unit-error flags of one household's monthly business income in the urban income checks."""
    spec = next(spec for spec in SPECS if spec.feed == "civil_affairs.income_checks")
    months = pd.period_range("2021-01", periods=len(amounts), freq="M").strftime("%Y%m")
    rows = pd.DataFrame(
        {"key_0": "h1", "key_1": months, "key_2": "2", "amount": pd.Series(amounts, dtype="Float64")}
    )
    run = DeliveryRun(
        delivery=1,
        as_of=pd.Timestamp(AS_OF),
        regions=REGIONS,
        hasher=IdentityHasher(SECRET),
        feeds_dir=Path("."),
        unit_error_ratio=1000.0,
        unit_min_rows=4,
        unit_level_quantile=0.75,
        block_bytes=2**20,
    )
    flagged, _ = unit_errors(spec, rows, None, run)
    return flagged.tolist()


def test_reopened_business_is_not_a_unit_error() -> None:
    # Closed (1 yuan a month) for 23 of 36 months, trading at about 3,000 yuan in the other 13.
    amounts = [3244.0, 3338.0, 2670.0, 3430.0] + [1.0] * 23 + [2735.0, 2180, 3122, 2543, 2284, 2972, 2318, 2689, 3099]
    assert not any(_unit_flags(amounts))


def test_amounts_in_the_wrong_unit_are_flagged() -> None:
    amounts = [3000.0 + month for month in range(12)]
    amounts[3] *= 2000
    amounts[7] *= 10000
    assert [index for index, flag in enumerate(_unit_flags(amounts)) if flag] == [3, 7]


def test_file_read_in_blocks_keeps_row_numbers(tmp_path: Path) -> None:
    lines = ["身份证号,所属年月,应发工资"]
    for row in range(1, 301):
        if row == 50:
            lines.append("only,two")
        elif row == 120:
            lines.append("")
        elif row == 200:
            lines.append(f'{STANDARD_EXAMPLE},202301,"12\n34"')
        else:
            lines.append(f"{STANDARD_EXAMPLE},202301,{row}")
    path = tmp_path / "hrss_wages.csv"
    path.write_bytes(codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode("utf-8"))

    blocks = list(iter_feed_file(path, "hrss.wages", block_bytes=1000))
    whole = read_feed_file(path, "hrss.wages")

    assert len(blocks) > 5
    assert whole.encoding == "utf-8-sig"
    assert list(whole.frame.columns) == ["身份证号", "所属年月", "应发工资"]
    # A blank line stays a row, so that the checks quarantine it as empty; a short line is malformed.
    assert whole.frame.index.tolist() == [row for row in range(1, 301) if row != 50]
    assert whole.frame.loc[120].isna().all()
    assert whole.frame.loc[299, "应发工资"] == "299"
    assert whole.frame.loc[200, "应发工资"] == "12\n34"
    assert whole.malformed == [(50, "only,two")]
    assert sum(block.rows_read for block in blocks) == 300
    assert pd.concat([block.frame for block in blocks]).equals(whole.frame)


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_unclosed_quote_rejects_file_whole(encoding: str, tmp_path: Path) -> None:
    delivery = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", delivery)
    text = "身份证号,所属年月,应发工资\n520123196503120119,202303,3400\n520123196503120119,202304,\"12\n"
    (delivery / "hrss_wages-late.csv").write_bytes(text.encode(encoding))

    report = _ingest(delivery, tmp_path / "store", secret=SECRET, as_of=AS_OF)

    [entry] = [entry for entry in report.files if entry.file == "hrss_wages-late.csv"]
    assert entry.status == "failed"
    assert "odd number (1) of double quotes" in str(entry.error)
    assert report.feeds["hrss.wages"].read == VALID_COUNTS["hrss.wages"]
    assert report.feeds["hrss.wages"].kept == VALID_COUNTS["hrss.wages"]


def test_small_read_blocks_give_the_same_store(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    report = _ingest(simulated / "feeds", store, secret=SECRET, settings=Settings(feed_block_megabytes=0.01))
    assert report.totals == feed_store[1].totals
    for name in TABLES:
        _same_rows(pd.read_parquet(store / f"{name}.parquet"), pd.read_parquet(feed_store[0] / f"{name}.parquet"))


def test_concurrent_ingest_into_one_store_is_rejected(simulated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "feeds").mkdir(parents=True)
    with _store_lock(store):
        with pytest.raises(FeedIngestError, match="another ingest"):
            _ingest(simulated / "feeds", store, secret=SECRET)
    assert _ingest(simulated / "feeds", store, secret=SECRET).changed


def test_work_of_stopped_ingest_is_removed(simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(feed_store[0], store)
    left = store / "feeds" / "delivery-0002-stopped"
    (left / "delivered").mkdir(parents=True)
    _ingest(simulated / "feeds", store, secret=SECRET)
    assert not left.exists()


def test_rescore_list_accumulates_over_deliveries(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(feed_store[0], store)
    wages = pd.read_csv(simulated / "feeds" / "hrss_wages.csv", dtype=str)
    members = pd.read_csv(simulated / "feeds" / "civil_affairs_members.csv", dtype=str).set_index("身份证号")
    march = wages[wages["所属年月"] == "202203"]
    first = march.iloc[0]
    second = march[members.loc[march["身份证号"], "户主身份证号"].to_numpy() != members.loc[first["身份证号"], "户主身份证号"]].iloc[0]
    for number, row in enumerate((first, second), start=1):
        delivery = tmp_path / f"correction-{number}"
        delivery.mkdir()
        corrected = row.copy()
        corrected["应发工资"] = str(float(row["应发工资"]) + 500)
        pd.DataFrame([corrected]).to_csv(delivery / f"hrss_wages-correction-{number}.csv", index=False)
        _ingest(delivery, store, secret=SECRET)

    rescore = pd.read_parquet(store / "rescore.parquet").sort_values("last_delivery")
    assert rescore["last_delivery"].tolist() == [2, 3]
    assert rescore["earliest_month"].tolist() == [pd.Timestamp("2022-03-01")] * 2


def test_stopped_commit_is_finished_by_next_ingest(
    simulated: Path, feed_store: tuple[Path, FeedReport], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wages = pd.read_csv(simulated / "feeds" / "hrss_wages.csv", dtype=str)
    correction = tmp_path / "correction"
    correction.mkdir()
    rows = wages[wages["所属年月"] == "202203"].head(5).copy()
    rows["应发工资"] = (rows["应发工资"].astype(float) + 100).astype(str)
    rows.to_csv(correction / "hrss_wages-correction.csv", index=False)
    settings = Settings(feed_partitions=3)
    stores = {}
    for name in ("whole", "stopped"):
        stores[name] = tmp_path / name
        _ingest(simulated / "feeds", stores[name], secret=SECRET, settings=settings)
    uninterrupted = _ingest(correction, stores["whole"], secret=SECRET, settings=settings)

    moves = []
    real_replace = os.replace

    def replace_then_stop(source: object, target: object) -> None:
        moves.append(target)
        if len(moves) == 4:
            raise RuntimeError("stopped")
        real_replace(source, target)

    monkeypatch.setattr("warning.feeds.install.os.replace", replace_then_stop)
    with pytest.raises(RuntimeError, match="stopped"):
        _ingest(correction, stores["stopped"], secret=SECRET, settings=settings)
    monkeypatch.undo()
    assert (stores["stopped"] / "feeds" / "install.json").is_file()
    again = _ingest(correction, stores["stopped"], secret=SECRET, settings=settings)

    assert uninterrupted.feeds["hrss.wages"].corrected == 5
    assert again.feeds["hrss.wages"].merged == 5
    assert not (stores["stopped"] / "feeds" / "install.json").exists()
    assert not list((stores["stopped"] / "feeds").glob("delivery-*"))
    for path in ("income.parquet", "rescore.parquet", "feeds/history/hrss.wages.parquet", "feeds/state/hrss.wages.parquet"):
        _same_rows(pd.read_parquet(stores["stopped"] / path), pd.read_parquet(stores["whole"] / path))
    log = json.loads((stores["stopped"] / "feeds" / "deliveries.json").read_text(encoding="utf-8"))
    assert [entry["delivery"] for entry in log] == [1, 2, 3]


def test_store_without_layout_is_refused(simulated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "feeds" / "state").mkdir(parents=True)
    (store / "feeds" / "state" / "hrss.wages.parquet").write_bytes(b"")
    with pytest.raises(FeedIngestError, match="layout.json"):
        _ingest(simulated / "feeds", store, secret=SECRET)


# The bad-input corpus: one delivery folder per case (tests/data/bad/make_corpus.py).


_CASE_RUNS: dict[str, tuple[Path, FeedReport]] = {}


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def _ingest_case(case: str, root: Path) -> tuple[Path, FeedReport]:
    """Ingest a corpus case once per module into a fresh store; later calls reuse the result read-only."""
    if case not in _CASE_RUNS:
        store = root / case / "store"
        report = _ingest(CORPUS / case, store, secret=SECRET, as_of=AS_OF)
        for counts in report.feeds.values():
            assert counts.read == counts.kept + counts.quarantined + counts.merged, counts.feed
        _CASE_RUNS[case] = (store, report)
    return _CASE_RUNS[case]


def _copy_of_case(case: str, root: Path, tmp_path: Path) -> Path:
    """Return a writable copy of a case's store, for tests that deliver more to it."""
    store = tmp_path / "store"
    shutil.copytree(_ingest_case(case, root)[0], store)
    return store


VALID_COUNTS = {
    "civil_affairs.households": 3,
    "civil_affairs.members": 7,
    "hrss.wages": 5,
    "rural_revitalisation.monitoring_lines": 2,
}

ROW_CASES = [
    # case, feed, row, column, reason, value shown, rows of the feed kept
    ("wrong_types", "hrss.wages", 6, "应发工资", "not a valid number", "4,100 yuan", 5),
    ("impossible_dates", "hrss.wages", 6, "所属年月", "not a valid month (expected %Y%m)", "202313", 5),
    ("impossible_dates", "hrss.unemployment", 1, "登记日期", "not a valid date (expected %Y%m%d)", "20230231", 1),
    ("future_months", "hrss.wages", 6, "所属年月", "month after the delivery date", "209901", 5),
    ("negative_members", "civil_affairs.households", 2, "家庭人口数", "less than minimum 1", "-2", 2),
    ("unknown_region", "civil_affairs.households", 3, "行政区划代码", "unknown region code", "419999", 2),
    ("invalid_identity", "hrss.wages", 6, "身份证号", WRONG_LENGTH, "621121*******4023", 5),
    ("invalid_identity", "hrss.wages", 7, "身份证号", BAD_CHECK_DIGIT, "621121********0230", 5),
    ("invalid_identity", "hrss.wages", 8, "身份证号", BAD_BIRTH_DATE, "520123********041X", 5),
    ("person_not_in_roster", "hrss.wages", 6, "身份证号", NOT_IN_ROSTER, "520123********077X", 5),
    ("unit_error", "hrss.wages", 6, "应发工资", UNIT_ERROR, "5100000.0", 5),
    ("unknown_code", "civil_affairs.assistance", 2, "救助类别", "unknown code", "09", 1),
    ("missing_column", "hrss.pensions", 1, "养老金", "missing column", "", 0),
]


@pytest.mark.parametrize(("case", "feed", "row", "column", "reason", "value", "kept"), ROW_CASES)
def test_bad_row_is_quarantined_with_reason(
    case: str, feed: str, row: int, column: str, reason: str, value: str, kept: int, corpus_root: Path
) -> None:
    store, report = _ingest_case(case, corpus_root)
    quarantine = _quarantine(store)
    match = quarantine[
        (quarantine["feed"] == feed) & (quarantine["row"] == str(row)) & (quarantine["reason"] == reason)
    ]
    assert len(match) == 1, quarantine.to_string()
    assert match["column"].iloc[0] == column
    assert match["value"].iloc[0] == value
    assert report.feeds[feed].quarantined >= 1
    assert report.feeds[feed].kept == kept


def test_unknown_region_detail_says_what_to_do(corpus_root: Path) -> None:
    store, report = _ingest_case("unknown_region", corpus_root)
    quarantine = _quarantine(store)
    region = quarantine[quarantine["reason"] == "unknown region code"]
    assert "not in the region code table" in region["detail"].iloc[0]
    # The household's members and wages are quarantined too, each with its own reason, and counted.
    assert report.feeds["civil_affairs.members"].problems == {HEAD_NOT_IN_ROSTER: 2}
    assert report.feeds["hrss.wages"].problems == {NOT_IN_ROSTER: 1}
    assert report.feeds["hrss.wages"].kept == 4


def test_negative_members_loses_nothing_else(corpus_root: Path) -> None:
    store, report = _ingest_case("negative_members", corpus_root)
    assert report.feeds["civil_affairs.households"].kept == 2
    assert report.feeds["civil_affairs.households"].quarantined == 1
    assert report.feeds["civil_affairs.members"].kept == 5
    assert report.feeds["civil_affairs.members"].quarantined == 2
    assert len(pd.read_parquet(store / "households.parquet")) == 2


@pytest.mark.parametrize("file", ["hrss_wages.csv", "civil_affairs_households.csv", "civil_affairs_members.csv"])
def test_blank_line_is_quarantined_as_empty_row(file: str, tmp_path: Path) -> None:
    delivery = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", delivery)
    lines = (delivery / file).read_text(encoding="utf-8").splitlines()
    lines.insert(2, "")
    (delivery / file).write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = _ingest(delivery, tmp_path / "store", secret=SECRET, as_of=AS_OF)

    quarantine = _quarantine(tmp_path / "store")
    assert quarantine[["row", "reason"]].values.tolist() == [["2", "empty row"]]
    feed = {"hrss.wages": "hrss_wages.csv"}
    for name, counts in report.feeds.items():
        if counts.read:
            blank = f"{name.replace('.', '_')}.csv" == file or feed.get(name) == file
            assert counts.kept == VALID_COUNTS[name], name
            assert counts.quarantined == (1 if blank else 0), name


def test_valid_case_keeps_every_row(corpus_root: Path) -> None:
    store, report = _ingest_case("valid", corpus_root)
    kept = {feed: counts.kept for feed, counts in report.feeds.items() if counts.read}
    assert kept == VALID_COUNTS
    assert report.totals["quarantined"] == 0
    assert len(pd.read_parquet(store / "income.parquet")) == 4
    assert (
        (store / "feeds" / "deliveries" / "0001" / "summary.txt")
        .read_text(encoding="utf-8")
        .startswith("Delivery 1")
    )


def test_duplicated_keys_keep_the_later_row(corpus_root: Path) -> None:
    store, report = _ingest_case("duplicated_keys", corpus_root)
    counts = report.feeds["hrss.wages"]
    assert (counts.read, counts.kept, counts.merged, counts.quarantined) == (7, 5, 2, 0)
    history = pd.read_parquet(store / "feeds" / "history" / "hrss.wages.parquet")
    assert history["_reason"].tolist() == [REPLACED_IN_DELIVERY]
    assert history["amount"].tolist() == [3300.0]
    income = pd.read_parquet(store / "income.parquet")
    february = income[income["month"] == pd.Timestamp("2023-02-01")]
    assert february["amount"].tolist() == [3350.0]


def test_recoded_region_is_stored_under_its_successor(corpus_root: Path) -> None:
    store, report = _ingest_case("recoded_region", corpus_root)
    households = pd.read_parquet(store / "households.parquet")
    assert report.totals["quarantined"] == 0
    assert "411626" not in set(households["region_code"])
    assert set(households["township_code"].dropna()) >= {"411603102"}


def test_empty_files_fail_alone(corpus_root: Path) -> None:
    _, report = _ingest_case("empty_file", corpus_root)
    files = {entry.file: entry for entry in report.files}
    assert files["hrss_pensions.csv"].status == "failed"
    assert files["hrss_pensions.csv"].error == "the file is empty"
    assert files["civil_affairs_assistance.csv"].status == "read"
    assert files["civil_affairs_assistance.csv"].rows == 0
    assert report.feeds["hrss.wages"].kept == 5


def test_gbk_file_is_decoded(corpus_root: Path) -> None:
    store, report = _ingest_case("gbk_encoding", corpus_root)
    files = {entry.file: entry for entry in report.files}
    assert files["civil_affairs_households.csv"].encoding == "gb18030"
    assert report.feeds["civil_affairs.households"].kept == 3
    assert "decoded as GB18030 (GBK)" in report.summary()


def test_undecodable_file_is_rejected_with_the_byte(tmp_path: Path) -> None:
    delivery = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", delivery)
    (delivery / "hrss_pensions.csv").write_bytes("身份证号,发放年月,养老金\n".encode() + b"\xff\xfe\xff\n")
    _, report = _ingest_case_from(delivery, tmp_path)
    entry = next(entry for entry in report.files if entry.file == "hrss_pensions.csv")
    assert entry.status == "failed"
    assert entry.error is not None
    assert entry.error.startswith("not valid UTF-8 or GBK: byte")


def _ingest_case_from(folder: Path, tmp_path: Path) -> tuple[Path, FeedReport]:
    store = tmp_path / "store"
    return store, _ingest(folder, store, secret=SECRET, as_of=AS_OF)


def test_extra_column_is_ignored_and_reported(corpus_root: Path) -> None:
    _, report = _ingest_case("extra_column", corpus_root)
    entry = next(entry for entry in report.files if entry.file == "hrss_wages.csv")
    assert entry.dropped_columns == ["备注"]
    assert report.feeds["hrss.wages"].kept == 5


def test_missing_column_quarantines_every_row(corpus_root: Path) -> None:
    _, report = _ingest_case("missing_column", corpus_root)
    entry = next(entry for entry in report.files if entry.file == "hrss_pensions.csv")
    assert entry.missing_columns == ["养老金"]
    assert report.feeds["hrss.pensions"].quarantined == 2
    assert report.feeds["hrss.pensions"].kept == 0


def test_missing_column_note_names_a_likely_rename() -> None:
    entry = FileReport(
        file="hrss_wages.csv",
        feed="hrss.wages",
        status="read",
        dropped_columns=["身份证号码", "备注"],
        missing_columns=["身份证号", "发放年月"],
    )

    assert entry.notes() == [
        "ignored columns 身份证号码, 备注",
        "missing columns 身份证号, 发放年月 (perhaps renamed: 身份证号码 for 身份证号)",
    ]


def test_wrong_field_count_keeps_the_line(corpus_root: Path) -> None:
    store, report = _ingest_case("wrong_field_count", corpus_root)
    quarantine = _quarantine(store)
    assert quarantine["reason"].tolist() == ["wrong number of fields"]
    assert quarantine["row"].tolist() == ["6"]
    assert quarantine["value"].iloc[0] == "621121********0238,202302"
    assert report.feeds["hrss.wages"].kept == 5


def test_two_feeds_conflict_resolved_by_precedence(corpus_root: Path) -> None:
    store, report = _ingest_case("two_feeds_conflict", corpus_root)
    assert report.conflicts == {"income": 1}
    assert report.feeds["rural_revitalisation.household_income"].superseded == 1
    income = pd.read_parquet(store / "income.parquet")
    assert income.loc[income["source"] == "property", "amount"].tolist() == [300.0]
    conflicts = pd.read_parquet(store / "feeds" / "conflicts" / "income.parquet")
    assert conflicts["_feed"].tolist() == ["rural_revitalisation.household_income"]
    assert conflicts["amount"].tolist() == [310.0]
    lineage = pd.read_parquet(store / "feeds" / "lineage" / "income.parquet")
    property_lineage = lineage[lineage["source"] == "property"]
    assert property_lineage["feed"].tolist() == ["civil_affairs.income_checks"]
    assert property_lineage["file"].tolist() == ["civil_affairs_income_checks.csv"]
    assert len(lineage) == len(lineage.drop_duplicates(["feed", "file", "row"]))


def test_later_delivery_wins_over_precedence(corpus_root: Path, tmp_path: Path) -> None:
    store = _copy_of_case("two_feeds_conflict", corpus_root, tmp_path)
    later = tmp_path / "later"
    later.mkdir()
    rows = pd.read_csv(CORPUS / "two_feeds_conflict" / "rural_revitalisation_household_income.csv", dtype=str)
    rows["金额"] = "320"
    rows.to_csv(later / "rural_revitalisation_household_income-2.csv", index=False)
    report = _ingest(later, store, secret=SECRET, as_of=AS_OF)
    assert report.feeds["rural_revitalisation.household_income"].corrected == 1
    income = pd.read_parquet(store / "income.parquet")
    assert income.loc[income["source"] == "property", "amount"].tolist() == [320.0]
    assert report.feeds["civil_affairs.income_checks"].superseded == 1


def test_corpus_generator_is_reproducible(tmp_path: Path) -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    loader = spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert loader is not None and loader.loader is not None
    module = module_from_spec(loader)
    loader.loader.exec_module(module)
    module.make_corpus(tmp_path)
    for path in tmp_path.rglob("*.csv"):
        assert path.read_bytes() == (CORPUS / path.relative_to(tmp_path)).read_bytes(), path


def test_repeated_row_of_stored_value_is_merged(corpus_root: Path, tmp_path: Path) -> None:
    store = _copy_of_case("valid", corpus_root, tmp_path)
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(CORPUS / "valid" / "hrss_wages.csv", again / "hrss_wages-again.csv")
    report = _ingest(again, store, secret=SECRET, as_of=AS_OF)
    assert report.feeds["hrss.wages"].merged == 5
    assert not report.changed
    merged = json.loads((store / "feeds" / "report.json").read_text(encoding="utf-8"))
    assert merged["feeds"]["hrss.wages"]["merged"] == 5
    assert ALREADY_STORED == "already stored"


def _cli_feeds_ingest(source: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Result:
    """Run ``povwarn feeds ingest`` with the hash secret taken from the environment, as a user would."""
    from warning.cli import app
    from warning.settings import get_settings

    monkeypatch.setenv("POVWARN_ID_HASH_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, ["feeds", "ingest", str(source), "--store", str(store), "--as-of", AS_OF])
    finally:
        get_settings.cache_clear()


def test_cli_feeds_ingest_reads_secret_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli_feeds_ingest(CORPUS / "valid", tmp_path / "store", monkeypatch)
    assert result.exit_code == 0, result.output
    assert "hrss.wages" in result.output
    assert (tmp_path / "store" / "income.parquet").exists()
    assert np.isclose(
        pd.read_parquet(tmp_path / "store" / "income.parquet")["amount"].sum(),
        3200 + 3300 + 2100 + 4100 + 5100,
    )


def test_cli_exits_1_when_a_file_is_unusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _cli_feeds_ingest(CORPUS / "missing_column", tmp_path / "store", monkeypatch)
    assert result.exit_code == 1, result.output
    assert "could not be used: hrss_pensions.csv" in result.output
    assert (tmp_path / "store" / "income.parquet").exists()


def test_changed_secret_is_rejected(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    before = _store_hash(store)
    with pytest.raises(FeedIngestError, match="not the key that store .* was built with"):
        _ingest(CORPUS / "valid", store, secret="another-secret-0123456789", as_of=AS_OF)
    assert _store_hash(store) == before
    assert _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF).changed is False


def test_layout_without_fingerprint_takes_the_key(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    Layout(partitions=1).write(store / "feeds")
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    assert Layout.load(store / "feeds") == Layout(1, IdentityHasher(SECRET).fingerprint())


def test_folder_without_feed_files_is_rejected(tmp_path: Path) -> None:
    source = tmp_path / "delivery"
    source.mkdir()
    (source / "notes.txt").write_text("no feed here\n", encoding="utf-8")
    with pytest.raises(FeedIngestError, match=r"has no file of any feed \(found: notes.txt\)"):
        _ingest(source, tmp_path / "store", secret=SECRET, as_of=AS_OF)
    assert not (tmp_path / "store").exists()


def test_contract_store_is_not_a_feed_store(simulated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(simulated, store)
    before = _store_hash(store)
    with pytest.raises(FeedIngestError, match="not built from feeds"):
        _ingest(simulated / "feeds", store, secret=SECRET)
    assert _store_hash(store) == before
    assert not (store / "feeds").exists()


def test_cli_exits_2_when_every_row_is_quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    source = tmp_path / "bad_wages"
    source.mkdir()
    lines = (CORPUS / "invalid_identity" / "hrss_wages.csv").read_text(encoding="utf-8").splitlines()
    (source / "hrss_wages.csv").write_text("\n".join([lines[0], *lines[-3:]]) + "\n", encoding="utf-8")
    result = _cli_feeds_ingest(source, store, monkeypatch)
    assert result.exit_code == 2, result.output
    assert "Nothing was stored: all 3 rows read were quarantined" in result.output
    assert len(_quarantine(store, delivery=2)) == 3


def test_truth_falls_join_the_feed_store(simulated: Path, feed_store: tuple[Path, FeedReport]) -> None:
    store, _ = feed_store
    hashed = feed_household_ids(simulated / "truth", IdentityHasher(SECRET))
    households = pd.read_parquet(store / "households.parquet")["household_id"]
    assert set(hashed) == set(households)
    assert len(hashed) == 40
    # The fixture is written as CSV, so this reads falls.csv.
    assert list(read_falls(simulated / "truth").columns) == ["household_id", "month", "cause"]


def test_lookup_finds_household_of_each_number(simulated: Path, feed_store: tuple[Path, FeedReport]) -> None:
    store, _ = feed_store
    identities = pd.read_parquet(simulated / "truth" / "identities.parquet")
    head = identities[identities["is_head"]].iloc[0]
    member = identities[~identities["is_head"]].iloc[0]
    unknown = "110105199001011232"
    assert check_character(unknown[:17]) == unknown[17]
    hasher = IdentityHasher(SECRET)
    numbers = pd.Series([head["identity_number"], member["identity_number"], unknown, "12345"])
    found = lookup_identities(numbers, read_roster(store, SPECS, hasher), hasher, pd.Timestamp(AS_OF))
    _, households = _hashed_truth(simulated)
    assert found["household_id"].iloc[0] == households[head["household_id"]]
    assert found["household_id"].iloc[1] == households[member["household_id"]]
    assert found["is_head"].tolist() == [True, False, False, False]
    assert pd.isna(found["household_id"].iloc[2])
    assert found["problem"].iloc[3] == WRONG_LENGTH
    assert found["identity_number"].iloc[0] == mask_identity(head["identity_number"])


def test_lookup_with_another_key_is_rejected(feed_store: tuple[Path, FeedReport]) -> None:
    store, _ = feed_store
    with pytest.raises(FeedIngestError, match="not the key"):
        read_roster(store, SPECS, IdentityHasher("another-secret-0123456789"))


def test_delivery_dated_before_the_last_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "store"
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    with caplog.at_level("WARNING", logger="warning.feeds.pipeline"):
        _ingest(CORPUS / "valid", store, secret=SECRET, as_of="2024-03-31")
    assert "Delivery 2 is dated 2024-03-31, before delivery 1 (2024-06-30)" in caplog.text
    log = json.loads((store / "feeds" / "deliveries.json").read_text(encoding="utf-8"))
    assert [entry["as_of"] for entry in log] == [AS_OF, "2024-03-31"]


def _valid_with_wages(tmp_path: Path, extra_lines: list[str], header: str | None = None, name: str = "hrss_wages.csv") -> Path:
    """Copy the valid corpus case and append lines to its wages file (optionally with another header)."""
    source = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", source)
    wages = (source / "hrss_wages.csv").read_text(encoding="utf-8").splitlines()
    (source / "hrss_wages.csv").unlink()
    lines = [header or wages[0], *wages[1:], *extra_lines]
    (source / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


def _stored_text(store: Path) -> str:
    """Return every text, CSV and JSON file of a store and the text of its Parquet files, joined."""
    parts = []
    for path in sorted(store.rglob("*")):
        if path.suffix in (".csv", ".json", ".txt"):
            parts.append(path.read_text(encoding="utf-8"))
        elif path.suffix == ".parquet" and path.is_file():
            parts.append(pd.read_parquet(path).astype(str).to_csv())
    return "\n".join(parts)


def test_undeclared_column_is_masked_in_rejected_rows(tmp_path: Path) -> None:
    spouse = "520123196805200122"
    source = _valid_with_wages(tmp_path, [f"520123196503120119,2023-13,3400,{spouse}"], header="身份证号,所属年月,应发工资,配偶身份证号")
    # The valid rows need the new column too.
    text = (source / "hrss_wages.csv").read_text(encoding="utf-8").splitlines()
    fixed = [text[0]] + [line if line.count(",") == 3 else line + "," for line in text[1:]]
    (source / "hrss_wages.csv").write_text("\n".join(fixed) + "\n", encoding="utf-8")
    store = tmp_path / "store"
    report = _ingest(source, store, secret=SECRET, as_of=AS_OF)
    assert report.feeds["hrss.wages"].quarantined == 1
    rejected = (store / "feeds" / "deliveries" / "0001" / "rejected" / "hrss.wages.csv").read_text(encoding="utf-8")
    assert mask_identity(spouse) in rejected
    assert spouse not in _stored_text(store)


def test_identity_number_in_amount_is_masked(tmp_path: Path) -> None:
    number = "621121195807040238"
    source = _valid_with_wages(tmp_path, [f"{number},202303,{number}"])
    store = tmp_path / "store"
    _ingest(source, store, secret=SECRET, as_of=AS_OF)
    quarantine = _quarantine(store)
    assert quarantine["value"].tolist() == [mask_identity(number)]
    assert number not in _stored_text(store)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("５２０１２３１９６５０３１２０１１９,202303,3400", NOT_DIGITS),
        ("520123196503120119,202303,１９８７", "not a valid number"),
        ("520123196503120119,202303,٣٤٥", "not a valid number"),
        ("520123196503120119,２０２３０３,3400", "not a valid month (expected %Y%m)"),
        ("520123196503120119,20233,3400", "not a valid month (expected %Y%m)"),
    ],
)
def test_non_ascii_and_short_cells_are_quarantined(line: str, reason: str, tmp_path: Path) -> None:
    source = _valid_with_wages(tmp_path, [line])
    store = tmp_path / "store"
    report = _ingest(source, store, secret=SECRET, as_of=AS_OF)
    quarantine = _quarantine(store)
    assert quarantine["reason"].tolist() == [reason]
    assert report.feeds["hrss.wages"].kept == 5
    assert "５２０１２３１９６５０３１２０１１９" not in _stored_text(store)


def test_date_without_separators_needs_every_digit() -> None:
    assert date_pattern("%Y%m%d") == "[0-9]{4}[0-9]{2}[0-9]{2}"
    cells = pd.Series(["20230115", "202311", "2023111", "2023年3月", "2023年03月"])
    assert bool(re.fullmatch(date_pattern("%Y%m%d"), cells[0]))
    assert not re.fullmatch(date_pattern("%Y%m%d"), cells[1])
    assert not re.fullmatch(date_pattern("%Y%m%d"), cells[2])
    assert bool(re.fullmatch(date_pattern("%Y年%m月"), cells[3]))
    assert bool(re.fullmatch(date_pattern("%Y年%m月"), cells[4]))


def test_file_name_with_identity_number_is_masked(tmp_path: Path) -> None:
    number = "520123196503120119"
    source = _valid_with_wages(tmp_path, [], name=f"hrss_wages-{number}.csv")
    store = tmp_path / "store"
    report = _ingest(source, store, secret=SECRET, as_of=AS_OF)
    assert f"hrss_wages-{mask_identity(number)}.csv" in [entry.file for entry in report.files]
    assert number not in _stored_text(store)


def test_resent_file_retries_its_quarantined_rows(tmp_path: Path) -> None:
    head = "411623197201190354"
    first = tmp_path / "first"
    shutil.copytree(CORPUS / "valid", first)
    for name in ("civil_affairs_households.csv", "civil_affairs_members.csv"):
        lines = (first / name).read_text(encoding="utf-8").splitlines()
        (first / name).write_text("\n".join(line for line in lines if head not in line) + "\n", encoding="utf-8")
    store = tmp_path / "store"
    report = _ingest(first, store, secret=SECRET, as_of=AS_OF)
    assert report.feeds["hrss.wages"].problems == {NOT_IN_ROSTER: 1}
    roster = tmp_path / "roster"
    roster.mkdir()
    for name in ("civil_affairs_households.csv", "civil_affairs_members.csv"):
        shutil.copy(CORPUS / "valid" / name, roster / name)
    _ingest(roster, store, secret=SECRET, as_of=AS_OF)
    resent = tmp_path / "resent"
    resent.mkdir()
    shutil.copy(first / "hrss_wages.csv", resent / "hrss_wages.csv")
    again = _ingest(resent, store, secret=SECRET, as_of=AS_OF)
    assert again.feeds["hrss.wages"].kept == 1
    assert again.feeds["hrss.wages"].merged == 4
    assert pd.read_parquet(store / "income.parquet")["household_id"].nunique() == 3
    once_more = _ingest(resent, store, secret=SECRET, as_of=AS_OF)
    assert once_more.files[0].status == f"{ALREADY_DELIVERED} in delivery 3"


def test_store_moved_aside_is_restored(feed_store: tuple[Path, FeedReport], simulated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(feed_store[0], store)
    before = _store_hash(store)
    # A run stopped inside replace_store: the store is aside, its feeds folder already in the staging folder.
    previous, staging = tmp_path / ".store.previous-999", tmp_path / ".store.staging-999"
    store.rename(previous)
    staging.mkdir()
    (previous / "feeds").rename(staging / "feeds")
    shutil.copy(previous / "income.parquet", staging / "income.parquet")
    report = _ingest(simulated / "feeds", store, secret=SECRET)
    assert not report.changed
    assert _store_hash(store) == before
    assert not previous.exists()
    assert not staging.exists()


def test_replaced_store_left_aside_is_removed(feed_store: tuple[Path, FeedReport], simulated: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(feed_store[0], store)
    shutil.copytree(feed_store[0], tmp_path / ".store.previous-999")
    _ingest(simulated / "feeds", store, secret=SECRET)
    assert not (tmp_path / ".store.previous-999").exists()
    assert (store / "households.parquet").is_file()


def test_head_missing_from_members_is_linked(tmp_path: Path) -> None:
    source = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", source)
    head = "621121195807040238"
    members = (source / "civil_affairs_members.csv").read_text(encoding="utf-8").splitlines()
    kept = [line for line in members if not line.startswith(head)]
    (source / "civil_affairs_members.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    report = _ingest(source, tmp_path / "store", secret=SECRET, as_of=AS_OF)
    assert report.feeds["hrss.wages"].problems == {}
    assert report.feeds["hrss.wages"].kept == 5
    hasher = IdentityHasher(SECRET)
    roster = read_roster(tmp_path / "store", SPECS, hasher)
    found = lookup_identities(pd.Series([head]), roster, hasher, pd.Timestamp(AS_OF))
    assert found["household_id"].iloc[0] == hasher.hash_one("household", head)
    assert bool(found["is_head"].iloc[0])


@pytest.mark.parametrize("secret", [" " * 20, "a" * 16, "abababababababab"])
def test_weak_secret_is_rejected(secret: str) -> None:
    with pytest.raises(MissingSecretError, match="fewer than 8 different characters"):
        resolve_secret(secret, Settings())


def test_secret_length_counts_characters() -> None:
    with pytest.raises(MissingSecretError, match="too short"):
        resolve_secret("一二三四五六七八九十", Settings())


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        ("", "invalid delivery date ''"),
        ("2024-13-01", "invalid delivery date"),
        ("Dec 4", "invalid delivery date"),
        ("2024-06-30T00:00+08:00", "invalid delivery date"),
        ("0001-01-01", "is before 1999-01-01"),
        ("2999-01-01", "is after today"),
    ],
)
def test_bad_delivery_date_is_rejected(as_of: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(FeedIngestError, match=message):
        _ingest(CORPUS / "valid", tmp_path / "store", secret=SECRET, as_of=as_of)
    assert not (tmp_path / "store").exists()


def test_first_delivery_without_income_names_the_cause(tmp_path: Path) -> None:
    source = _valid_with_wages(tmp_path, [], header="身份证号,所属年月,工资")
    with pytest.raises(FeedIngestError, match=r"hrss.wages: all 5 rows quarantined, 5 for missing column"):
        _ingest(source, tmp_path / "store", secret=SECRET, as_of=AS_OF)


def test_formula_cells_are_inert_in_quarantine(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://x")'
    source = _valid_with_wages(
        tmp_path,
        [
            '520123196503120119,202303,"=HYPERLINK(""http://x"")"',
            "520123196503120119,202304,-x",
            "520123196503120119,202305,-2+3+cmd|A0",
        ],
    )
    store = tmp_path / "store"
    _ingest(source, store, secret=SECRET, as_of=AS_OF)
    quarantine = _quarantine(store)
    assert sorted(quarantine["value"]) == sorted(["'" + formula, "'-x", "'-2+3+cmd|A0"])
    rejected = pd.read_csv(store / "feeds" / "deliveries" / "0001" / "rejected" / "hrss.wages.csv", dtype=str)
    assert sorted(rejected["应发工资"]) == sorted(["'" + formula, "'-x", "'-2+3+cmd|A0"])


def test_symlinked_store_shares_the_lock(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    (tmp_path / "link").symlink_to(store)
    with _store_lock(store), pytest.raises(FeedIngestError, match="another ingest"):
        _ingest(CORPUS / "valid", tmp_path / "link", secret=SECRET, as_of=AS_OF)


def test_store_given_as_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF)
    monkeypatch.chdir(store)
    report = _ingest(CORPUS / "duplicated_keys", Path("."), secret=SECRET, as_of=AS_OF)
    assert report.delivery == 2
    assert report.changed


def test_failed_first_delivery_fixes_no_key(tmp_path: Path) -> None:
    members_only = tmp_path / "members"
    members_only.mkdir()
    shutil.copy(CORPUS / "valid" / "civil_affairs_members.csv", members_only)
    store = tmp_path / "store"
    with pytest.raises(FeedIngestError, match="no rows yet for required contract tables"):
        _ingest(members_only, store, secret="mistyped-secret-0123456789", as_of=AS_OF)
    assert not (store / "feeds" / "layout.json").exists()
    assert _ingest(CORPUS / "valid", store, secret=SECRET, as_of=AS_OF).changed


def test_identity_numbers_in_headers_and_text_are_masked(tmp_path: Path) -> None:
    number = "110105199003071232"
    source = _valid_with_wages(tmp_path, [], header=f"身份证号,所属年月,应发工资,{number}")
    lines = (source / "hrss_wages.csv").read_text(encoding="utf-8").splitlines()
    (source / "hrss_wages.csv").write_text("\n".join([lines[0], *(line + "," for line in lines[1:])]) + "\n", encoding="utf-8")
    employment = "身份证号,就业状态,行业,开始年月,结束年月\n" f"520123196503120119,11,{number},202201,\n"
    (source / "hrss_employment.csv").write_text(employment, encoding="utf-8")
    store = tmp_path / "store"
    report = _ingest(source, store, secret=SECRET, as_of=AS_OF)
    assert report.feeds["hrss.employment"].kept == 1
    assert pd.read_parquet(store / "employment.parquet")["sector"].tolist() == [mask_identity(number)]
    assert number not in _stored_text(store)
    assert number not in report.summary()


def test_repeated_header_message_is_masked(tmp_path: Path) -> None:
    number = "110105199003071232"
    source = _valid_with_wages(tmp_path, [], header=f"身份证号,所属年月,应发工资,{number},{number}")
    with pytest.raises(FeedIngestError, match="column names repeated in the header") as failure:
        _ingest(source, tmp_path / "store", secret=SECRET, as_of=AS_OF)
    assert mask_identity(number) in str(failure.value)
    assert number not in str(failure.value)


def test_files_masking_alike_are_counted_apart(tmp_path: Path) -> None:
    source = tmp_path / "delivery"
    shutil.copytree(CORPUS / "valid", source)
    bad = "身份证号,所属年月,应发工资\n520123196503120119,2023-13,1\n"
    for number in ("110105199003071232", "110105000000001232"):
        (source / f"hrss_wages-{number}.csv").write_text(bad, encoding="utf-8")
    report = _ingest(source, tmp_path / "store", secret=SECRET, as_of=AS_OF)
    wages = report.feeds["hrss.wages"]
    assert wages.quarantined == 2
    assert len(set(wages.files)) == 3
    assert sorted(_quarantine(tmp_path / "store")["file"]) == sorted(
        [f"hrss_wages-{mask_identity('110105199003071232')}.csv", f"hrss_wages-{mask_identity('110105199003071232')}.csv (2)"]
    )


def test_cli_error_masks_identity_number_in_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from warning.cli import main
    from warning.settings import get_settings

    missing = tmp_path / f"{STANDARD_EXAMPLE}.txt"
    monkeypatch.setenv("POVWARN_ID_HASH_SECRET", SECRET)
    monkeypatch.setattr(
        "sys.argv", ["povwarn", "feeds", "lookup", "--numbers-file", str(missing), "--work-dir", str(tmp_path)]
    )
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        get_settings.cache_clear()

    error = capsys.readouterr().err
    assert stopped.value.code == 1
    assert "No such file or directory" in error
    assert STANDARD_EXAMPLE not in error
    assert "********002X.txt" in error
