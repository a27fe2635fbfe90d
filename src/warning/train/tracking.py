"""MLflow tracking of training runs and registration of the models in the Model Registry.

MLflow 3.x raises on the file-based tracking store (``file:...``) unless
``MLFLOW_ALLOW_FILE_STORE`` is set, and keeps it in maintenance mode, so runs
and the registry go to SQLite. A ``file:`` URI or plain folder is read as "an
MLflow store in this folder": the database is ``<folder>/mlflow.db`` and the
artifacts go to ``<folder>/artifacts``. Both work offline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import lightgbm as lgb
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
DATABASE_NAME = "mlflow.db"
ARTIFACTS_FOLDER = "artifacts"
# MLflow rejects parameter values longer than 6000 characters (MLflow 3.x limit).
MAX_PARAM_LENGTH = 6000


def resolve_tracking(uri: str) -> tuple[str, str | None]:
    """Return the tracking URI to use and the artifact location for new experiments.

    The artifact location is None for remote servers, which choose their own.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") and uri:
        folder = Path(parsed.path if parsed.scheme == "file" else uri).resolve()
        database = folder / DATABASE_NAME
        resolved = f"{SQLITE_PREFIX}{database}"
        logger.warning(
            "MLflow 3 rejects the file tracking store %s, so runs go to %s; "
            "set POVWARN_MLFLOW_TRACKING_URI=%s to silence this warning",
            uri,
            resolved,
            resolved,
        )
        folder.mkdir(parents=True, exist_ok=True)
        return resolved, (folder / ARTIFACTS_FOLDER).as_uri()
    if uri.startswith(SQLITE_PREFIX):
        database = Path(uri[len(SQLITE_PREFIX) :]).resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
        # Without an explicit location MLflow puts artifacts in ./mlruns of the
        # current directory, away from the database.
        return f"{SQLITE_PREFIX}{database}", (database.parent / ARTIFACTS_FOLDER).as_uri()
    return uri, None


@contextlib.contextmanager
def training_run(tracking_uri: str, experiment: str, run_name: str) -> Iterator[object]:
    """Start an MLflow run in ``experiment``, creating the experiment if needed, and yield it."""
    import mlflow

    resolved, artifact_location = resolve_tracking(tracking_uri)
    mlflow.set_tracking_uri(resolved)
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is None:
        experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location)
        logger.info("Created MLflow experiment %r at %s", experiment, resolved)
    else:
        experiment_id = existing.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        logger.info("Started MLflow run %s in experiment %r (%s)", run.info.run_id, experiment, resolved)
        yield run


def _param_text(value: object) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        return text[: MAX_PARAM_LENGTH - 3] + "..."
    return text


def log_run_contents(
    params: dict[str, object],
    metrics: dict[str, float],
    tags: dict[str, str],
    json_artifacts: dict[str, object],
    bundle_folder: Path,
) -> None:
    """Log parameters, finite metrics, tags, JSON documents and the bundle folder to the active run."""
    import mlflow

    mlflow.log_params({name: _param_text(value) for name, value in params.items()})
    finite = {name: float(value) for name, value in metrics.items() if np.isfinite(value)}
    skipped = sorted(set(metrics) - set(finite))
    if skipped:
        logger.info("Not logging undefined metrics %s to MLflow", skipped)
    mlflow.log_metrics(finite)
    mlflow.set_tags(tags)
    for name, body in json_artifacts.items():
        mlflow.log_dict(body, name)
    mlflow.log_artifacts(str(bundle_folder), artifact_path="bundle")


def registered_model_name(prefix: str, target: str) -> str:
    return f"{prefix}-{target.replace('_', '-')}"


def register_model(booster: lgb.Booster, target: str, prefix: str, sample: pd.DataFrame, alias: str) -> str:
    """Log a target's booster to the active run, register it and point ``alias`` at the new version.

    Returns the registered version.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    name = registered_model_name(prefix, target)
    signature = infer_signature(sample, booster.predict(sample.to_numpy(), num_threads=1))
    info = mlflow.lightgbm.log_model(
        booster,
        name=f"{target}_model",
        registered_model_name=name,
        signature=signature,
        # Pinning the requirement skips MLflow's inference, which loads the model in a subprocess.
        pip_requirements=[f"lightgbm=={lgb.__version__}"],
    )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(name, alias, version)
    logger.info("Registered %s version %s and set alias %r on it", name, version, alias)
    return version
