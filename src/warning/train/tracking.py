"""MLflow tracking of training runs and registration of the models in the Model Registry.

How tracking URIs map to a SQLite store is described in
``warning.registry.aliases``, which also names the registered models.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from warning.registry.aliases import registered_model_name, resolve_tracking

logger = logging.getLogger(__name__)

# MLflow rejects parameter values longer than 6000 characters (MLflow 3.x limit).
MAX_PARAM_LENGTH = 6000

__all__ = ["log_run_contents", "register_model", "registered_model_name", "resolve_tracking", "training_run"]


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


def register_model(
    booster: lgb.Booster,
    target: str,
    prefix: str,
    sample: pd.DataFrame,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Log a target's booster to the active run, register it, tag the new version and point ``alias`` at it.

    Returns the registered version. With ``alias`` None the caller moves aliases.
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
    client = MlflowClient()
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    if alias is not None:
        client.set_registered_model_alias(name, alias, version)
        logger.info("Registered %s version %s and set alias %r on it", name, version, alias)
    else:
        logger.info("Registered %s version %s", name, version)
    return version
