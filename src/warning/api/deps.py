"""Shared state of the request handlers: settings, champion model, catalogue and database engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import lightgbm as lgb
from fastapi import Depends, Request
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from warning.bundle import ModelBundle, champion_path, load_champion
from warning.features import Catalogue, load_catalogue
from warning.score import display_url, make_engine
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

    @property
    def database_url(self) -> str:
        return display_url(self.settings.score_database_url)

    def database_reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except SQLAlchemyError as error:
            logger.warning("Score database %s is not reachable: %s", self.database_url, error)
            return False
        return True


def load_service_state(settings: Settings) -> ServiceState:
    """Load the champion bundle and the feature catalogue, and create the engine.

    A missing or unreadable bundle does not stop the service: predict then
    returns 503 and /health reports why.
    """
    folder = champion_path(settings)
    bundle: ModelBundle | None = None
    bundle_error: str | None = None
    try:
        bundle = load_champion(settings)
    except FileNotFoundError as error:
        bundle_error = f"no model bundle in {folder}"
        logger.debug("Loading the champion failed: %s", error)
        logger.warning("Starting without a model: %s", bundle_error)
    except (OSError, ValueError, KeyError, lgb.basic.LightGBMError) as error:
        bundle_error = f"model bundle in {folder} could not be loaded: {error}"
        logger.error("Starting without a model: %s", bundle_error)
    state = ServiceState(
        settings=settings,
        catalogue=load_catalogue(settings.catalogue_path),
        engine=make_engine(settings.score_database_url),
        bundle=bundle,
        bundle_error=bundle_error,
    )
    logger.info(
        "Service ready: model %s, score database %s",
        bundle.version if bundle is not None else "none",
        state.database_url,
    )
    return state


def get_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


StateDep = Annotated[ServiceState, Depends(get_state)]
