"""Registered model names, aliases and loading the champion through the MLflow Model Registry.

Training registers one model per target as ``<prefix>-<target>``, all from one
MLflow run, and tags that run and its model versions with the bundle version.
A bundle version has an alias (``champion`` or ``challenger``) when that
alias points, on every registered model of its targets, at the version
logged by its run. Serving resolves the ``champion`` alias to a bundle
version and loads that bundle. ``<work_dir>/models/champion`` is the copy that
batch scoring reads, and the fallback when no registry exists yet.

MLflow 3.x raises on the file-based tracking store (``file:...``) unless
``MLFLOW_ALLOW_FILE_STORE`` is set, and keeps it in maintenance mode, so runs
and the registry go to SQLite. A ``file:`` URI or plain folder is read as "an
MLflow store in this folder": the database is ``<folder>/mlflow.db`` and the
artifacts go to ``<folder>/artifacts``. Both work offline.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from warning.bundle import CHAMPION, ModelBundle, champion_path, models_dir, publish_champion
from warning.labels import ALL_TARGETS
from warning.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
# Tag on the training run and on each registered model version that names the bundle folder.
BUNDLE_VERSION_TAG = "bundle_version"
# Artifact folder of the training run that contains the bundle.
BUNDLE_ARTIFACT = "bundle"
SQLITE_PREFIX = "sqlite:///"
DATABASE_NAME = "mlflow.db"
ARTIFACTS_FOLDER = "artifacts"
# Bundle versions name folders, so they may not contain path separators.
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RegistryError(RuntimeError):
    """The registry contradicts itself or lacks what a bundle version needs."""


def _sqlite_database(uri: str) -> Path | None:
    """Return the SQLite database a tracking URI means, or None for remote servers."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") and uri:
        folder = Path(parsed.path if parsed.scheme == "file" else uri).resolve()
        return folder / DATABASE_NAME
    if uri.startswith(SQLITE_PREFIX):
        return Path(uri[len(SQLITE_PREFIX) :]).resolve()
    return None


def resolve_tracking(uri: str) -> tuple[str, str | None]:
    """Return the tracking URI to use and the artifact location for new experiments.

    The artifact location is None for remote servers, which choose their own.
    Creates the folder of a SQLite database.
    """
    database = _sqlite_database(uri)
    if database is None:
        return uri, None
    resolved = f"{SQLITE_PREFIX}{database}"
    if not uri.startswith(SQLITE_PREFIX):
        logger.warning(
            "MLflow 3 rejects the file tracking store %s, so runs go to %s; "
            "set POVWARN_MLFLOW_TRACKING_URI=%s to silence this warning",
            uri,
            resolved,
            resolved,
        )
    database.parent.mkdir(parents=True, exist_ok=True)
    # Without an explicit location MLflow puts artifacts in ./mlruns of the
    # current directory, away from the database.
    return resolved, (database.parent / ARTIFACTS_FOLDER).as_uri()


def registry_exists(settings: Settings) -> bool:
    """Return False when the tracking store is a SQLite database that was never created.

    Remote tracking servers count as existing; asking them is the only way to know.
    """
    database = _sqlite_database(settings.mlflow_tracking_uri)
    return database is None or database.exists()


def registry_client(settings: Settings) -> MlflowClient:
    """Return an MLflow client for the tracking store and registry in the settings."""
    from mlflow import MlflowClient

    resolved, _ = resolve_tracking(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def registered_model_name(prefix: str, target: str) -> str:
    """Return the registry name of a target's model, e.g. ``poverty-warning-new-poverty``."""
    return f"{prefix}-{target.replace('_', '-')}"


def check_version(version: str) -> str:
    """Return ``version`` if it can name a bundle folder, else raise ValueError."""
    if not VERSION_PATTERN.match(version) or version == CHAMPION:
        raise ValueError(
            f"invalid bundle version {version!r}: expected letters, digits, '.', '_' or '-', "
            f"other than {CHAMPION!r}, as in the folders under <work_dir>/models"
        )
    return version


@dataclass(frozen=True)
class RegisteredBundle:
    """A bundle version in the registry: its training run and the registered model version of each target."""

    bundle_version: str
    run_id: str
    # Target -> registered model version number, as MLflow prints it ("3").
    model_versions: dict[str, str] = field(default_factory=dict)

    def names(self, prefix: str) -> dict[str, str]:
        """Return the registered model version of each target keyed by registered model name."""
        return {registered_model_name(prefix, target): number for target, number in self.model_versions.items()}

    def describe(self, prefix: str) -> str:
        return ", ".join(f"{name} v{number}" for name, number in self.names(prefix).items())


def _is_missing(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _bundle_version_of_run(client: MlflowClient, run_id: str) -> str:
    tags = client.get_run(run_id).data.tags
    version = tags.get(BUNDLE_VERSION_TAG)
    if not version:
        raise RegistryError(
            f"MLflow run {run_id} has no {BUNDLE_VERSION_TAG!r} tag, so its bundle is unknown; "
            "register models with povwarn train"
        )
    return check_version(version)


def find_alias(client: MlflowClient, prefix: str, alias: str) -> RegisteredBundle | None:
    """Return the bundle version that ``alias`` points at, or None when no registered model carries it.

    Raises RegistryError when the alias points at versions from different runs.
    """
    from mlflow.exceptions import MlflowException

    versions = {}
    for target in ALL_TARGETS:
        name = registered_model_name(prefix, target)
        try:
            model = client.get_registered_model(name)
        except MlflowException as error:
            if _is_missing(error):
                continue
            raise
        number = model.aliases.get(alias)
        if number is not None:
            versions[target] = client.get_model_version(name, str(number))
    if not versions:
        return None
    runs = {version.run_id for version in versions.values()}
    if len(runs) > 1:
        listed = ", ".join(
            f"{registered_model_name(prefix, target)} v{version.version} (run {version.run_id})"
            for target, version in versions.items()
        )
        raise RegistryError(
            f"alias {alias!r} points at model versions from different runs: {listed}; "
            f"move it to one bundle version with povwarn promote --version V --force --reason TEXT"
        )
    run_id = runs.pop()
    return RegisteredBundle(
        bundle_version=_bundle_version_of_run(client, run_id),
        run_id=run_id,
        model_versions={target: str(version.version) for target, version in versions.items()},
    )


def registered_bundles(client: MlflowClient, prefix: str) -> list[RegisteredBundle]:
    """Return every bundle version with registered models under ``prefix``, oldest first."""
    from mlflow.exceptions import MlflowException

    by_run: dict[str, dict[str, str]] = {}
    created: dict[str, int] = {}
    for target in ALL_TARGETS:
        name = registered_model_name(prefix, target)
        try:
            found = client.search_model_versions(filter_string=f"name = '{name}'")
        except MlflowException as error:
            if _is_missing(error):
                continue
            raise
        for version in found:
            by_run.setdefault(version.run_id, {})[target] = str(version.version)
            first_seen = created.get(version.run_id, version.creation_timestamp)
            created[version.run_id] = min(first_seen, version.creation_timestamp)
    bundles = []
    for run_id in sorted(by_run, key=created.__getitem__):
        try:
            bundle_version = _bundle_version_of_run(client, run_id)
        except (RegistryError, ValueError) as error:
            logger.warning("Skipped registered models of MLflow run %s: %s", run_id, error)
            continue
        versions = by_run[run_id]
        bundles.append(
            RegisteredBundle(
                bundle_version=bundle_version,
                run_id=run_id,
                model_versions={target: versions[target] for target in ALL_TARGETS if target in versions},
            )
        )
    return bundles


def find_bundle(client: MlflowClient, prefix: str, bundle_version: str) -> RegisteredBundle:
    """Return the registry entry of a bundle version, or raise LookupError naming the registered ones."""
    check_version(bundle_version)
    bundles = registered_bundles(client, prefix)
    for registered in bundles:
        if registered.bundle_version == bundle_version:
            return registered
    known = ", ".join(registered.bundle_version for registered in bundles[-5:]) or "none"
    raise LookupError(
        f"bundle version {bundle_version!r} has no registered models under {prefix!r}; "
        f"latest registered versions: {known}"
    )


def _delete_alias(client: MlflowClient, name: str, alias: str) -> None:
    """Delete ``alias`` from a registered model; a missing model or alias is no error."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException as error:
        if not _is_missing(error):
            raise


def point_alias(client: MlflowClient, prefix: str, alias: str, registered: RegisteredBundle) -> None:
    """Point ``alias`` at the bundle's model version of each target, and remove it from the others.

    Removing the alias from registered models of targets the bundle lacks keeps
    every holder of the alias on one run.
    """
    for target in ALL_TARGETS:
        name = registered_model_name(prefix, target)
        number = registered.model_versions.get(target)
        if number is None:
            _delete_alias(client, name, alias)
        else:
            client.set_registered_model_alias(name, alias, number)
    logger.info("Pointed alias %r at bundle %s (%s)", alias, registered.bundle_version, registered.describe(prefix))


def remove_alias(client: MlflowClient, prefix: str, alias: str) -> None:
    """Remove ``alias`` from every registered model under ``prefix``."""
    for target in ALL_TARGETS:
        _delete_alias(client, registered_model_name(prefix, target), alias)
    logger.info("Removed alias %r from the registered models under %r", alias, prefix)


def tag_model_versions(client: MlflowClient, prefix: str, registered: RegisteredBundle, tags: dict[str, str]) -> None:
    """Set tags on the registered model version of each of the bundle's targets."""
    for name, number in registered.names(prefix).items():
        for key, value in tags.items():
            client.set_model_version_tag(name, number, key, value)


def bundle_folder(settings: Settings, client: MlflowClient, registered: RegisteredBundle) -> Path:
    """Return a local folder holding the bundle: ``<work_dir>/models/<version>``.

    When that folder is missing, the bundle is downloaded from the training
    run's ``bundle`` artifact into it.
    """
    version = check_version(registered.bundle_version)
    folder = models_dir(settings) / version
    if (folder / "bundle.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".download-{uuid.uuid4().hex}")
    staging.mkdir()
    try:
        downloaded = Path(client.download_artifacts(registered.run_id, BUNDLE_ARTIFACT, str(staging)))
        if not (downloaded / "bundle.json").exists():
            raise RegistryError(
                f"MLflow run {registered.run_id} has no {BUNDLE_ARTIFACT}/bundle.json artifact, "
                f"so bundle {version} cannot be loaded"
            )
        downloaded.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Downloaded bundle %s from MLflow run %s to %s", version, registered.run_id, folder)
    return folder


@dataclass(frozen=True)
class ChampionSource:
    """The origin of a loaded champion: registry alias or folder, and its registered model versions."""

    source: Literal["registry", "folder"]
    folder: Path
    bundle_version: str
    # Registered model name -> version; empty when loaded from the folder without a registry.
    registered_versions: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None


def champion_from_registry(settings: Settings) -> tuple[MlflowClient, RegisteredBundle] | None:
    """Return the registry client and the champion entry, or None without a registry or alias."""
    if not registry_exists(settings):
        return None
    from mlflow.exceptions import MlflowException

    client = registry_client(settings)
    try:
        registered = find_alias(client, settings.registered_model_prefix, CHAMPION)
    except MlflowException as error:
        raise RegistryError(
            f"reading alias {CHAMPION!r} from {settings.mlflow_tracking_uri} failed: {error}"
        ) from error
    return None if registered is None else (client, registered)


def load_champion_by_alias(settings: Settings) -> tuple[ModelBundle, ChampionSource]:
    """Load the bundle that the ``champion`` alias points at.

    Without a tracking database, or when no registered model carries the
    alias, the bundle in ``<work_dir>/models/champion`` is loaded instead and
    the fallback is logged. Raises FileNotFoundError when neither exists, and
    RegistryError when the registry contradicts itself or cannot be read.
    """
    prefix = settings.registered_model_prefix
    found = champion_from_registry(settings)
    if found is None:
        logger.info(
            "No %r alias under %r in %s; loading the champion folder %s",
            CHAMPION,
            prefix,
            settings.mlflow_tracking_uri,
            champion_path(settings),
        )
        bundle = ModelBundle.load(champion_path(settings))
        return bundle, ChampionSource(source="folder", folder=champion_path(settings), bundle_version=bundle.version)

    from mlflow.exceptions import MlflowException

    client, registered = found
    try:
        folder = bundle_folder(settings, client, registered)
    except MlflowException as error:
        raise RegistryError(
            f"downloading bundle {registered.bundle_version} from MLflow run {registered.run_id} failed: {error}"
        ) from error
    bundle = ModelBundle.load(folder)
    if bundle.version != registered.bundle_version:
        raise RegistryError(
            f"folder {folder} contains bundle {bundle.version}, but alias {CHAMPION!r} points at "
            f"{registered.bundle_version}; remove the folder so that it is downloaded again"
        )
    logger.info("Loaded champion %s by alias (%s)", bundle.version, registered.describe(prefix))
    return bundle, ChampionSource(
        source="registry",
        folder=folder,
        bundle_version=bundle.version,
        registered_versions=registered.names(prefix),
        run_id=registered.run_id,
    )


def ensure_champion_folder(settings: Settings) -> Path | None:
    """Publish the registry's champion to ``<work_dir>/models/champion`` when that folder is missing.

    A work folder that shares its registry with another one may lack the
    folder that batch scoring reads. An existing folder is left alone. Returns
    the published folder, or None when nothing was published.
    """
    target = champion_path(settings)
    if (target / "bundle.json").exists() or not registry_exists(settings):
        return None
    client = registry_client(settings)
    registered = find_alias(client, settings.registered_model_prefix, CHAMPION)
    if registered is None:
        return None
    logger.info("Work folder %s has no champion folder; publishing champion %s", settings.work_dir, registered.bundle_version)
    return publish_champion(bundle_folder(settings, client, registered), settings)
