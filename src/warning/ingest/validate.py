"""Validation of one table: pandera checks per chunk of rows, then the key over all kept rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from warning.contract import Table
from warning.ingest.convert import convert_table, to_store_dtypes
from warning.ingest.problems import empty_problems
from warning.ingest.read import RawTable
from warning.ingest.schemas import (
    DUPLICATE_KEY,
    EMPTY_ROW,
    MISSING_VALUE,
    NOT_ALLOWED_CATEGORY,
    UNKNOWN_HOUSEHOLD,
    WRONG_DTYPE,
    RowRule,
    key_schema,
    raw_schema,
    row_rules,
    table_schema,
)

logger = logging.getLogger(__name__)

# While validating, problem frames have one more column, ``related``: the columns
# whose cells go into ``detail``. ``_fill_from_file`` fills ``value`` and ``detail``.


@dataclass(frozen=True)
class HouseholdIds:
    """The household ids of the households table: those kept and those quarantined."""

    kept: pd.Index
    quarantined: pd.Index


@dataclass
class ValidatedTable:
    """The outcome of validating one table."""

    frame: pd.DataFrame
    problems: pd.DataFrame
    rows_read: int

    @property
    def rows_kept(self) -> int:
        return len(self.frame)

    @property
    def rows_quarantined(self) -> int:
        return int(self.problems["row"].nunique())

    def problem_counts(self) -> dict[str, int]:
        """Return the number of problems per reason, most frequent first."""
        counts = self.problems["reason"].value_counts()
        return {str(reason): int(count) for reason, count in counts.items()}


def validate_table(
    raw: RawTable,
    *,
    households: HouseholdIds | None = None,
    chunk_rows: int = 1_000_000,
    cost_tolerance: float = 0.01,
    as_of: date | None = None,
) -> ValidatedTable:
    """Validate a table read from a file and split its rows into kept and quarantined.

    Every row with a problem is quarantined, with one problem record per
    failed check. ``households`` enables the check that each ``household_id`` is a
    kept household. Rows are checked ``chunk_rows`` at a time to bound memory.
    The key check runs last over the rows that passed everything else, so
    when a key repeats, the first valid row is kept. Months after the month of
    ``as_of`` (default: today) are quarantined as in the future.
    """
    table = raw.table
    schema = table_schema(
        table,
        household_ids=None if households is None else households.kept,
        cost_tolerance=cost_tolerance,
        validation_dtypes=True,
        as_of=as_of,
    )
    rules = {rule.reason: rule for rule in row_rules(cost_tolerance) if rule.applies_to(table)}
    total = raw.data.num_rows
    kept_parts: list[pd.DataFrame] = []
    problem_parts: list[pd.DataFrame] = [_working(raw.malformed)]
    # An empty table still makes one empty chunk, which gives the typed columns.
    for start in range(0, max(total, 1), chunk_rows):
        stop = min(start + chunk_rows, total)
        typed, problems = _validate_chunk(raw.chunk(start, stop), table, schema, rules, households)
        kept_parts.append(_without_rows(typed, problems["row"]))
        problem_parts.append(problems)
        logger.debug("Checked rows %d to %d of %s: %d problems", start + 1, stop, table.name, len(problems))
    typed_all = pd.concat(kept_parts) if len(kept_parts) > 1 else kept_parts[0]
    duplicates = _duplicate_problems(typed_all, table)
    typed_all = _without_rows(typed_all, duplicates["row"])
    problem_parts.append(duplicates)

    problems = pd.concat([part for part in problem_parts if len(part)] or [_working(empty_problems())])
    problems = _fill_from_file(problems.sort_values("row", kind="stable").reset_index(drop=True), raw)
    result = ValidatedTable(to_store_dtypes(typed_all, table).reset_index(drop=True), problems, raw.rows_read)
    if result.rows_read != result.rows_kept + result.rows_quarantined:
        raise RuntimeError(
            f"{table.name}: {result.rows_read} rows read but {result.rows_kept} kept "
            f"and {result.rows_quarantined} quarantined"
        )
    return result


def _validate_chunk(
    chunk: pd.DataFrame,
    table: Table,
    schema: pa.DataFrameSchema,
    rules: dict[str, RowRule],
    households: HouseholdIds | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    # A row with no values at all, such as a blank line in a CSV file, is one problem, not one per column.
    empty = chunk.isna().all(axis=1)
    empty_problems_ = _empty_row_problems(chunk.index[empty])
    chunk = _without_rows(chunk, empty_problems_["row"])
    raw_problems = _problems(raw_schema(table, chunk.dtypes.to_dict()), chunk, rules, table, households)
    typed = convert_table(_blank_cells(chunk, raw_problems), table)
    typed_problems = _problems(schema, typed, rules, table, households)
    # A cell that failed to parse is missing in ``typed``, so its nullability failure
    # would repeat the parse failure.
    repeated = _cells(typed_problems).isin(_cells(raw_problems))
    return typed, pd.concat([empty_problems_, raw_problems, typed_problems[~repeated]])


def _without_rows(frame: pd.DataFrame, rows: pd.Series) -> pd.DataFrame:
    # Selecting rows copies every column, which is slow for Arrow strings, so skip it when nothing is removed.
    if not len(rows):
        return frame
    return frame[~frame.index.isin(rows)]


def _empty_row_problems(rows: pd.Index) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": rows.to_numpy(dtype="int64"),
            "column": "",
            "value": "",
            "reason": EMPTY_ROW,
            "detail": "",
            "related": "",
        }
    ).astype({name: "string" for name in ("column", "value", "reason", "detail", "related")})


def _cells(problems: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([problems["row"], problems["column"]])


def _blank_cells(chunk: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of the chunk with the cells that have problems set missing."""
    blanked = chunk.copy()
    for column, group in problems.groupby("column"):
        values = blanked[column]
        if pd.api.types.is_integer_dtype(values.dtype):
            values = values.astype("float64")
        blanked[column] = values.mask(values.index.isin(group["row"]))
    return blanked


def _working(problems: pd.DataFrame) -> pd.DataFrame:
    return problems.assign(related="")


def _problems(
    schema: pa.DataFrameSchema,
    frame: pd.DataFrame,
    rules: dict[str, RowRule],
    table: Table,
    households: HouseholdIds | None,
) -> pd.DataFrame:
    """Run a schema lazily and turn its failure cases into problem records."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as error:
        cases = error.failure_cases
    else:
        return _working(empty_problems())
    by_column = cases["schema_context"] == "Column"
    by_row = (cases["schema_context"] == "DataFrameSchema") & cases["check"].isin(list(rules))
    unexpected = cases[~(by_column | by_row) | cases["index"].isna()]
    if len(unexpected):
        raise RuntimeError(f"{schema.name}: unexpected schema failures\n{unexpected.head(20).to_string()}")
    parts = [_column_problems(cases[by_column], table, households)]
    parts.append(_row_rule_problems(cases[by_row], rules))
    return pd.concat(parts, ignore_index=True)


def _column_problems(cases: pd.DataFrame, table: Table, households: HouseholdIds | None) -> pd.DataFrame:
    reason = cases["check"].astype("string")
    reason = reason.mask(reason == "not_nullable", MISSING_VALUE)
    dtype_failure = reason.str.startswith("dtype(")
    detail = pd.Series("", index=cases.index, dtype="string")
    detail = detail.mask(dtype_failure, "expected " + reason)
    reason = reason.mask(dtype_failure, WRONG_DTYPE)
    for column in table.columns:
        if column.categories:
            allowed = "allowed: " + ", ".join(column.categories)
            detail = detail.mask((cases["column"] == column.name) & (reason == NOT_ALLOWED_CATEGORY), allowed)
    if households is not None and len(households.quarantined):
        unknown = reason == UNKNOWN_HOUSEHOLD
        of_quarantined = unknown & cases["failure_case"].isin(households.quarantined)
        detail = detail.mask(of_quarantined, "the households row with this id is quarantined")
    return pd.DataFrame(
        {
            "row": cases["index"].astype("int64").to_numpy(),
            "column": cases["column"].astype("string").to_numpy(),
            "value": pd.array([pd.NA] * len(cases), dtype="string"),
            "reason": reason.to_numpy(),
            "detail": detail.to_numpy(),
            "related": "",
        }
    ).astype({"reason": "string", "detail": "string"})


def _row_rule_problems(cases: pd.DataFrame, rules: dict[str, RowRule]) -> pd.DataFrame:
    # pandera reports a frame-wide check once per column of each failing row.
    failed = cases.drop_duplicates(["index", "check"])
    checks = failed["check"].astype(str)
    return pd.DataFrame(
        {
            "row": failed["index"].astype("int64").to_numpy(),
            "column": [rules[check].column for check in checks],
            "value": pd.NA,
            "reason": checks.to_numpy(),
            "detail": pd.NA,
            "related": [", ".join(rules[check].related) for check in checks],
        }
    ).astype({"column": "string", "value": "string", "reason": "string", "detail": "string"})


def _duplicate_problems(typed: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Return a problem for every row whose key an earlier row already has."""
    key = list(table.key)
    keys = typed[key]
    try:
        key_schema(table).validate(keys, lazy=True)
    except SchemaErrors as error:
        cases = error.failure_cases
    else:
        return _working(empty_problems())
    rows = np.unique(cases["index"].astype("int64").to_numpy())
    # The first row of each repeated key is among the rows sharing the first key column with a repeat.
    candidates = keys[keys[key[0]].isin(keys.loc[rows, key[0]].unique())]
    repeated = candidates[candidates.duplicated(keep=False)]
    row_numbers = repeated.index.to_series(index=repeated.index)
    first_rows = row_numbers.groupby([repeated[name] for name in key], dropna=False).transform("first")
    return pd.DataFrame(
        {
            "row": rows,
            "column": ", ".join(key),
            "value": pd.NA,
            "reason": f"{DUPLICATE_KEY} ({', '.join(key)})",
            "detail": "first at row " + first_rows.loc[rows].astype("string").to_numpy(),
            "related": "",
        }
    ).astype({"column": "string", "value": "string", "reason": "string", "detail": "string"})


def _fill_from_file(problems: pd.DataFrame, raw: RawTable) -> pd.DataFrame:
    """Fill ``value`` with the cells as read and add the related cells to ``detail``."""
    problems = problems.copy()
    missing_value = problems["value"].isna()
    for column_list, group in problems[missing_value].groupby("column"):
        rows = group["row"].to_numpy()
        texts = [raw.cell_text(rows, name).to_numpy() for name in str(column_list).split(", ")]
        problems.loc[group.index, "value"] = _join_columns(texts)
    with_related = problems["related"] != ""
    for related, group in problems[with_related].groupby("related"):
        rows = group["row"].to_numpy()
        parts = [name + " = " + raw.cell_text(rows, name).to_numpy() for name in str(related).split(", ")]
        problems.loc[group.index, "detail"] = _join_columns(parts)
    problems["detail"] = problems["detail"].fillna("")
    return problems.drop(columns="related").astype({"value": "string", "detail": "string"})


def _join_columns(columns: list[np.ndarray]) -> np.ndarray | list[str]:
    """Join text arrays element-wise with ", "; a single array is returned as it is."""
    if len(columns) == 1:
        return columns[0]
    return [", ".join(parts) for parts in zip(*columns)]
