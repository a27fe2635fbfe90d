"""GET /v1/scores: page through the batch scores of one cut-off; GET /v1/households/{id}/scores: one household's."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator
from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from warning.api.deps import StateDep
from warning.api.schemas import (
    MONTH_PATTERN,
    HashedHouseholdId,
    HouseholdScores,
    PageLinks,
    ScoreItem,
    ScoresPage,
    Target,
    check_model_version,
)
from warning.contract import EARLIEST_YEAR
from warning.feeds.identity import mask_identities_loosely
from warning.score import SCORES

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# Ten years of monthly cut-offs.
MAX_HOUSEHOLD_CUTOFFS = 120
# Databases take OFFSET as a 64-bit integer, and a larger value fails in the
# driver. 10**9 rows is far above the size of any score table.
MAX_OFFSET = 10**9

router = APIRouter(tags=["scores"])


@dataclass(frozen=True)
class ScoreFilters:
    """The query parameters that select score rows."""

    cutoff: str | None
    model_version: str | None
    region_prefix: str | None
    min_probability: float
    band: str | None
    target: str | None
    below_line_now: bool | None = None
    min_hardship_probability: float = 0.0

    def conditions(self, cutoff: date, model_version: str) -> list[ColumnElement[bool]]:
        conditions = [SCORES.c.cutoff == cutoff, SCORES.c.model_version == model_version]
        if self.region_prefix:
            conditions.append(SCORES.c.region_code.startswith(self.region_prefix, autoescape=True))
        if self.min_probability > 0.0:
            conditions.append(SCORES.c.probability >= self.min_probability)
        if self.band is not None:
            conditions.append(SCORES.c.band == self.band)
        if self.target is not None:
            conditions.append(SCORES.c.target == self.target)
        if self.below_line_now is not None:
            conditions.append(SCORES.c.below_line_now == self.below_line_now)
        if self.min_hardship_probability > 0.0:
            conditions.append(SCORES.c.sudden_hardship_probability >= self.min_hardship_probability)
        return conditions


def _month_date(month: str) -> date:
    year, number = month.split("-")
    return date(int(year), int(number), 1)


def _latest_batch(
    connection: Connection, cutoff: date | None, model_version: str | None
) -> tuple[date, str] | None:
    """Return the cut-off and model version to list: the latest cut-off, then its latest scored model."""
    scored_at = func.max(SCORES.c.scored_at).label("scored_at")
    query = select(SCORES.c.cutoff, SCORES.c.model_version, scored_at)
    query = query.group_by(SCORES.c.cutoff, SCORES.c.model_version)
    if cutoff is not None:
        query = query.where(SCORES.c.cutoff == cutoff)
    if model_version is not None:
        query = query.where(SCORES.c.model_version == model_version)
    row = connection.execute(query.order_by(SCORES.c.cutoff.desc(), scored_at.desc()).limit(1)).first()
    return None if row is None else (row.cutoff, row.model_version)


def _item(row: Any) -> ScoreItem:
    # Scoring writes UTC times, and SQLite returns them without a zone.
    scored_at = row.scored_at if row.scored_at.tzinfo else row.scored_at.replace(tzinfo=UTC)
    return ScoreItem(
        household_id=row.household_id,
        region_code=row.region_code,
        township_code=row.township_code,
        urban_rural=row.urban_rural,
        cutoff=row.cutoff.strftime("%Y-%m"),
        target=row.target,
        probability=row.probability,
        relapse_probability=row.relapse_probability,
        new_poverty_probability=row.new_poverty_probability,
        sudden_hardship_probability=row.sudden_hardship_probability,
        band=row.band,
        top_causes=json.loads(row.top_causes),
        measures=json.loads(row.measures),
        below_line_now=row.below_line_now,
        model_version=row.model_version,
        scored_at=scored_at.isoformat(),
    )


@router.get(
    "/v1/scores",
    response_model=ScoresPage,
    summary="List batch scores by region, probability, band and target",
    responses={503: {"description": "the score database has no scores table: run povwarn score"}},
)
def list_scores(
    request: Request,
    state: StateDep,
    region_prefix: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,12}$", description="leading digits of the region code, e.g. 52 or 520121"),
    ] = None,
    min_probability: Annotated[float, Query(ge=0.0, le=1.0, description="lowest probability to list")] = 0.0,
    band: Annotated[str | None, Query(description="risk band name from the band thresholds setting")] = None,
    target: Annotated[Target | None, Query(description="relapse or new_poverty")] = None,
    cutoff: Annotated[
        str | None,
        Query(pattern=MONTH_PATTERN, description="YYYY-MM from 1900-01; default the latest cut-off"),
    ] = None,
    model_version: Annotated[
        str | None,
        Query(max_length=128, description="default: the model that scored the cut-off most recently"),
        AfterValidator(check_model_version),
    ] = None,
    below_line_now: Annotated[
        bool | None,
        Query(description="false lists only households still above the line, whose risk is a forecast"),
    ] = None,
    min_hardship_probability: Annotated[
        float, Query(ge=0.0, le=1.0, description="lowest probability of sudden hardship to list")
    ] = 0.0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> ScoresPage:
    """Page through one cut-off's scores, highest probability first, with the total count."""
    bands = state.settings.band_thresholds
    if band is not None and band not in bands:
        _reject_query("band", f"unknown band {band!r}; known bands: {sorted(bands)}", band)
    if cutoff is not None and int(cutoff[:4]) < EARLIEST_YEAR:
        _reject_query("cutoff", f"cutoff {cutoff} is before {EARLIEST_YEAR}-01", cutoff)
    try:
        filters = ScoreFilters(
            cutoff,
            model_version,
            region_prefix,
            min_probability,
            band,
            target,
            below_line_now,
            min_hardship_probability,
        )
        return _read_page(request, state.engine, filters, limit, offset)
    except SQLAlchemyError as error:
        raise _database_failure(state.database_url, error, f"request {request.state.request_id}") from error


def _database_failure(url: str, error: SQLAlchemyError, context: str) -> HTTPException:
    """Log a failed read of the score database and return the 503 for the client.

    The client gets the driver's message only: SQLAlchemy's own text adds the
    SQL statement and its parameters, which belong in the server log.
    """
    logger.error("Reading scores for %s from %s failed: %s", context, url, error)
    reason = getattr(error, "orig", None) or type(error).__name__
    return HTTPException(status_code=503, detail=f"reading the score database {url} failed: {reason}")


def _reject_query(name: str, message: str, value: str) -> NoReturn:
    raise RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}])


def _read_page(
    request: Request, engine: Engine, filters: ScoreFilters, limit: int, offset: int
) -> ScoresPage:
    if not inspect(engine).has_table(SCORES.name):
        url = engine.url.render_as_string(hide_password=True)
        raise HTTPException(status_code=503, detail=f"no scores in {url}: run povwarn score")
    with engine.connect() as connection:
        cutoff = None if filters.cutoff is None else _month_date(filters.cutoff)
        batch = _latest_batch(connection, cutoff, filters.model_version)
        if batch is None:
            # The requested model version is echoed masked, because it may contain an old 15-digit number.
            requested = filters.model_version
            return ScoresPage(
                cutoff=filters.cutoff,
                model_version=None if requested is None else mask_identities_loosely(requested),
                total=0,
                limit=limit,
                offset=offset,
                items=[],
                links=PageLinks(),
            )
        batch_cutoff, batch_model = batch
        conditions = filters.conditions(batch_cutoff, batch_model)
        total = connection.execute(select(func.count()).select_from(SCORES).where(*conditions)).scalar_one()
        rows = connection.execute(
            select(SCORES)
            .where(*conditions)
            .order_by(SCORES.c.probability.desc().nulls_last(), SCORES.c.household_id)
            .limit(limit)
            .offset(offset)
        ).all()

    links = PageLinks()
    if offset + limit < total:
        links.next = str(request.url.include_query_params(offset=offset + limit, limit=limit))
    if offset > 0:
        links.previous = str(request.url.include_query_params(offset=max(offset - limit, 0), limit=limit))
    return ScoresPage(
        cutoff=batch_cutoff.strftime("%Y-%m"),
        model_version=batch_model,
        total=total,
        limit=limit,
        offset=offset,
        items=[_item(row) for row in rows],
        links=links,
    )


@router.get(
    "/v1/households/{household_id}/scores",
    response_model=HouseholdScores,
    summary="One household's scores, newest cut-off first",
    responses={
        404: {"description": "the household has no scores"},
        503: {"description": "the score database has no scores table: run povwarn score"},
    },
)
def household_scores(
    state: StateDep,
    household_id: Annotated[
        HashedHouseholdId,
        Path(description="the household id of the store; povwarn feeds lookup finds it from an identity number"),
    ],
    limit: Annotated[
        int, Query(ge=1, le=MAX_HOUSEHOLD_CUTOFFS, description="how many cut-offs to return, newest first")
    ] = 12,
) -> HouseholdScores:
    """Return a household's score, causes and measures at its latest cut-offs, to follow its risk over time."""
    try:
        if not inspect(state.engine).has_table(SCORES.name):
            raise HTTPException(status_code=503, detail=f"no scores in {state.database_url}: run povwarn score")
        # The latest scored model of each cut-off, as GET /v1/scores lists it.
        newest = (
            func.row_number()
            .over(partition_by=SCORES.c.cutoff, order_by=(SCORES.c.scored_at.desc(), SCORES.c.model_version))
            .label("newest")
        )
        ranked = select(SCORES, newest).where(SCORES.c.household_id == household_id).subquery()
        query = select(ranked).where(ranked.c.newest == 1).order_by(ranked.c.cutoff.desc()).limit(limit)
        with state.engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as error:
        raise _database_failure(state.database_url, error, f"household {household_id}") from error
    if not rows:
        shown = mask_identities_loosely(household_id)
        raise HTTPException(
            status_code=404,
            detail=f"household {shown} has no scores: check the id, or run povwarn score after ingesting its data",
        )
    return HouseholdScores(household_id=household_id, items=[_item(row) for row in rows])
