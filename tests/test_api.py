"""Tests for the HTTP API: predict, scores, health, metrics, the OpenAPI document and the examples."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402
from test_score import BANDS, read_scores, train_test_bundle  # noqa: E402

from warning.api import create_app, export_openapi  # noqa: E402
from warning.api.schemas import HISTORY_TABLES, check_month_range, current_month  # noqa: E402
from warning.bundle import ModelBundle  # noqa: E402
from warning.contract import TABLES  # noqa: E402
from warning.score import score  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.store import Store  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLES = REPOSITORY / "api" / "examples"
MAX_HOUSEHOLDS = 5


def _json_value(value: Any, kind: str) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if kind == "month":
        return pd.Timestamp(value).strftime("%Y-%m")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_rows(frame: pd.DataFrame, table: str) -> list[dict[str, Any]]:
    columns = [column for column in TABLES[table].columns if column.name != "household_id"]
    return [
        {column.name: _json_value(row[column.name], column.kind) for column in columns}
        for row in frame.to_dict("records")
    ]


def history_of(store: Store, household_id: str) -> dict[str, Any]:
    """Return one household's rows from a store in the predict request shape."""
    households = store.table("households")
    household = households[households["household_id"] == household_id]
    history: dict[str, Any] = {"household": {"household_id": household_id} | _json_rows(household, "households")[0]}
    for table in HISTORY_TABLES:
        frame = store.table(table)
        history[table] = _json_rows(frame[frame["household_id"] == household_id], table)
    return history


@pytest.fixture(scope="module")
def store() -> Store:
    return make_store(households=60, months=36, seed=2)


@pytest.fixture(scope="module")
def work_dir(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder with a champion bundle and the batch scores of the store."""
    folder = tmp_path_factory.mktemp("work")
    train_test_bundle(store, folder / "models" / "champion", version="api-1")
    return folder


def without_registry(work_dir: Path) -> str:
    """Return a tracking URI of a registry that does not exist, so the champion comes from the folder."""
    return f"sqlite:///{work_dir / 'mlruns' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def settings(work_dir: Path) -> Settings:
    return Settings(
        work_dir=work_dir,
        mlflow_tracking_uri=without_registry(work_dir),
        band_thresholds=BANDS,
        top_causes=3,
        max_households_per_request=MAX_HOUSEHOLDS,
    )


@pytest.fixture(scope="module")
def bundle(work_dir: Path) -> ModelBundle:
    return ModelBundle.load(work_dir / "models" / "champion")


@pytest.fixture(scope="module")
def batch(store: Store, bundle: ModelBundle, settings: Settings) -> pd.DataFrame:
    score(store, bundle, settings)
    return read_scores(settings).set_index("household_id")


@pytest.fixture(scope="module")
def client(settings: Settings, batch: pd.DataFrame) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def history(store: Store) -> dict[str, Any]:
    return history_of(store, "h00003")


def error_locations(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


# Predict.


def test_predict_one_household(client: TestClient, history: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "api-1"
    [prediction] = body["predictions"]
    assert prediction["household_id"] == "h00003"
    assert prediction["cutoff"] == "2023-12"
    assert 0.0 <= prediction["probability"] <= 1.0
    assert set(prediction["probabilities"]) == {"relapse", "new_poverty", "sudden_hardship"}
    assert prediction["probability"] == prediction["probabilities"][prediction["target"]]
    assert prediction["band"] in BANDS
    assert len(prediction["top_causes"]) <= 3
    for cause in prediction["top_causes"]:
        assert set(cause) == {"group", "label", "contribution", "share", "measures"}
        assert cause["contribution"] > 0


def test_predict_matches_batch_scores(client: TestClient, store: Store, batch: pd.DataFrame) -> None:
    household_ids = ["h00000", "h00007", "h00011", "h00020", "h00042"]
    histories = [history_of(store, household_id) for household_id in household_ids]

    response = client.post("/v1/predict", json={"households": histories})

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [prediction["household_id"] for prediction in predictions] == household_ids
    for prediction in predictions:
        expected = batch.loc[prediction["household_id"]]
        assert prediction["target"] == expected["target"]
        assert prediction["probability"] == pytest.approx(expected["probability"], abs=1e-12)
        assert prediction["probabilities"]["relapse"] == pytest.approx(expected["relapse_probability"], abs=1e-12)
        assert prediction["probabilities"]["new_poverty"] == pytest.approx(expected["new_poverty_probability"], abs=1e-12)
        assert prediction["band"] == expected["band"]
        assert prediction["below_line_now"] == bool(expected["below_line_now"])
        assert prediction["top_causes"] == json.loads(expected["top_causes"])
        assert prediction["measures"] == json.loads(expected["measures"])


def test_predict_household_alone_or_in_group(client: TestClient, store: Store, history: dict[str, Any]) -> None:
    shorter = history_of(store, "h00005")
    shorter["income"] = [row for row in shorter["income"] if row["month"] <= "2023-06"]

    alone = client.post("/v1/predict", json={"households": [history]}).json()["predictions"][0]
    grouped = client.post("/v1/predict", json={"households": [shorter, history]}).json()["predictions"]

    assert grouped[1] == alone
    assert grouped[0]["cutoff"] == "2023-06"


def test_predict_without_optional_tables(client: TestClient, history: dict[str, Any]) -> None:
    minimal = {"household": history["household"], "income": history["income"]}

    response = client.post("/v1/predict", json={"households": [minimal]})

    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["target"] == "new_poverty"


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda h: h["household"].pop("members"), ["body", "households", 0, "household", "members"]),
        (lambda h: h.pop("income"), ["body", "households", 0, "income"]),
        (lambda h: h["household"].update(urban_rural="suburban"), ["body", "households", 0, "household", "urban_rural"]),
        (lambda h: h["income"][3].update(source="lottery"), ["body", "households", 0, "income", 3, "source"]),
        (lambda h: h["income"][0].update(month="2023-13"), ["body", "households", 0, "income", 0, "month"]),
        (lambda h: h["income"][0].update(month="2023/01"), ["body", "households", 0, "income", 0, "month"]),
        (lambda h: h["household"].update(members=0), ["body", "households", 0, "household", "members"]),
        (lambda h: h["household"].update(region_code="5201"), ["body", "households", 0, "household", "region_code"]),
        (lambda h: h["medical_claims"].insert(0, {"month": "2023-01", "category": "inpatient", "total_cost": -1.0,
                                                  "reimbursed": 0.0, "out_of_pocket": 0.0}),
         ["body", "households", 0, "medical_claims", 0, "total_cost"]),
        (lambda h: h["household"].update(nickname="x"), ["body", "households", 0, "household", "nickname"]),
    ],
    ids=["missing-members", "missing-income", "bad-urban-rural", "bad-source", "month-13", "month-slash",
         "members-zero", "short-region", "negative-cost", "unknown-field"],
)
def test_predict_rejects_invalid_field(
    client: TestClient, history: dict[str, Any], change: Any, location: list[Any]
) -> None:
    change(history)

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    assert location in error_locations(response)


def test_predict_rejects_too_many_households(client: TestClient, store: Store) -> None:
    histories = [history_of(store, f"h{index:05d}") for index in range(MAX_HOUSEHOLDS + 1)]

    response = client.post("/v1/predict", json={"households": histories})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "households"]
    assert str(MAX_HOUSEHOLDS) in error["msg"]


def test_predict_rejects_labour_capable_above_members(client: TestClient, history: dict[str, Any]) -> None:
    history["household"].update(members=2, labour_capable=3)

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "households", 0, "household", "labour_capable"]
    assert "labour_capable (3) exceeds members (2)" in error["msg"]
    assert error["input"] == 3


def test_predict_rejects_region_without_line(client: TestClient, history: dict[str, Any]) -> None:
    history["household"].update(region_code="110101", township_code="110101001", urban_rural="urban")

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "households", 0, "household", "region_code"]
    assert "'110101'" in error["msg"]
    assert error["input"] == "110101"


def test_predict_rejects_cross_field_problems(client: TestClient, store: Store, history: dict[str, Any]) -> None:
    history["household"]["township_code"] = "620102001"
    history["income"].append(dict(history["income"][0]))
    history["employment"].append(
        {"person_id": "p-1", "kind": "migrant", "sector": None, "start_month": "2023-05", "end_month": "2023-02"}
    )
    duplicate = history_of(store, "h00003")

    response = client.post("/v1/predict", json={"households": [history, duplicate]})

    assert response.status_code == 422
    locations = error_locations(response)
    assert ["body", "households", 0, "household", "township_code"] in locations
    assert ["body", "households", 0, "income", len(history["income"]) - 1] in locations
    assert ["body", "households", 0, "employment", len(history["employment"]) - 1, "end_month"] in locations
    assert ["body", "households", 1, "household", "household_id"] in locations


HOUSEHOLD_ID_IS_IDENTITY = (
    "household ids must be the hashed ids of the store, not resident identity numbers. "
    "Look up the hashed id with povwarn feeds lookup NUMBER"
)


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("110101199003071234", "110101********1234"),
        ("11010119900307123X", "110101********123X"),
        ("11010119900307123x", "110101********123x"),
        ("110101199003071230", "110101********1230"),
    ],
    ids=["digit", "upper-x", "lower-x", "wrong-check-digit"],
)
def test_predict_rejects_identity_number_as_household_id(
    client: TestClient, history: dict[str, Any], number: str, masked: str
) -> None:
    history["household"]["household_id"] = number

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "identity_number"
    assert error["loc"] == ["body", "households", 0, "household", "household_id"]
    assert error["msg"] == HOUSEHOLD_ID_IS_IDENTITY
    assert error["input"] == masked
    assert error["ctx"] == {"field": "household_id"}
    assert number not in response.text


def test_predict_masks_identity_number_everywhere(
    client: TestClient, history: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    number = "11010119900307123X"
    history["household"]["household_id"] = number
    del history["household"]["members"]

    with caplog.at_level("WARNING", logger="warning.api.app"):
        response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    errors = {tuple(error["loc"]): error for error in response.json()["detail"]}
    missing = errors[("body", "households", 0, "household", "members")]
    assert missing["type"] == "missing"
    assert missing["input"]["household_id"] == "110101********123X"
    assert number not in response.text
    assert "rejected with 422" in caplog.text
    assert number not in caplog.text


def test_predict_rejects_identity_number_as_person_id(client: TestClient, history: dict[str, Any]) -> None:
    history["insurance"][0]["person_id"] = "110101199003071234"

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "identity_number"
    assert error["loc"] == ["body", "households", 0, "insurance", 0, "person_id"]
    assert error["msg"] == HOUSEHOLD_ID_IS_IDENTITY.replace("household ids", "person ids")
    assert error["input"] == "110101********1234"


@pytest.mark.parametrize(
    ("household_id", "character", "position"),
    [
        ("h\u000000003", "U+0000", 1),
        ("h00003\n", "U+000A", 6),
        ("\th00003", "U+0009", 0),
        ("h000\x1f03", "U+001F", 4),
        ("h00003\x7f", "U+007F", 6),
        ("h00\u008503", "U+0085", 3),
    ],
    ids=["nul", "newline", "tab", "unit-separator", "delete", "next-line"],
)
def test_predict_rejects_control_character_in_household_id(
    client: TestClient, history: dict[str, Any], household_id: str, character: str, position: int
) -> None:
    history["household"]["household_id"] = household_id

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "control_character"
    assert error["loc"] == ["body", "households", 0, "household", "household_id"]
    assert error["msg"] == (
        f"household_id contains the control character {character} at position {position}. "
        "Ids must not contain control characters"
    )
    assert error["input"] == household_id
    assert error["ctx"] == {"field": "household_id", "character": character, "position": position}


@pytest.mark.parametrize(
    "household_id",
    [
        "11010119900307123",
        "1101011990030712345",
        "11010119900307123Y",
        "ae03a4e95e46da16b53d1fd3",
        "户-00003",
    ],
    ids=["17-digits", "19-digits", "letter-y", "hex-hash", "non-ascii"],
)
def test_predict_accepts_other_household_ids(
    client: TestClient, history: dict[str, Any], household_id: str
) -> None:
    history["household"]["household_id"] = household_id

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["household_id"] == household_id


def post_raw(client: TestClient, body: dict[str, Any]) -> Any:
    """Post a body through json.dumps, which writes NaN and Infinity literals."""
    return client.post("/v1/predict", content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_predict_rejects_non_finite_numbers(client: TestClient, history: dict[str, Any], value: float) -> None:
    history["household"]["members"] = value
    history["income"][0]["amount"] = value

    response = post_raw(client, {"households": [history]})

    assert response.status_code == 422
    errors = {tuple(error["loc"]): error for error in response.json()["detail"]}
    members = errors[("body", "households", 0, "household", "members")]
    amount = errors[("body", "households", 0, "income", 0, "amount")]
    assert "finite number" in members["msg"]
    assert "finite number" in amount["msg"]
    assert members["input"] == str(value)
    assert amount["input"] == str(value)


def test_validation_error_shortens_large_input(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"households": "x" * 100_000})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "households"]
    assert len(error["input"]) < 250
    assert error["input"].endswith("... (100002 characters)")
    assert len(response.content) < 1000


def test_validation_error_lists_at_most_100_errors(client: TestClient, history: dict[str, Any]) -> None:
    history["income"] = [{"month": "2023-01", "source": f"source-{index}", "amount": 1.0} for index in range(150)]

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    details = response.json()["detail"]
    assert len(details) == 101
    assert details[-1]["type"] == "too_many_errors"
    assert details[-1]["msg"].startswith("50 more errors are not listed")


def _set_history_value(history: dict[str, Any], table: str, column: str, value: Any) -> list[Any]:
    """Set one value of the household or of the first row of a table; return its error location."""
    if table == "household":
        history["household"][column] = value
        return ["body", "households", 0, "household", column]
    history[table][0][column] = value
    return ["body", "households", 0, table, 0, column]


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("household", "members", 2**63),
        ("household", "members", 101),
        ("household", "children_in_school", 2**63),
        ("household", "elderly", 2**64 + 5),
        ("insurance", "year", 2**63),
        ("insurance", "year", 1899),
        ("insurance", "year", 2101),
        ("income", "amount", 1e12),
        ("income", "amount", -1e12),
        ("medical_claims", "total_cost", 1e300),
    ],
)
def test_predict_rejects_out_of_range_number(
    client: TestClient, history: dict[str, Any], table: str, column: str, value: float
) -> None:
    location = _set_history_value(history, table, column, value)

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    assert location in error_locations(response)


INTEGER_FIELDS = [
    ("household", "members"),
    ("household", "labour_capable"),
    ("household", "disabled"),
    ("household", "elderly"),
    ("household", "children_in_school"),
    ("insurance", "year"),
]


def test_integer_fields_match_contract() -> None:
    contract = {
        ("household" if table.name == "households" else table.name, column.name)
        for table in TABLES.values()
        if table.name == "households" or table.name in HISTORY_TABLES
        for column in table.columns
        if column.kind in ("int", "year")
    }

    assert contract == set(INTEGER_FIELDS)


@pytest.mark.parametrize("value", [True, False], ids=["true", "false"])
@pytest.mark.parametrize(("table", "column"), INTEGER_FIELDS, ids=[column for _, column in INTEGER_FIELDS])
def test_predict_rejects_boolean_integer(
    client: TestClient, history: dict[str, Any], table: str, column: str, value: bool
) -> None:
    location = _set_history_value(history, table, column, value)

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "int_type"
    assert error["loc"] == location
    assert error["msg"] == "Input should be a valid integer, not a boolean"
    assert error["input"] is value


def test_predict_accepts_integral_float_count(client: TestClient, history: dict[str, Any]) -> None:
    history["household"]["members"] = float(history["household"]["members"])

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 200, response.text


NUMBER_FIELDS = [
    ("income", "amount"),
    ("medical_claims", "total_cost"),
    ("medical_claims", "reimbursed"),
    ("medical_claims", "out_of_pocket"),
    ("assistance", "amount"),
    ("events", "loss_amount"),
]


def test_number_fields_match_contract() -> None:
    contract = {
        (table.name, column.name)
        for table in TABLES.values()
        if table.name in HISTORY_TABLES
        for column in table.columns
        if column.kind == "float"
    }

    assert contract == set(NUMBER_FIELDS)


@pytest.mark.parametrize("value", [True, False], ids=["true", "false"])
@pytest.mark.parametrize(
    ("table", "column"), NUMBER_FIELDS, ids=[f"{table}-{column}" for table, column in NUMBER_FIELDS]
)
def test_predict_rejects_boolean_number(
    client: TestClient, store: Store, table: str, column: str, value: bool
) -> None:
    # h00004 has rows in every history table.
    history = history_of(store, "h00004")
    history[table][0][column] = value

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "float_type"
    assert error["loc"] == ["body", "households", 0, table, 0, column]
    assert error["msg"] == "Input should be a valid number, not a boolean"
    assert error["input"] is value


@pytest.mark.parametrize(
    ("month", "message"),
    [("2999-12", "month 2999-12 is in the future"), ("1899-12", "month 1899-12 is before 1900-01")],
)
def test_predict_rejects_month_out_of_range(
    client: TestClient, history: dict[str, Any], month: str, message: str
) -> None:
    history["income"].append({"month": month, "source": "wage", "amount": 100.0})
    history["medical_claims"][0]["month"] = month

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    errors = {tuple(error["loc"]): error["msg"] for error in response.json()["detail"]}
    income_position = len(history["income"]) - 1
    assert message in errors[("body", "households", 0, "income", income_position, "month")]
    assert message in errors[("body", "households", 0, "medical_claims", 0, "month")]


def test_current_month_is_accepted() -> None:
    newest = current_month()
    now = datetime.now(UTC).strftime("%Y-%m")

    assert newest >= now
    assert check_month_range(newest) == newest
    assert check_month_range("1900-01") == "1900-01"


def test_predict_rejects_person_in_two_households(client: TestClient, store: Store, history: dict[str, Any]) -> None:
    other = history_of(store, "h00005")
    shared = history["insurance"][0]["person_id"]
    other["employment"].append(
        {"person_id": shared, "kind": "migrant", "sector": None, "start_month": "2022-01", "end_month": None}
    )

    response = client.post("/v1/predict", json={"households": [history, other]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "households", 1, "employment", len(other["employment"]) - 1, "person_id"]
    assert f"person_id {shared!r} of household 'h00005'" in error["msg"]
    assert "already given in household 'h00003' at position 0" in error["msg"]
    assert error["input"] == shared


def test_predict_rejects_claim_costs_over_total(client: TestClient, history: dict[str, Any]) -> None:
    history["medical_claims"][0].update(total_cost=100.0, reimbursed=60.0, out_of_pocket=50.0)
    history["medical_claims"][1].update(total_cost=100.0, reimbursed=60.0, out_of_pocket=40.005)

    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "households", 0, "medical_claims", 0, "total_cost"]
    assert "reimbursed (60.0) + out_of_pocket (50.0) = 110.0 exceeds total_cost (100.0)" in error["msg"]
    assert error["input"] == 100.0


def test_predict_rejects_body_over_size_limit(settings: Settings, history: dict[str, Any]) -> None:
    body = json.dumps({"households": [history]}).encode()
    small = settings.model_copy(update={"max_request_bytes": len(body) - 1})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    with TestClient(create_app(small)) as client:
        sized = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        exact = settings.model_copy(update={"max_request_bytes": len(body)})
    with TestClient(create_app(exact)) as client:
        accepted = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})

    assert sized.status_code == 413
    assert "content-length" in sized.request.headers
    assert f"limit of {len(body) - 1} bytes (POVWARN_MAX_REQUEST_BYTES)" in sized.json()["detail"]
    assert streamed.status_code == 413
    assert "content-length" not in streamed.request.headers
    assert "POVWARN_MAX_REQUEST_BYTES" in streamed.json()["detail"]
    assert accepted.status_code == 200, accepted.text


def test_predict_without_model_returns_503(tmp_path: Path, history: dict[str, Any]) -> None:
    settings = Settings(work_dir=tmp_path, mlflow_tracking_uri=without_registry(tmp_path))

    with TestClient(create_app(settings)) as client:
        predict = client.post("/v1/predict", json={"households": [history]})
        health = client.get("/health")

    assert predict.status_code == 503
    assert predict.json()["detail"].startswith("no model: run povwarn train")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["model_loaded"] is False
    assert health.json()["model_version"] is None
    assert "run povwarn train" in health.json()["model_error"]


# Health, metrics and request ids.


def test_health_with_model(client: TestClient, settings: Settings) -> None:
    body = client.get("/health").json()

    assert body["status"] == "ok"
    assert body["model_loaded"] is True
    assert body["model_version"] == "api-1"
    assert body["targets"] == ["relapse", "new_poverty", "sudden_hardship"]
    assert body["database_reachable"] is True
    assert body["scores_available"] is True
    assert body["champion_error"] is None
    assert body["database_url"] == settings.score_database_url


def test_metrics_count_requests_per_route(client: TestClient, history: dict[str, Any]) -> None:
    client.post("/v1/predict", json={"households": [history]})
    client.get("/v1/scores", params={"region_prefix": "x"})

    text = client.get("/metrics").text

    assert 'povwarn_http_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert 'povwarn_http_requests_total{method="GET",route="/v1/scores",status="422"}' in text
    assert 'povwarn_http_request_duration_seconds_count{method="POST",route="/v1/predict"}' in text


def test_request_id_is_echoed(client: TestClient) -> None:
    from_client = client.get("/health", headers={"X-Request-ID": "abc-123"})
    generated = client.get("/health")

    assert from_client.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32


# Scores.


def all_pages(client: TestClient, params: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], list[int]]:
    items: list[dict[str, Any]] = []
    totals = []
    offset = 0
    for _ in range(100):
        page = client.get("/v1/scores", params={**params, "limit": limit, "offset": offset}).json()
        items.extend(page["items"])
        totals.append(page["total"])
        if page["links"]["next"] is None:
            break
        offset += limit
    return items, totals


def test_scores_filter_by_region_prefix(client: TestClient, batch: pd.DataFrame) -> None:
    response = client.get("/v1/scores", params={"region_prefix": "52", "limit": 1000})

    body = response.json()
    expected = batch[batch["region_code"].str.startswith("52")]
    assert response.status_code == 200
    assert body["total"] == len(expected)
    assert body["cutoff"] == "2023-12"
    assert body["model_version"] == "api-1"
    assert {item["household_id"] for item in body["items"]} == set(expected.index)
    assert all(item["region_code"].startswith("52") for item in body["items"])
    assert body["items"][0]["scored_at"].endswith("+00:00")


def test_scores_filter_by_min_probability(client: TestClient, batch: pd.DataFrame) -> None:
    threshold = float(batch["probability"].median())

    body = client.get("/v1/scores", params={"min_probability": threshold, "limit": 1000}).json()

    assert body["total"] == int((batch["probability"] >= threshold).sum())
    probabilities = [item["probability"] for item in body["items"]]
    assert min(probabilities) >= threshold
    assert probabilities == sorted(probabilities, reverse=True)


def test_scores_filter_by_band_and_target(client: TestClient, batch: pd.DataFrame) -> None:
    body = client.get("/v1/scores", params={"band": "high", "target": "relapse", "limit": 1000}).json()

    expected = batch[(batch["band"] == "high") & (batch["target"] == "relapse")]
    assert body["total"] == len(expected)
    assert {item["household_id"] for item in body["items"]} == set(expected.index)


def test_scores_filter_by_below_line_now(client: TestClient, batch: pd.DataFrame) -> None:
    body = client.get("/v1/scores", params={"below_line_now": "false", "limit": 1000}).json()

    expected = batch[batch["below_line_now"] == False]  # noqa: E712 (a nullable column)
    assert body["total"] == len(expected)
    assert {item["household_id"] for item in body["items"]} == set(expected.index)


def test_scores_filter_by_hardship_probability(client: TestClient, batch: pd.DataFrame) -> None:
    threshold = float(batch["sudden_hardship_probability"].median())

    body = client.get("/v1/scores", params={"min_hardship_probability": threshold, "limit": 1000}).json()

    assert body["total"] == int((batch["sudden_hardship_probability"] >= threshold).sum())
    assert min(item["sudden_hardship_probability"] for item in body["items"]) >= threshold


def test_scores_pagination_counts(client: TestClient, batch: pd.DataFrame) -> None:
    items, totals = all_pages(client, {"region_prefix": "62"}, limit=7)

    expected = batch[batch["region_code"].str.startswith("62")]
    assert set(totals) == {len(expected)}
    assert len(items) == len(expected)
    assert len({item["household_id"] for item in items}) == len(expected)
    probabilities = [item["probability"] for item in items]
    assert probabilities == sorted(probabilities, reverse=True)


def test_scores_page_links(client: TestClient, batch: pd.DataFrame) -> None:
    first = client.get("/v1/scores", params={"limit": 10}).json()
    last = client.get("/v1/scores", params={"limit": 10, "offset": 50}).json()

    assert first["links"]["previous"] is None
    assert "offset=10" in first["links"]["next"]
    assert len(last["items"]) == len(batch) - 50
    assert last["links"]["next"] is None
    assert "offset=40" in last["links"]["previous"]


def test_scores_by_cutoff_without_rows(client: TestClient) -> None:
    body = client.get("/v1/scores", params={"cutoff": "2020-01"}).json()

    assert body["total"] == 0
    assert body["items"] == []


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"region_prefix": "52a"}, "region_prefix"),
        ({"band": "severe"}, "band"),
        ({"target": "poverty"}, "target"),
        ({"limit": 1001}, "limit"),
        ({"min_probability": 1.5}, "min_probability"),
        ({"cutoff": "2023-1"}, "cutoff"),
        ({"cutoff": "0000-01"}, "cutoff"),
        ({"cutoff": "1899-12"}, "cutoff"),
        ({"offset": 2**63}, "offset"),
        ({"offset": "1e30"}, "offset"),
        ({"offset": 10**9 + 1}, "offset"),
        ({"offset": -1}, "offset"),
    ],
)
def test_scores_rejects_invalid_query(client: TestClient, params: dict[str, Any], name: str) -> None:
    response = client.get("/v1/scores", params=params)

    assert response.status_code == 422
    assert ["query", name] in error_locations(response)


SCORES_QUERY = [
    "band",
    "below_line_now",
    "cutoff",
    "limit",
    "min_hardship_probability",
    "min_probability",
    "model_version",
    "offset",
    "region_prefix",
    "target",
]


def test_scores_rejects_unknown_query(client: TestClient) -> None:
    response = client.get("/v1/scores", params={"region_code": "999999", "limit": 5})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ["query", "region_code"]
    assert error["input"] == "999999"
    accepted = ", ".join(SCORES_QUERY)
    assert error["msg"] == f"unknown query parameter 'region_code'. Accepted parameters: {accepted}"
    assert error["ctx"] == {"accepted": SCORES_QUERY}


def test_scores_lists_each_unknown_query(client: TestClient) -> None:
    response = client.get("/v1/scores?region_code=52&page=2&page=3&region_prefix=52")

    assert response.status_code == 422
    assert error_locations(response) == [["query", "region_code"], ["query", "page"]]


def test_predict_rejects_unknown_query(client: TestClient, history: dict[str, Any]) -> None:
    response = client.post("/v1/predict", params={"dry_run": "1"}, json={"households": [history]})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "dry_run"]
    assert error["msg"] == "unknown query parameter 'dry_run'. Accepted parameters: none"
    assert error["ctx"] == {"accepted": []}


def test_every_v1_get_rejects_unknown_query(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = [
        path for path, operations in document["paths"].items() if path.startswith("/v1/") and "get" in operations
    ]

    assert paths
    for path in paths:
        parameters = document["paths"][path]["get"].get("parameters", [])
        declared = sorted(parameter["name"] for parameter in parameters if parameter["in"] == "query")
        response = client.get(path, params={"no_such_parameter": "1"})
        assert response.status_code == 422, path
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "no_such_parameter"], path
        assert error["ctx"] == {"accepted": declared}, path


def test_scores_without_database_table(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(work_dir=tmp_path, mlflow_tracking_uri=without_registry(tmp_path)))) as client:
        response = client.get("/v1/scores")
        health = client.get("/health").json()

    assert response.status_code == 503
    assert "run povwarn score" in response.json()["detail"]
    assert health["database_reachable"] is True
    assert health["scores_available"] is False
    assert health["status"] == "degraded"


def test_replaced_database_file_is_read_again(settings: Settings, batch: pd.DataFrame, tmp_path: Path) -> None:
    import shutil

    database = tmp_path / "scores.db"
    shutil.copy(settings.work_dir / "scores.db", database)
    moved = settings.model_copy(update={"database_url": f"sqlite:///{database}"})
    path = f"/v1/households/{batch.index[0]}/scores"
    with TestClient(create_app(moved)) as moved_client:
        before = moved_client.get(path).status_code
        database.rename(tmp_path / "aside.db")
        while_away = moved_client.get(path).status_code
        shutil.copy(tmp_path / "aside.db", database)
        restored = moved_client.get(path).status_code

    assert before == 200
    assert while_away == 503
    assert restored == 200


def test_failed_champion_reported_once(
    settings: Settings, batch: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from warning.api import deps

    app = create_app(settings)
    with TestClient(app) as test_client:
        state = app.state.service
        broken = replace(state, bundle=None, bundle_error="model bundle in models/api-2 could not be loaded: bad")
        loads: list[str] = []

        def load_broken(settings: Settings, engine: object = None) -> deps.ServiceState:
            loads.append("api-2")
            return broken

        monkeypatch.setattr(deps, "current_champion_version", lambda settings: "api-2")
        monkeypatch.setattr(deps, "load_service_state", load_broken)
        first = deps.refreshed_state(state)
        second = deps.refreshed_state(first)
        app.state.service = first
        body = test_client.get("/health").json()

    assert first is not None
    assert first.bundle is state.bundle
    assert second is None
    assert loads == ["api-2"]
    assert body["status"] == "degraded"
    assert body["model_version"] == "api-1"
    assert body["champion_error"] == (
        "champion api-2 could not be loaded, so model api-1 stays in service: "
        "model bundle in models/api-2 could not be loaded: bad"
    )


def test_household_scores_return_the_batch_score(client: TestClient, batch: pd.DataFrame) -> None:
    household_id = batch["probability"].idxmax()
    response = client.get(f"/v1/households/{household_id}/scores")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["household_id"] == household_id
    [item] = body["items"]
    assert item["probability"] == pytest.approx(batch.loc[household_id, "probability"])
    assert item["model_version"] == "api-1"
    assert item["top_causes"] == json.loads(batch.loc[household_id, "top_causes"])
    assert item["measures"] == json.loads(batch.loc[household_id, "measures"])


@pytest.fixture
def rescored_client(settings: Settings, batch: pd.DataFrame, tmp_path: Path) -> Iterator[TestClient]:
    """A client whose database contains two cut-offs, the later one scored by two models."""
    from warning.score.database import make_engine, write_scores

    database = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'scores.db'}"})
    rows = batch.reset_index().drop(columns=["scored_at"])
    rows["top_causes"] = rows["top_causes"].map(json.loads)
    rows["measures"] = rows["measures"].map(json.loads)
    later = rows["cutoff"].iloc[0]
    earlier = (pd.Timestamp(later) - pd.DateOffset(months=3)).date()
    engine = make_engine(database.score_database_url)
    write_scores(engine, rows.assign(cutoff=earlier, probability=0.11), datetime(2024, 1, 5, tzinfo=UTC))
    write_scores(engine, rows, datetime(2024, 4, 5, tzinfo=UTC))
    write_scores(engine, rows.assign(model_version="api-2", probability=0.33), datetime(2024, 4, 6, tzinfo=UTC))
    engine.dispose()
    with TestClient(create_app(database)) as test_client:
        yield test_client


def test_household_scores_newest_cutoff_first(
    rescored_client: TestClient, batch: pd.DataFrame
) -> None:
    household_id = batch.index[0]
    body = rescored_client.get(f"/v1/households/{household_id}/scores").json()

    later = pd.Timestamp(batch["cutoff"].iloc[0])
    earlier = later - pd.DateOffset(months=3)
    assert [item["cutoff"] for item in body["items"]] == [later.strftime("%Y-%m"), earlier.strftime("%Y-%m")]
    assert [item["model_version"] for item in body["items"]] == ["api-2", "api-1"]
    assert [item["probability"] for item in body["items"]] == [0.33, 0.11]


def test_household_scores_limit_counts_cutoffs(rescored_client: TestClient, batch: pd.DataFrame) -> None:
    body = rescored_client.get(f"/v1/households/{batch.index[0]}/scores", params={"limit": 1}).json()

    [item] = body["items"]
    assert item["model_version"] == "api-2"


def test_household_scores_of_unknown_household_is_404(client: TestClient) -> None:
    response = client.get("/v1/households/h99999/scores")

    assert response.status_code == 404
    assert response.json()["detail"].startswith("household h99999 has no scores")


def test_household_scores_reject_identity_number_and_mask_it(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    number = "11010519491231002X"
    with caplog.at_level("WARNING"):
        response = client.get(f"/v1/households/{number}/scores")

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["path", "household_id"]
    assert error["type"] == "identity_number"
    assert error["msg"].startswith("household ids must be the hashed ids of the store")
    assert number not in response.text
    assert number not in caplog.text
    assert "110105********002X" in caplog.text


@pytest.mark.parametrize(
    "written",
    [
        "410105 19920825 0012",
        "410105-19920825-0012",
        "410105.19920825.0012",
        " 410105199208250012",
        "410105199208250012\u200b",
        "\uff14\uff11\uff10\uff11\uff10\uff15\uff11\uff19\uff19\uff12\uff10\uff18\uff12\uff15\uff10\uff10\uff11\uff12",
        "410105,19920825,0012",
        "410105:19920825:0012",
        "410105\u201019920825\u20100012",
        "410105\u221219920825\u22120012",
        "410105\u00ad19920825\u00ad0012",
        "410105\u200e19920825\u200e0012",
        "410105\u201419920825\u20140012",
        "410105\u00b719920825\u00b70012",
        "4\u030110105199208250012",
        "\u0664\u0661\u0660\u0661\u0660\u0665\u0661\u0669\u0669\u0662\u0660\u0668\u0662\u0665\u0660\u0660\u0661\u0662",
        "410105--19920825--0012",
        "410105\u200919920825\u20090012",
    ],
    ids=[
        "spaces", "hyphens", "dots", "leading-space", "zero-width", "full-width", "commas", "colons",
        "unicode-hyphens", "minus-signs", "soft-hyphens", "direction-marks", "em-dashes", "middle-dots",
        "combining-mark", "arabic-indic", "doubled-hyphens", "thin-spaces",
    ],
)
def test_household_scores_reject_identity_number_however_written(client: TestClient, written: str) -> None:
    response = client.get(f"/v1/households/{written}/scores")

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "identity_number"
    assert "19920825" not in response.text
    assert "\u0661\u0669\u0669\u0662" not in response.text


def test_unknown_query_name_with_identity_number_is_masked(client: TestClient) -> None:
    response = client.get("/v1/scores", params={"110105\u00a019491231\u00a0002X": "1"})

    assert response.status_code == 422
    assert "19491231" not in response.text


def test_predict_rejects_identity_number_with_unicode_hyphens(client: TestClient, history: dict[str, Any]) -> None:
    history["household"]["household_id"] = "410105\u201019920825\u20100012"
    response = client.post("/v1/predict", json={"households": [history]})

    assert response.status_code == 422
    assert "19920825" not in response.text


def test_hex_id_with_digit_run_accepted(client: TestClient) -> None:
    # 18 digits whose birth date is not real: part of a hashed id, not an identity number.
    response = client.get("/v1/households/ab410105199213250012cd/scores")

    assert response.status_code == 404


def test_scores_reject_identity_number_as_model_version(client: TestClient) -> None:
    response = client.get("/v1/scores", params={"model_version": "410105199208250012"})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "model_version"]
    assert "410105199208250012" not in response.text


def test_request_id_carrying_identity_number_is_replaced(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "410105199208250012"})

    assert response.headers["x-request-id"] != "410105199208250012"
    assert len(response.headers["x-request-id"]) == 32


def test_database_failure_returns_no_sql(settings: Settings, batch: pd.DataFrame, tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "scores.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE scores (household_id TEXT, cutoff DATE)")
    broken = settings.model_copy(update={"database_url": f"sqlite:///{database}"})
    with TestClient(create_app(broken)) as broken_client:
        response = broken_client.get(f"/v1/households/{batch.index[0]}/scores")

    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"reading the score database sqlite:///{database} failed: no such column: scores.model_version"
    )


def test_log_filter_escapes_and_decodes() -> None:
    import logging

    from warning.api.middleware import MaskIdentityNumbers

    record = logging.LogRecord(
        "warning.api.app", logging.WARNING, __file__, 1, "Request %s %s rejected",
        ("/v1/households/a\x1b[31mRED/scores", "/v1/scores?x=%34%31%30%31%30%35%31%39%39%32%30%38%32%35%30%30%31%32"),
        None,
    )

    assert MaskIdentityNumbers().filter(record)
    assert record.getMessage() == "Request /v1/households/a\\x1b[31mRED/scores /v1/scores?x=410105********0012 rejected"


def test_old_number_inside_id_masked(client: TestClient) -> None:
    import logging

    from warning.api.middleware import MaskIdentityNumbers

    # A 15-digit number has no check character, so inside a longer id it is not rejected,
    # but the 404 and the access log do not show it.
    response = client.get("/v1/households/hh110105491231002/scores")
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s", ("/v1/scores?110105491231002=1",), None
    )

    assert response.status_code == 404
    assert "491231" not in response.text
    assert MaskIdentityNumbers().filter(record)
    assert "491231" not in record.getMessage()


def test_log_filter_masks_odd_separators() -> None:
    import logging

    from warning.api.middleware import MaskIdentityNumbers

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s %s",
        ("/v1/scores?model_version=110105+19491231+002X", "/v1/households/110105--19491231--002X/scores"), None,
    )

    assert MaskIdentityNumbers().filter(record)
    assert "19491231" not in record.getMessage()


def test_log_filter_keeps_hex_ids() -> None:
    import logging

    from warning.api.middleware import MaskIdentityNumbers

    # 18 digits in a row, but 30681871 is no birth date, so this is a hashed id, not a number.
    path = "/v1/households/5139bc756501306818717530/scores"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s", (path,), None)

    assert MaskIdentityNumbers().filter(record)
    assert record.getMessage() == path


def test_household_scores_reject_old_fifteen_digit_number(client: TestClient) -> None:
    response = client.get("/v1/households/620123120307000/scores")

    assert response.status_code == 422
    assert "620123120307000" not in response.text


def test_server_log_filter_masks_identity_numbers() -> None:
    import logging

    from warning.api.middleware import MaskIdentityNumbers

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/households/11010519491231002X/scores?limit=2", "1.1", 422), None,
    )

    assert MaskIdentityNumbers().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/households/110105********002X/scores?limit=2 HTTP/1.1" 422'
    # uvicorn's access formatter unpacks the arguments, so they stay a tuple of five.
    assert len(record.args) == 5


# Settings.


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"high": 2.0, "low": 0.0}, "band 'high' has threshold 2.0"),
        ({"high": float("nan"), "low": 0.0}, "band 'high' has threshold nan"),
        ({"high": 0.5, "low": -0.1}, "band 'low' has threshold -0.1"),
        ({"high": 0.5, "medium": 0.5, "low": 0.0}, "thresholds must be distinct, but [0.5]"),
        ({"high": 0.5, "low": 0.1}, "must include a band starting at 0"),
        ({}, "must name at least one band"),
    ],
    ids=["above-one", "nan", "negative", "duplicate", "no-zero", "empty"],
)
def test_settings_reject_invalid_band_thresholds(thresholds: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(band_thresholds=thresholds)

    assert "POVWARN_BAND_THRESHOLDS" in str(raised.value)
    assert message in str(raised.value)


def test_settings_accept_valid_band_thresholds() -> None:
    settings = Settings(band_thresholds={"high": 1.0, "medium": 0.2, "low": 0.0})

    assert settings.band_thresholds == {"high": 1.0, "medium": 0.2, "low": 0.0}


# Published documents.


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda path: path.name)
def test_example_request_passes_validation(client: TestClient, path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))

    response = client.post("/v1/predict", json=body)

    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(body["households"])


def test_examples_exist() -> None:
    assert len(list(EXAMPLES.glob("*.json"))) >= 2


def test_openapi_document_is_current(tmp_path: Path) -> None:
    written = export_openapi(tmp_path / "openapi.json", Settings())

    current = json.loads(written.read_text(encoding="utf-8"))
    published = json.loads((REPOSITORY / "api" / "openapi.json").read_text(encoding="utf-8"))
    assert current == published, "api/openapi.json is stale: run povwarn export-openapi"
    assert "/v1/predict" in current["paths"]
    assert "/v1/scores" in current["paths"]


def test_docs_page_served_without_internet(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    with TestClient(create_app(settings)) as client:
        page = client.get("/docs")
        script = client.get("/docs/static/swagger-ui-bundle.js")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "cdn.jsdelivr.net" not in page.text
    assert script.status_code == 200
    assert len(script.content) > 100_000
