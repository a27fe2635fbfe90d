"""Write the bad-input corpus of the feed tests: one delivery folder per case.

Every case folder contains a small valid delivery (three households, six
people, a few wages and the monitoring lines) with one file replaced or
added to carry the bad input. Identity numbers are synthetic, with correct
check digits unless the case is about them. Run from the repository root:

    python tests/data/bad/make_corpus.py
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from warning.feeds.identity import check_character

HERE = Path(__file__).resolve().parent


def identity(region: str, birth: str, sequence: int) -> str:
    first_17 = f"{region}{birth}{sequence:03d}"
    return first_17 + check_character(first_17)


# Three households in three counties; the second head's birth date and sequence make a check digit of X.
HEADS = [
    identity("520123", "19650312", 11),
    identity("621121", "19580704", 23),
    identity("411623", "19720119", 35),
]
MEMBERS = {
    HEADS[0]: [identity("520123", "19680520", 12), identity("520123", "19950101", 13)],
    HEADS[1]: [identity("621121", "19600211", 24)],
    HEADS[2]: [identity("411623", "19990909", 36)],
}
# A valid identity number that is in no household.
STRANGER = identity("520123", "19800808", 77)

HOUSEHOLDS_HEADER = [
    "户主身份证号",
    "行政区划代码",
    "乡镇街道代码",
    "城乡类别",
    "家庭人口数",
    "劳动力人数",
    "残疾人数",
    "老年人数",
    "在校生人数",
]
HOUSEHOLDS = [
    [HEADS[0], "520123", "520123101", "2", "3", "2", "0", "0", "1"],
    [HEADS[1], "621121", "621121102", "2", "2", "2", "0", "0", "0"],
    [HEADS[2], "411623", "", "1", "2", "1", "0", "0", "0"],
]
WAGES_HEADER = ["身份证号", "所属年月", "应发工资"]
WAGES = [
    [HEADS[0], "202301", "3200"],
    [HEADS[0], "202302", "3300"],
    [MEMBERS[HEADS[0]][0], "202301", "2100"],
    [HEADS[1], "202301", "4100"],
    [HEADS[2], "202301", "5100"],
]
LINES_HEADER = ["年度", "区划代码前缀", "城乡类别", "监测标准"]
LINES = [["2023", "", "2", "6600"], ["2023", "", "1", "8000"]]


def write(folder: Path, name: str, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> None:
    with (folder / name).open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def base(folder: Path, skip: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True)
    members = [
        [person, head, "01" if person == head else "02"]
        for head in HEADS
        for person in [head, *MEMBERS[head]]
    ]
    files = {
        "civil_affairs_households.csv": (HOUSEHOLDS_HEADER, HOUSEHOLDS),
        "civil_affairs_members.csv": (["身份证号", "户主身份证号", "与户主关系"], members),
        "hrss_wages.csv": (WAGES_HEADER, WAGES),
        "rural_revitalisation_monitoring_lines.csv": (LINES_HEADER, LINES),
    }
    for name, (header, rows) in files.items():
        if name not in skip:
            write(folder, name, header, rows)


def make_corpus(root: Path = HERE) -> None:
    """Write every case folder under ``root``, replacing earlier ones."""
    cases = {
        "valid": lambda folder: base(folder),
        "wrong_types": _wrong_types,
        "impossible_dates": _impossible_dates,
        "negative_members": _negative_members,
        "future_months": _future_months,
        "duplicated_keys": _duplicated_keys,
        "unknown_region": _unknown_region,
        "recoded_region": _recoded_region,
        "invalid_identity": _invalid_identity,
        "empty_file": _empty_file,
        "gbk_encoding": _gbk_encoding,
        "extra_column": _extra_column,
        "missing_column": _missing_column,
        "person_not_in_roster": _person_not_in_roster,
        "unit_error": _unit_error,
        "unknown_code": _unknown_code,
        "wrong_field_count": _wrong_field_count,
        "two_feeds_conflict": _two_feeds_conflict,
    }
    for name, make in cases.items():
        folder = root / name
        shutil.rmtree(folder, ignore_errors=True)
        make(folder)


def _wrong_types(folder: Path) -> None:
    base(folder)
    write(folder, "hrss_wages.csv", WAGES_HEADER, [*WAGES, [HEADS[1], "202302", "4,100 yuan"]])


def _impossible_dates(folder: Path) -> None:
    base(folder)
    write(folder, "hrss_wages.csv", WAGES_HEADER, [*WAGES, [HEADS[1], "202313", "4100"]])
    write(
        folder,
        "hrss_unemployment.csv",
        ["身份证号", "登记日期", "收入损失"],
        [[HEADS[2], "20230231", "900"], [HEADS[2], "20230228", "900"]],
    )


def _negative_members(folder: Path) -> None:
    base(folder)
    rows = [list(row) for row in HOUSEHOLDS]
    rows[1][4] = "-2"
    write(folder, "civil_affairs_households.csv", HOUSEHOLDS_HEADER, rows)


def _future_months(folder: Path) -> None:
    base(folder)
    write(folder, "hrss_wages.csv", WAGES_HEADER, [*WAGES, [HEADS[1], "209901", "4100"]])


def _duplicated_keys(folder: Path) -> None:
    base(folder)
    # Row 6 repeats row 1 exactly; row 7 reports row 2's person and month with another amount.
    write(
        folder,
        "hrss_wages.csv",
        WAGES_HEADER,
        [*WAGES, [HEADS[0], "202301", "3200"], [HEADS[0], "202302", "3350"]],
    )


def _unknown_region(folder: Path) -> None:
    base(folder)
    rows = [list(row) for row in HOUSEHOLDS]
    rows[2][1] = "419999"
    write(folder, "civil_affairs_households.csv", HOUSEHOLDS_HEADER, rows)


def _recoded_region(folder: Path) -> None:
    base(folder)
    rows = [list(row) for row in HOUSEHOLDS]
    # Huaiyang County (411626) became Huaiyang District (411603) in 2019.
    rows[2][1] = "411626"
    rows[2][2] = "411626102"
    write(folder, "civil_affairs_households.csv", HOUSEHOLDS_HEADER, rows)


def _invalid_identity(folder: Path) -> None:
    base(folder)
    good = HEADS[1]
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    bad_date = identity("520123", "19990230", 41)
    write(
        folder,
        "hrss_wages.csv",
        WAGES_HEADER,
        [
            *WAGES,
            [good[:17], "202302", "4100"],
            [wrong_check, "202302", "4100"],
            [bad_date, "202302", "4100"],
        ],
    )


def _empty_file(folder: Path) -> None:
    base(folder)
    (folder / "hrss_pensions.csv").write_bytes(b"")
    write(folder, "civil_affairs_assistance.csv", ["身份证号", "发放年月", "救助类别", "发放金额"], [])


def _gbk_encoding(folder: Path) -> None:
    base(folder, skip=("civil_affairs_households.csv",))
    write(folder, "civil_affairs_households.csv", HOUSEHOLDS_HEADER, HOUSEHOLDS, encoding="gbk")


def _extra_column(folder: Path) -> None:
    base(folder)
    write(folder, "hrss_wages.csv", [*WAGES_HEADER, "备注"], [[*row, "补发"] for row in WAGES])


def _missing_column(folder: Path) -> None:
    base(folder)
    write(
        folder, "hrss_pensions.csv", ["身份证号", "发放年月"], [[HEADS[2], "2023-01"], [HEADS[2], "2023-02"]]
    )


def _person_not_in_roster(folder: Path) -> None:
    base(folder)
    write(folder, "hrss_wages.csv", WAGES_HEADER, [*WAGES, [STRANGER, "202301", "2500"]])


def _unit_error(folder: Path) -> None:
    base(folder)
    months = [f"2023{month:02d}" for month in range(1, 7)]
    rows = [[HEADS[2], month, "5100"] for month in months[:5]] + [[HEADS[2], months[5], "5100000"]]
    write(folder, "hrss_wages.csv", WAGES_HEADER, rows)


def _unknown_code(folder: Path) -> None:
    base(folder)
    write(
        folder,
        "civil_affairs_assistance.csv",
        ["身份证号", "发放年月", "救助类别", "发放金额"],
        [[HEADS[0], "2023年01月", "01", "600"], [HEADS[0], "2023年01月", "09", "600"]],
    )


def _wrong_field_count(folder: Path) -> None:
    base(folder)
    with (folder / "hrss_wages.csv").open("a", encoding="utf-8") as handle:
        handle.write(f"{HEADS[1]},202302\n")


def _two_feeds_conflict(folder: Path) -> None:
    base(folder)
    header = ["户主身份证号", "收入年月", "收入类型", "金额"]
    write(folder, "civil_affairs_income_checks.csv", header, [[HEADS[2], "202301", "4", "300"]])
    write(folder, "rural_revitalisation_household_income.csv", header, [[HEADS[2], "202301", "4", "310"]])


if __name__ == "__main__":
    make_corpus()
