"""POST /v1/predict: score household histories sent in the request."""

# No ``from __future__ import annotations`` here: the request body model is
# generated per app, and FastAPI must see the real class in the signature.

import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from warning.api.deps import ServiceState, StateDep
from warning.api.histories import cross_field_errors, history_store
from warning.api.schemas import Cause, HouseholdPrediction, PredictResponse, predict_request_model
from warning.bundle import ModelBundle
from warning.labels import ALL_TARGETS
from warning.panel import Panel
from warning.score import score_panel

logger = logging.getLogger(__name__)


def _optional_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _prediction(row: Any) -> HouseholdPrediction:
    return HouseholdPrediction(
        household_id=row.household_id,
        cutoff=row.cutoff.strftime("%Y-%m"),
        target=row.target,
        probability=_optional_float(row.probability),
        probabilities={target: _optional_float(getattr(row, f"{target}_probability")) for target in ALL_TARGETS},
        band=row.band,
        below_line_now=row.below_line_now,
        top_causes=[Cause(**cause) for cause in row.top_causes],
        measures=row.measures,
        model_version=row.model_version,
    )


def predict_histories(
    histories: list[dict[str, Any]], bundle: ModelBundle, state: ServiceState
) -> list[HouseholdPrediction]:
    """Score each history at the latest month of its income, in request order.

    Households are scored in groups that share their first and last income
    month, so a household's panel grid, and so its features, are the same as
    if it were sent alone.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for index, history in enumerate(histories):
        months = [row["month"] for row in history["income"]]
        groups.setdefault((min(months), max(months)), []).append(index)

    predictions: dict[int, HouseholdPrediction] = {}
    settings = state.settings
    for indices in groups.values():
        store = history_store([histories[index] for index in indices], bundle.period)
        panel = Panel(store, lines=bundle.lines)
        frame = score_panel(
            panel,
            bundle,
            state.catalogue,
            settings.band_thresholds,
            settings.top_causes,
            min_cause_share=settings.min_cause_share,
        )
        rows = {row.household_id: row for row in frame.itertuples(index=False)}
        for index in indices:
            household_id = histories[index]["household"]["household_id"]
            predictions[index] = _prediction(rows[household_id])
    return [predictions[index] for index in range(len(histories))]


def build_predict_router(max_households: int) -> APIRouter:
    """Create the predict route with a request body that accepts at most ``max_households`` households."""
    request_model = predict_request_model(max_households)
    router = APIRouter(tags=["predict"])

    @router.post(
        "/v1/predict",
        response_model=PredictResponse,
        summary="Predict the risk of household histories",
        responses={503: {"description": "no model is loaded: run povwarn train"}},
    )
    def predict(
        body: Annotated[request_model, Body()],  # type: ignore[valid-type]
        request: Request,
        state: StateDep,
    ) -> PredictResponse:
        """Score each household at the latest month of its income, with its top causes and measures."""
        # A plain def runs in the thread pool: the booster call would block the event loop.
        bundle = state.bundle
        if bundle is None:
            raise HTTPException(status_code=503, detail=f"no model: run povwarn train ({state.bundle_error})")
        histories = [history.model_dump() for history in body.households]  # type: ignore[attr-defined]
        errors = cross_field_errors(histories, bundle.lines)
        if errors:
            raise RequestValidationError(errors)
        predictions = predict_histories(histories, bundle, state)
        logger.debug("Request %s: predicted %d households", request.state.request_id, len(predictions))
        return PredictResponse(model_version=bundle.version, predictions=predictions)

    return router

