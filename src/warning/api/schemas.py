"""Request and response bodies of the HTTP API.

The row models of a household history are generated from the data contract
(``warning.contract.TABLES``), so the API accepts exactly the columns,
categories and bounds that ingest accepts. Columns without a contract bound
get the API's own bound (``FALLBACK_BOUNDS``), so that no value overflows the
store's 64-bit columns. Months are ``YYYY-MM`` between 1900-01 and the current
month. Ids must not contain control characters or be raw resident identity
numbers (``check_hashed_id``).
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
)
from pydantic_core import PydanticCustomError

from warning.contract import EARLIEST_YEAR, TABLES, Column
from warning.feeds.identity import contains_identity_number
from warning.labels import TARGETS

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
REGION_CODE_PATTERN = r"^[0-9]{6}$"
# The tables that hold a household's history, keyed by household_id.
HISTORY_TABLES = tuple(
    name for name, table in TABLES.items() if name != "households" and "household_id" in table.column_names
)

# (minimum, maximum) by column kind, for contract columns that set no bound:
# household member counts, calendar years and amounts in yuan.
FALLBACK_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "int": (0, 100),
    "year": (EARLIEST_YEAR, 2100),
    "float": (-1e9, 1e9),
}
# The newest calendar month is the one at UTC+14, the first time zone to enter
# a month, so no client is rejected for sending its own current month.
EARLIEST_TIME_ZONE = timedelta(hours=14)

Target = Literal[TARGETS]  # type: ignore[valid-type]


def current_month() -> str:
    """Return the newest calendar month anywhere on Earth, as ``YYYY-MM``."""
    return (datetime.now(UTC) + EARLIEST_TIME_ZONE).strftime("%Y-%m")


def check_month_range(month: str) -> str:
    """Reject a ``YYYY-MM`` month before 1900-01 or after the current month."""
    if int(month[:4]) < EARLIEST_YEAR:
        raise ValueError(f"month {month} is before {EARLIEST_YEAR}-01")
    newest = current_month()
    if month > newest:
        raise ValueError(f"month {month} is in the future; the current month is {newest}")
    return month


Month = Annotated[str, StringConstraints(pattern=MONTH_PATTERN), AfterValidator(check_month_range)]


def check_hashed_id(value: str, info: ValidationInfo) -> str:
    """Reject an id that contains a control character or has the shape of a resident identity number.

    Ids must be hashed before they reach the service. The error message
    never contains the number, and the 422 handler masks it in the input.
    """
    return reject_unhashed_id(value, info.field_name or "id")


def reject_unhashed_id(value: str, field: str) -> str:
    """Raise the errors of ``check_hashed_id`` for the id field ``field``."""
    for position, character in enumerate(value):
        if unicodedata.category(character) == "Cc":
            raise PydanticCustomError(
                "control_character",
                "{field} contains the control character {character} at position {position}. "
                "Ids must not contain control characters",
                {"field": field, "character": f"U+{ord(character):04X}", "position": position},
            )
    if contains_identity_number(value):
        noun = field.removesuffix("_id")
        raise PydanticCustomError(
            "identity_number",
            f"{noun} ids must be the hashed ids of the store, not resident identity numbers. "
            "Look up the hashed id with povwarn feeds lookup NUMBER",
            {"field": field},
        )
    return value


def check_model_version(value: str | None) -> str | None:
    """Reject a model version that is or contains a resident identity number, so responses never echo one."""
    if value is not None and contains_identity_number(value):
        raise PydanticCustomError(
            "identity_number", "model_version contains a resident identity number; give a model version"
        )
    return value


def check_hashed_household_id(value: str) -> str:
    """``check_hashed_id`` for a household id in a URL path, where the validator is not told the field name."""
    return reject_unhashed_id(value, "household_id")


HashedId = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(check_hashed_id)]
HashedHouseholdId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(check_hashed_household_id)
]


def reject_boolean_integer(value: Any) -> Any:
    """Reject a JSON boolean, which pydantic's lax mode would read as the integer 0 or 1.

    Unlike strict mode, this keeps accepting 3.0 and "3" as 3, and keeps
    the finite-number error for NaN.
    """
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not a boolean")
    return value


def reject_boolean_number(value: Any) -> Any:
    """Reject a JSON boolean, which pydantic's lax mode would read as the number 0.0 or 1.0."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number, not a boolean")
    return value


# Checks that run before a numeric column's own validation, by column kind.
BOOLEAN_CHECKS = {
    "int": BeforeValidator(reject_boolean_integer),
    "year": BeforeValidator(reject_boolean_integer),
    "float": BeforeValidator(reject_boolean_number),
}


def _annotation(column: Column) -> Any:
    if column.kind == "category":
        return Literal[column.categories]  # type: ignore[valid-type]
    if column.kind == "month":
        return Month
    if column.kind == "region":
        return Annotated[str, StringConstraints(pattern=REGION_CODE_PATTERN)]
    if column.kind == "id":
        return HashedId
    if column.kind == "text":
        return Annotated[str, StringConstraints(max_length=256)]
    if column.kind in ("int", "year"):
        return int
    if column.kind == "float":
        return float
    if column.kind == "bool":
        return bool
    raise ValueError(f"contract column {column.name!r} has kind {column.kind!r}, which the API cannot map")


def _field(column: Column) -> tuple[Any, Any]:
    annotation = _annotation(column)
    constraints: dict[str, Any] = {"description": column.description or None}
    fallback_min, fallback_max = FALLBACK_BOUNDS.get(column.kind, (None, None))
    minimum = column.min_value if column.min_value is not None else fallback_min
    maximum = column.max_value if column.max_value is not None else fallback_max
    if minimum is not None:
        constraints["ge"] = minimum
    if maximum is not None:
        constraints["le"] = maximum
    if column.kind == "float":
        constraints["allow_inf_nan"] = False
    if column.nullable:
        annotation = annotation | None
    # The check wraps the whole type, None included, because inside ``float | None``
    # pydantic 2.14.4 would write the field's bounds to the JSON schema as raw
    # ge and le keys instead of minimum and maximum.
    check = BOOLEAN_CHECKS.get(column.kind)
    if check is not None:
        annotation = Annotated[annotation, check]
    if column.nullable:
        return annotation, Field(None, **constraints)
    return annotation, Field(..., **constraints)


def _model_name(table_name: str) -> str:
    singular = {
        "events": "event",
        "medical_claims": "medical_claim",
        "registrations": "registration",
        "households": "household",
    }
    return "".join(part.capitalize() for part in singular.get(table_name, table_name).split("_")) + "Row"


def row_model(table_name: str, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """Generate the pydantic model of one contract table's rows, without the ``exclude`` columns."""
    table = TABLES[table_name]
    fields = {column.name: _field(column) for column in table.columns if column.name not in exclude}
    model = create_model(  # type: ignore[call-overload]
        _model_name(table_name),
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"One row of the {table_name} table ({table.grain}).",
        **fields,
    )
    return model


HouseholdRow = row_model("households")
HISTORY_ROW_MODELS: dict[str, type[BaseModel]] = {
    name: row_model(name, exclude=("household_id",)) for name in HISTORY_TABLES
}


def _history_field(name: str) -> tuple[Any, Any]:
    row = HISTORY_ROW_MODELS[name]
    description = f"{TABLES[name].grain} rows of the {name} table; household_id is given once in household"
    if TABLES[name].required:
        return list[row], Field(..., min_length=1, description=description)  # type: ignore[valid-type]
    return list[row], Field(default_factory=list, description=description)  # type: ignore[valid-type]


HouseholdHistory: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "HouseholdHistory",
    __config__=ConfigDict(extra="forbid"),
    __doc__="One household's attributes and its history in every contract table.",
    household=(HouseholdRow, Field(..., description="the households row")),
    **{name: _history_field(name) for name in HISTORY_TABLES},
)


def predict_request_model(max_households: int) -> type[BaseModel]:
    """Generate the predict request body with the configured maximum number of households."""
    return create_model(  # type: ignore[call-overload]
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Household histories to score, each at the latest month of its income.",
        households=(
            list[HouseholdHistory],  # type: ignore[valid-type]
            Field(..., min_length=1, max_length=max_households),
        ),
    )


# Responses.


class Cause(BaseModel):
    """A cause group that raises a household's risk."""

    group: str = Field(description="cause group id, as in the cause-groups file")
    label: str
    contribution: float = Field(description="sum of the group's TreeSHAP contributions, in log-odds")
    share: float = Field(description="contribution over the sum of the household's positive contributions")
    measures: list[str] = Field(description="assistance measures that address this cause")


class HouseholdPrediction(BaseModel):
    """The risk of one household at its cut-off."""

    household_id: str
    cutoff: str = Field(description="YYYY-MM, the latest month of the household's income")
    target: Target = Field(description="relapse if registered poor or exited by the cut-off, else new_poverty")
    probability: float | None = Field(description="probability of the applicable target")
    probabilities: dict[str, float | None] = Field(description="probability of each target")
    band: str | None
    below_line_now: bool | None = Field(
        description="trailing 12-month income per person is under the line; null with under 12 months"
    )
    top_causes: list[Cause]
    measures: list[str] = Field(description="measures of the top causes, without repeats")
    model_version: str


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[HouseholdPrediction]


class ScoreItem(BaseModel):
    """One row of the score database."""

    household_id: str
    region_code: str
    township_code: str | None
    urban_rural: str
    cutoff: str = Field(description="YYYY-MM")
    target: str
    probability: float | None
    relapse_probability: float | None
    new_poverty_probability: float | None
    sudden_hardship_probability: float | None
    band: str | None
    top_causes: list[Cause]
    measures: list[str]
    below_line_now: bool | None
    model_version: str
    scored_at: str = Field(description="ISO 8601 time the batch was scored")


class PageLinks(BaseModel):
    next: str | None = None
    previous: str | None = None


class ScoresPage(BaseModel):
    """One page of scores, sorted by probability from highest."""

    cutoff: str | None = Field(description="YYYY-MM; null when the database contains no scores")
    model_version: str | None
    total: int = Field(description="rows matching the filters, over all pages")
    limit: int
    offset: int
    items: list[ScoreItem]
    links: PageLinks


class HouseholdScores(BaseModel):
    """The scores of one household, one per cut-off, newest cut-off first."""

    household_id: str
    items: list[ScoreItem] = Field(
        description="one score per cut-off: that of the model that scored the cut-off most recently"
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    model_loaded: bool
    model_version: str | None
    targets: list[str]
    model_error: str | None = Field(None, description="why no model is loaded")
    database_url: str = Field(description="score database URL, password masked")
    database_reachable: bool
