"""Shared state of the request handlers: settings, champion model, catalogue and database engine."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Annotated

import lightgbm as lgb
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from warning.bundle import ModelBundle, champion_path, load_champion
from warning.features import Catalogue, catalogue_of, load_catalogue
from warning.registry.aliases import (
    ChampionSource,
    RegistryError,
    champion_from_registry,
    load_champion_by_alias,
)
from warning.score import SCORES, display_url, make_engine
from warning.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """State loaded once at start-up and read by every request."""

    settings: Settings
    catalogue: Catalogue
    engine: Engine
    bundle: ModelBundle | None
    bundle_error: str | None
    # Where the champion came from: the registry alias or the champion folder.
    champion: ChampionSource | None = None
    # Why the registry could not be used, when the service fell back to the champion folder.
    registry_error: str | None = None
    # A champion that failed to load while an earlier one stayed in service, and why.
    failed_champion: str | None = None
    champion_error: str | None = None

    @property
    def database_url(self) -> str:
        return display_url(self.settings.score_database_url)

    def database_status(self) -> tuple[bool, bool]:
        """Return whether the score database is reachable and whether it has a scores table."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
                return True, inspect(connection).has_table(SCORES.name)
        except SQLAlchemyError as error:
            logger.warning("Score database %s is not reachable: %s", self.database_url, error)
            return False, False


def _load_champion(settings: Settings) -> tuple[ModelBundle, ChampionSource, str | None]:
    """Load the champion by its registry alias, or from the champion folder when the registry fails."""
    try:
        bundle, source = load_champion_by_alias(settings)
        return bundle, source, None
    except RegistryError as error:
        logger.error("Loading the champion by alias failed, so the champion folder is loaded: %s", error)
        bundle = load_champion(settings)
        source = ChampionSource(source="folder", folder=champion_path(settings), bundle_version=bundle.version)
        return bundle, source, str(error)


def load_service_state(settings: Settings, engine: Engine | None = None) -> ServiceState:
    """Load the champion bundle and the feature catalogue, and create the engine unless one is given.

    The champion is the bundle that the registry's ``champion`` alias points
    at, or the champion folder without a registry. A missing or unreadable
    bundle does not stop the service: predict then returns 503 and /health
    reports why.
    """
    folder = champion_path(settings)
    bundle: ModelBundle | None = None
    bundle_error: str | None = None
    source: ChampionSource | None = None
    registry_error: str | None = None
    try:
        bundle, source, registry_error = _load_champion(settings)
        folder = source.folder
    except FileNotFoundError as error:
        bundle_error = f"no model bundle in {folder}"
        logger.debug("Loading the champion failed: %s", error)
        logger.warning("Starting without a model: %s", bundle_error)
    except (OSError, ValueError, KeyError, lgb.basic.LightGBMError) as error:
        bundle_error = f"model bundle in {folder} could not be loaded: {error}"
        logger.error("Starting without a model: %s", bundle_error)
    state = ServiceState(
        settings=settings,
        catalogue=catalogue_of(bundle, settings.catalogue_path) if bundle else load_catalogue(settings.catalogue_path),
        engine=engine if engine is not None else make_engine(settings.score_database_url),
        bundle=bundle,
        bundle_error=bundle_error,
        champion=source,
        registry_error=registry_error,
    )
    logger.info(
        "Service ready: model %s from the %s, score database %s",
        bundle.version if bundle is not None else "none",
        source.source if source is not None else "nowhere",
        state.database_url,
    )
    return state


def current_champion_version(settings: Settings) -> str | None:
    """Return the bundle version the champion alias (or, without a registry, the champion folder) names now."""
    try:
        found = champion_from_registry(settings)
    except RegistryError as error:
        logger.warning("Could not read the champion alias, so the loaded model is kept: %s", error)
        return None
    if found is not None:
        return found[1].bundle_version
    manifest = champion_path(settings) / "bundle.json"
    if not manifest.is_file():
        return None
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError) as error:
        logger.warning("Could not read %s, so the loaded model is kept: %s", manifest, error)
        return None


def refreshed_state(state: ServiceState) -> ServiceState | None:
    """Return a new state when the champion changed since ``state`` was loaded, else None.

    The new state shares the database engine. Requests read the state once,
    so each one sees one model and its catalogue, never a mix of two.
    """
    version = current_champion_version(state.settings)
    loaded = state.bundle.version if state.bundle is not None else None
    # A champion that failed to load is tried again only once the alias moves on.
    if version is None or version in (loaded, state.failed_champion):
        return None
    logger.info("The champion changed from %s to %s; loading it", loaded or "none", version)
    fresh = load_service_state(state.settings, engine=state.engine)
    if fresh.bundle is None and state.bundle is not None:
        logger.error("Loading champion %s failed, so model %s stays in service", version, loaded)
        error = f"champion {version} could not be loaded, so model {loaded} stays in service: {fresh.bundle_error}"
        return replace(state, failed_champion=version, champion_error=error)
    return fresh


def get_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


StateDep = Annotated[ServiceState, Depends(get_state)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Raise a 422 for each query parameter that the matched route does not declare.

    FastAPI ignores undeclared query parameters, so a misspelt filter such as
    ``region_code`` for ``region_prefix`` would silently widen a listing.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    accepted = sorted(_query_names(route.dependant))
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in accepted]
    if not unknown:
        return
    listed = ", ".join(accepted) if accepted else "none"
    raise RequestValidationError(
        [
            {
                "type": "extra_forbidden",
                "loc": ("query", name),
                "msg": f"unknown query parameter '{name}'. Accepted parameters: {listed}",
                "input": request.query_params[name],
                "ctx": {"accepted": accepted},
            }
            for name in unknown
        ]
    )


# The dependency that create_app adds to every router under /v1.
RejectUnknownQuery = Depends(reject_unknown_query)
