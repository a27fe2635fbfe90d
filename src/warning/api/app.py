"""The FastAPI application: predict, scores, health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import swagger_ui_bundle
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import warning
from warning.api.deps import RejectUnknownQuery, StateDep, load_service_state, refreshed_state
from warning.api.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    RequestMetrics,
    mask_identity_numbers_in_server_logs,
    request_id_of,
)
from warning.api.predict import build_predict_router
from warning.api.schemas import Health
from warning.api.scores import router as scores_router
from warning.feeds.identity import mask_identities_loosely, mask_likely_identities_in_text
from warning.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """Risk of relapse into poverty and of new poverty for urban and rural households.

`POST /v1/predict` scores household histories sent in the request; `GET /v1/scores`
pages through the batch scores written by `povwarn score`, and
`GET /v1/households/{household_id}/scores` returns one household's. A score supports the
decision of the staff who visit a household and never makes it.
"""


# A 422 response echoes each invalid input, shortened to this many characters
# of JSON, and lists at most MAX_REPORTED_ERRORS errors, so a large invalid
# body does not produce an equally large response.
MAX_INPUT_CHARS = 200
MAX_REPORTED_ERRORS = 100


def _finite_json(value: Any) -> Any:
    """Replace non-finite floats, which JSON cannot encode, by their string, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_json(item) for item in value]
    return value


def _mask_identity_numbers(value: Any) -> Any:
    """Mask every resident identity number in the strings of a JSON value, at any depth."""
    if isinstance(value, str):
        return mask_identities_loosely(value)
    if isinstance(value, dict):
        return {_mask_identity_numbers(key): _mask_identity_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_identity_numbers(item) for item in value]
    return value


def _short_input(value: Any) -> Any:
    """Return the input unchanged when its JSON is short, else the start of its JSON as a string."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= MAX_INPUT_CHARS:
        return value
    return f"{text[:MAX_INPUT_CHARS]}... ({len(text)} characters)"


def safe_error_details(errors: Sequence[Any]) -> list[Any]:
    """Encode validation errors as JSON-safe details with short inputs and at most MAX_REPORTED_ERRORS entries.

    Identity numbers are masked anywhere in a detail, because a rejected id
    can also appear in the input of another error, such as its whole row.
    """
    details = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        detail = _mask_identity_numbers(_finite_json(jsonable_encoder(error)))
        if isinstance(detail, dict) and "input" in detail:
            detail["input"] = _short_input(detail["input"])
        details.append(detail)
    if len(errors) > MAX_REPORTED_ERRORS:
        details.append(
            {
                "type": "too_many_errors",
                "loc": ["body"],
                "msg": f"{len(errors) - MAX_REPORTED_ERRORS} more errors are not listed; fix the ones above first",
                "input": None,
            }
        )
    return details


def _describe_errors(errors: object) -> str:
    if not isinstance(errors, list):
        return str(errors)
    parts = []
    for error in errors[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg')}")
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    return mask_identities_loosely("; ".join(parts) + more)


async def _log_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    logger.warning(
        "Request %s %s %s rejected with 422: %s",
        request_id_of(request.scope),
        request.method,
        mask_likely_identities_in_text(request.url.path),
        _describe_errors(error.errors()),
    )
    return JSONResponse(status_code=422, content={"detail": safe_error_details(error.errors())})


async def _log_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code >= 500:
        logger.error(
            "Request %s %s %s failed with %d: %s",
            request_id_of(request.scope),
            request.method,
            mask_likely_identities_in_text(request.url.path),
            error.status_code,
            error.detail,
        )
    return await http_exception_handler(request, error)


async def _log_unexpected_error(request: Request, error: Exception) -> Response:
    request_id = request_id_of(request.scope)
    path = mask_likely_identities_in_text(request.url.path)
    logger.exception("Request %s %s %s failed: %s", request_id, request.method, path, error)
    return JSONResponse(
        status_code=500,
        content={
            "detail": f"internal error; quote request id {request_id} when reporting it",
            "request_id": request_id,
        },
    )


class ServiceHealth(Health):
    """Health of the service, with where the champion model came from."""

    champion_source: Literal["registry", "folder"] | None = Field(
        None,
        description="registry: loaded through the MLflow alias 'champion'; "
        "folder: from the champion folder, because no registry alias exists or the registry failed",
    )
    registry_versions: dict[str, str] = Field(
        default_factory=dict,
        description="registered model name -> version that the alias 'champion' points at; empty for a folder champion",
    )
    registry_error: str | None = Field(None, description="why the registry could not be read")
    champion_error: str | None = Field(
        None, description="why the newest champion could not be loaded while an earlier one stays in service"
    )
    scores_available: bool = Field(description="the score database has a scores table for GET /v1/scores")


def _add_system_routes(app: FastAPI, metrics: RequestMetrics) -> None:
    @app.get("/health", response_model=ServiceHealth, tags=["system"], summary="Report model and database status")
    def health(state: StateDep) -> ServiceHealth:
        """Report whether a model is loaded, which registered versions it is, and whether the score database is reachable."""
        bundle = state.bundle
        champion = state.champion
        reachable, scores_available = state.database_status()
        healthy = bundle is not None and reachable and scores_available and state.champion_error is None
        return ServiceHealth(
            status="ok" if healthy else "degraded",
            model_loaded=bundle is not None,
            model_version=None if bundle is None else bundle.version,
            targets=[] if bundle is None else bundle.targets,
            model_error=None if state.bundle_error is None else f"{state.bundle_error}; run povwarn train",
            database_url=state.database_url,
            database_reachable=reachable,
            champion_source=None if champion is None else champion.source,
            registry_versions={} if champion is None else champion.registered_versions,
            registry_error=state.registry_error,
            champion_error=state.champion_error,
            scores_available=scores_available,
        )

    @app.get("/metrics", tags=["system"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _add_offline_docs(app: FastAPI) -> None:
    """Serve the interactive docs at /docs from files installed with the package.

    FastAPI's default page loads Swagger UI from a public CDN, which leaves a
    blank page on an office network without internet access.
    """
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


async def _refresh_champion(app: FastAPI, interval: float) -> None:
    """Check every ``interval`` seconds whether the champion changed, and serve the new one if so."""
    while True:
        await asyncio.sleep(interval)
        try:
            fresh = await run_in_threadpool(refreshed_state, app.state.service)
        except Exception:
            logger.exception("Checking for a new champion failed; the loaded model stays in service")
            continue
        if fresh is not None:
            app.state.service = fresh


def create_app(settings: Settings | None = None) -> FastAPI:
    """Create the API. The champion is loaded at start-up and again whenever its alias moves.

    With ``model_refresh_seconds`` above 0 the service checks the alias (or
    the champion folder) that often, so a promotion takes effect without a restart.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mask_identity_numbers_in_server_logs()
        state = load_service_state(settings)
        app.state.service = state
        refresher = None
        if settings.model_refresh_seconds > 0:
            refresher = asyncio.create_task(_refresh_champion(app, settings.model_refresh_seconds))
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
            state.engine.dispose()
            logger.info("Service stopped; closed the connections to %s", state.database_url)

    app = FastAPI(
        title="Poverty early warning",
        version=warning.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _add_offline_docs(app)
    metrics = RequestMetrics()
    # The last middleware added runs first, so 413 responses get a request id and are counted in the metrics.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _log_validation_error)
    app.add_exception_handler(StarletteHTTPException, _log_http_error)
    app.add_exception_handler(Exception, _log_unexpected_error)
    predict_router = build_predict_router(settings.max_households_per_request)
    app.include_router(predict_router, dependencies=[RejectUnknownQuery])
    app.include_router(scores_router, dependencies=[RejectUnknownQuery])
    _add_system_routes(app, metrics)
    return app


def export_openapi(path: Path, settings: Settings | None = None) -> Path:
    """Write the API's OpenAPI document as indented JSON and return its path."""
    path = Path(path)
    document = create_app(settings).openapi()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("Wrote the OpenAPI document to %s", path)
    return path
