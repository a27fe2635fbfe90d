"""Train the relapse and new-poverty models end to end and register them as challenger or first champion.

Steps: features and labels at every training cut-off, a temporal split with an
embargo, one calibrated LightGBM model per target, an MLflow run with the
models registered and a bundle folder under ``<work_dir>/models/<version>``.
When no registered model carries the ``champion`` alias yet, the new models
get it and the bundle is copied to ``<work_dir>/models/champion``. Otherwise
they get the ``challenger`` alias, and ``povwarn promote`` decides whether they
replace the champion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from warning.bundle import CHAMPION, ModelBundle, models_dir, publish_champion
from warning.contract import TABLES
from warning.features import build_features, load_catalogue, training_cutoffs
from warning.features.catalogue import Catalogue
from warning.labels import ALL_TARGETS, build_labels
from warning.panel import Panel
from warning.registry.aliases import (
    BUNDLE_VERSION_TAG,
    CHALLENGER,
    RegisteredBundle,
    RegistryError,
    ensure_champion_folder,
    find_alias,
    point_alias,
)
from warning.settings import Settings
from warning.store import Store
from warning.train import tracking
from warning.train.cause_groups import CauseGroup, load_cause_groups, measure_conditions
from warning.train.fit import BLOCK_COLUMN, TargetFit, fit_target, lightgbm_params, share_suffix
from warning.train.split import BLOCKS, TemporalSplit, split_cutoffs

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

KEYS = ["household_id", "cutoff"]
FINGERPRINT_KIND = "sha256 of sorted household ids, cut-offs, label sums, table row counts"

OPTION_NAMES = ("min_train_positives", "review_share", "registered_model_prefix")


@dataclass
class TrainResult:
    """Outcome of a training run: bundle version, MLflow run, metrics, rows and timings."""

    version: str
    run_id: str
    bundle_path: Path
    # Per target, flat metrics such as ``test_roc_auc``; skipped targets are absent.
    metrics: dict[str, dict[str, float]]
    # Labelled household-cut-off rows per block (any target).
    rows: dict[str, int]
    split: TemporalSplit
    elapsed_seconds: float
    # Share of the riskiest test rows behind the ``test_recall_top*`` metrics.
    review_share: float = 0.05
    skipped: list[str] = field(default_factory=list)
    registered_versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # Registry alias the new versions got: ``champion`` for the first model, else ``challenger``.
    alias: str = CHAMPION

    def summary(self) -> str:
        """Return a few lines for the terminal: version, rows per block and the headline test metrics."""
        described = self.split.describe()
        lines = [
            f"Trained bundle {self.version} (MLflow run {self.run_id}) in {self.elapsed_seconds:.1f} s; "
            f"saved to {self.bundle_path}",
            "Rows: " + ", ".join(f"{block} {self.rows.get(block, 0)}" for block in BLOCKS),
            "Cut-offs: "
            + "; ".join(f"{block} {described[block] or '-'}" for block in (*BLOCKS, "embargoed")),
        ]
        lines.extend(f"Split adjusted: {message}" for message in self.split.adjustments)
        suffix = share_suffix(self.review_share)
        percent = 100 * self.review_share
        for target, values in self.metrics.items():
            recall = values[f"test_recall_{suffix}"]
            precision = values[f"test_precision_{suffix}"]
            lines.append(
                f"{target}: test ROC-AUC {values['test_roc_auc']:.3f}, PR-AUC {values['test_pr_auc']:.3f}, "
                f"Brier {values['test_brier']:.4f}, ECE {values['test_ece']:.4f} "
                f"(raw {values['test_raw_ece']:.4f}), "
                f"base rate {values['test_base_rate']:.3f} over {values['test_rows']:.0f} rows, "
                f"recall {recall:.3f} and precision {precision:.3f} in the riskiest {percent:g}%"
            )
        lines.extend(f"{target}: skipped, see the warnings above" for target in self.skipped)
        if self.alias == CHAMPION:
            lines.append("Registered as the champion, because no champion existed yet")
        else:
            lines.append(
                f"Registered as the {self.alias}; run povwarn evaluate and povwarn promote "
                "to compare it with the champion and promote it"
            )
        return "\n".join(lines)


def build_training_frame(store: Store, catalogue: Catalogue, settings: Settings) -> pd.DataFrame:
    """Return features and labels at every training cut-off, one row per labelled household-cut-off."""
    panel = Panel(store)
    cutoffs = training_cutoffs(
        panel, settings.horizon_months, settings.cutoff_step_months, settings.min_history_months
    )
    features = build_features(panel, catalogue, cutoffs)
    labels = build_labels(panel, cutoffs, settings.horizon_months)
    frame = features.merge(labels, on=KEYS, how="inner", validate="one_to_one")
    labelled = frame[list(ALL_TARGETS)].notna().any(axis=1)
    frame = frame.loc[labelled].reset_index(drop=True)
    logger.info(
        "Training frame: %d labelled household-cut-offs of %d, %d households, %d cut-offs",
        len(frame),
        len(features),
        frame["household_id"].nunique(),
        frame["cutoff"].nunique(),
    )
    return frame


def assign_blocks(frame: pd.DataFrame, split: TemporalSplit) -> pd.DataFrame:
    """Return the rows of the split's blocks with a ``block`` column; embargoed rows are dropped."""
    blocks = split.block_of(frame["cutoff"])
    framed = frame.assign(**{BLOCK_COLUMN: blocks}).loc[blocks.notna()].reset_index(drop=True)
    # A household-cut-off row belongs to one block only, and blocks follow each
    # other with the embargo between them.
    if framed.duplicated(KEYS).any():
        raise AssertionError("the training frame repeats a household-cut-off row")
    cutoffs = {block: set(framed.loc[framed[BLOCK_COLUMN] == block, "cutoff"]) for block in BLOCKS}
    for earlier, later in zip(BLOCKS, BLOCKS[1:], strict=False):
        if cutoffs[earlier] & cutoffs[later]:
            raise AssertionError(f"blocks {earlier} and {later} share cut-offs")
        if cutoffs[earlier] and cutoffs[later]:
            gap = pd.DateOffset(months=split.embargo_months)
            if max(cutoffs[earlier]) + gap > min(cutoffs[later]):
                raise AssertionError(
                    f"block {later} starts within {split.embargo_months} months of block {earlier}"
                )
    dropped = len(frame) - len(framed)
    logger.info(
        "Rows per block: %s; %d rows at embargoed cut-offs left out",
        framed[BLOCK_COLUMN].value_counts().reindex(list(BLOCKS), fill_value=0).to_dict(),
        dropped,
    )
    return framed


def data_fingerprint(frame: pd.DataFrame, store: Store) -> str:
    """Return a SHA-256 of the sorted household ids and cut-offs, label sums and the store's table sizes.

    NOTE: feature values are not hashed, so a changed value in an unchanged set
    of households, cut-offs, label sums and table sizes keeps the fingerprint.
    """
    digest = hashlib.sha256()
    ids = np.sort(frame["household_id"].astype(str).unique())
    digest.update("\n".join(ids).encode("utf-8"))
    cutoffs = sorted(pd.DatetimeIndex(frame["cutoff"].unique()).strftime("%Y-%m"))
    summary = {
        "cutoffs": cutoffs,
        "labels": {
            target: [int(frame[target].notna().sum()), float(frame[target].sum())] for target in ALL_TARGETS
        },
        "tables": {name: len(store.table(name)) for name in sorted(TABLES)},
    }
    digest.update(json.dumps(summary, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def _run_params(
    settings: Settings, split: TemporalSplit, rows: dict[str, int], feature_count: int
) -> dict[str, object]:
    params: dict[str, object] = {
        name: getattr(settings, name)
        for name in (
            "horizon_months",
            "cutoff_step_months",
            "min_history_months",
            "validation_fraction",
            "num_boost_round",
            "early_stopping_rounds",
            "seed",
        )
    }
    params.update({f"lgb_{name}": value for name, value in lightgbm_params(settings).items()})
    params.update({name: getattr(settings, name) for name in OPTION_NAMES})
    params.update({f"cutoffs_{block}": text or "-" for block, text in split.describe().items()})
    params.update({f"rows_{block}": count for block, count in rows.items()})
    params["embargo_months"] = split.embargo_months
    params["features"] = feature_count
    return params


def _feature_document(catalogue: Catalogue) -> dict[str, object]:
    return {
        "features": [
            {"name": feature.name, "cause_group": feature.cause_group, "description": feature.description}
            for feature in catalogue.features
        ]
    }


def _fit_targets(
    frame: pd.DataFrame, feature_names: list[str], settings: Settings, timings: dict[str, float]
) -> dict[str, TargetFit]:
    """Fit every target that has enough data; skipped targets are absent from the result."""
    fits = {}
    for target in ALL_TARGETS:
        step = time.perf_counter()
        fitted = fit_target(
            frame,
            target,
            feature_names,
            settings,
            min_train_positives=settings.min_train_positives,
            review_share=settings.review_share,
        )
        timings[f"fit_{target}"] = time.perf_counter() - step
        if fitted is not None:
            fits[target] = fitted
    return fits


def _make_bundle(
    version: str,
    store: Store,
    catalogue: Catalogue,
    groups: dict[str, CauseGroup],
    fits: dict[str, TargetFit],
    training: dict[str, object],
) -> ModelBundle:
    return ModelBundle(
        version=version,
        feature_names=catalogue.feature_names,
        cause_group_of=catalogue.cause_group_of,
        measures={name: list(group.measures) for name, group in groups.items()},
        models={target: fitted.model for target, fitted in fits.items()},
        lines=store.table("poverty_lines"),
        period=store.info.period,
        metrics={target: fitted.metrics for target, fitted in fits.items()},
        cause_labels={name: group.label for name, group in groups.items()},
        measure_conditions=measure_conditions(groups),
        training=training,
        catalogue_text=catalogue.path.read_text(encoding="utf-8"),
        income_loss_features={
            feature.name: feature.cause_group
            for feature in catalogue.features
            if feature.aggregation == "loss_since_event"
        },
        shared_groups={
            name: dict(group.shared_by_income_loss)
            for name, group in groups.items()
            if group.shared_by_income_loss is not None
        },
    )


def _alias_for_new_models(client: MlflowClient, prefix: str) -> str:
    """Return ``champion`` when no registered model under ``prefix`` carries it yet, else ``challenger``."""
    try:
        champion = find_alias(client, prefix, CHAMPION)
    except RegistryError as error:
        logger.warning("Registering the new models as %s: %s", CHALLENGER, error)
        return CHALLENGER
    if champion is None:
        logger.info("No registered model under %r has the %r alias; the new models get it", prefix, CHAMPION)
        return CHAMPION
    logger.info("Champion is bundle %s; the new models become the %s", champion.bundle_version, CHALLENGER)
    return CHALLENGER


def train(store: Store, settings: Settings) -> TrainResult:
    """Train a calibrated LightGBM model per target, track the run in MLflow and register the models.

    The first trained bundle becomes the champion and is published to
    ``<work_dir>/models/champion``; later ones become the challenger.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    groups = load_cause_groups(settings.cause_groups_path)
    catalogue = load_catalogue(settings.catalogue_path, set(groups))
    feature_names = catalogue.feature_names

    step = time.perf_counter()
    frame = build_training_frame(store, catalogue, settings)
    timings["features_and_labels"] = time.perf_counter() - step
    split = split_cutoffs(frame["cutoff"], settings.horizon_months, settings.validation_fraction)
    frame = assign_blocks(frame, split)
    rows = frame[BLOCK_COLUMN].value_counts().reindex(list(BLOCKS), fill_value=0).astype(int).to_dict()

    fits = _fit_targets(frame, feature_names, settings, timings)
    skipped = [target for target in ALL_TARGETS if target not in fits]
    if not fits:
        raise ValueError(
            f"no target could be trained from store {store.folder}: every target lacks positive labels "
            f"or held-out rows (rows per block {rows}); see the warnings above"
        )

    # MLflow is imported here because importing it takes seconds.
    import mlflow
    from mlflow import MlflowClient

    step = time.perf_counter()
    fingerprint = data_fingerprint(frame, store)
    metrics = {target: fitted.metrics for target, fitted in fits.items()}
    flat_metrics = {
        f"{target}_{name}": value for target, values in metrics.items() for name, value in values.items()
    }
    prefix = settings.registered_model_prefix
    sample = frame[feature_names].head(5).astype(np.float64)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with tracking.training_run(
        settings.mlflow_tracking_uri, settings.mlflow_experiment, run_name=f"train-{stamp}"
    ) as run:
        run_id = run.info.run_id
        version = f"{stamp}-{run_id[:8]}"
        # Set first, so that the registry can map these model versions to the bundle during the run.
        mlflow.set_tag(BUNDLE_VERSION_TAG, version)
        client = MlflowClient()
        alias = _alias_for_new_models(client, prefix)
        registered = {
            target: tracking.register_model(
                fitted.model.booster, target, prefix, sample, tags={BUNDLE_VERSION_TAG: version}
            )
            for target, fitted in fits.items()
        }
        point_alias(client, prefix, alias, RegisteredBundle(version, run_id, registered))
        training = {
            "mlflow_run_id": run_id,
            "mlflow_experiment": settings.mlflow_experiment,
            "registered_models": {
                target: {"name": tracking.registered_model_name(prefix, target), "version": number}
                for target, number in registered.items()
            },
            "data_fingerprint": fingerprint,
            "data_fingerprint_kind": FINGERPRINT_KIND,
            "dataset": store.info.name,
            "cutoffs": split.describe(),
            "embargo_months": split.embargo_months,
            "horizon_months": settings.horizon_months,
            "cutoff_step_months": settings.cutoff_step_months,
            "rows": rows,
            "skipped_targets": skipped,
        }
        bundle = _make_bundle(version, store, catalogue, groups, fits, training)
        bundle_path = bundle.save(models_dir(settings) / version)
        tracking.log_run_contents(
            params=_run_params(settings, split, rows, len(feature_names)),
            metrics=flat_metrics,
            tags={
                "data_fingerprint": fingerprint,
                "data_fingerprint_kind": FINGERPRINT_KIND,
                "dataset": store.info.name,
                "bundle_version": version,
                "skipped_targets": ",".join(skipped) or "none",
            },
            json_artifacts={"features.json": _feature_document(catalogue), "split.json": split.describe()},
            bundle_folder=bundle_path,
        )
    timings["mlflow_and_bundle"] = time.perf_counter() - step
    if alias == CHAMPION:
        publish_champion(bundle_path, settings)
    else:
        ensure_champion_folder(settings)

    elapsed = time.perf_counter() - started
    timings["total"] = elapsed
    result = TrainResult(
        version=version,
        run_id=run_id,
        bundle_path=bundle_path,
        metrics=metrics,
        rows=rows,
        split=split,
        elapsed_seconds=elapsed,
        review_share=settings.review_share,
        skipped=skipped,
        registered_versions=registered,
        timings=timings,
        alias=alias,
    )
    logger.info(
        "Trained bundle %s in %.1f s (%s)",
        version,
        elapsed,
        ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()),
    )
    return result
