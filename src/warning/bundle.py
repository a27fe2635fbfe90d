"""A trained model bundle: what scoring and serving need, in one folder.

Training writes a bundle for every run and logs it to MLflow; scoring and the
API load the champion's. A bundle holds, per target, a LightGBM booster and the
calibrator of its probabilities, plus the feature list, the cause group of each
feature, the measures of each cause group, the poverty lines the model was
trained with and the dataset's period.

Folder layout::

    bundle.json             version, targets, features, cause groups, measures, labels,
                            period, metrics, training provenance
    <target>.lgb.txt        LightGBM model text
    <target>.calibrator.json  calibration method and its parameters (isotonic knots x, y
                            or Platt slope and intercept), or absent
    poverty_lines.parquet   the lines table used for training
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from warning.settings import Settings

logger = logging.getLogger(__name__)

# Name of the folder under ``<work_dir>/models`` that the service loads, and of
# the MLflow Model Registry alias set on the registered versions it contains.
CHAMPION = "champion"
# The cause group that features without a specific cause count toward.
OTHER_GROUP = "other"
ISOTONIC_FLOOR = 0.001


# Calibration methods a calibrator can apply; ``auto`` in the settings chooses between them.
CALIBRATION_METHODS = ("isotonic", "platt")
# Raw probabilities are clipped this far inside (0, 1) before taking log-odds,
# so that a probability of exactly 0 or 1 maps to a finite value.
LOGIT_CLIP = 1e-7


def log_odds(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probability, dtype=np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(clipped) - np.log1p(-clipped)


@dataclass
class Calibrator:
    """A monotone map from raw model probability to calibrated probability.

    ``isotonic`` keeps the knots ``x``, ``y`` of an isotonic regression and
    applies them by linear interpolation. ``platt`` is a logistic curve on the
    raw log-odds, ``1 / (1 + exp(-(slope * logit(raw) + intercept)))``. Both are
    stored as plain numbers, so a bundle needs no pickled scikit-learn objects.
    """

    x: np.ndarray = field(default_factory=lambda: np.empty(0))
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    method: str = "isotonic"
    slope: float = 1.0
    intercept: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {self.method!r}")
        if self.method == "isotonic" and (len(self.x) == 0 or len(self.x) != len(self.y)):
            raise ValueError(
                f"an isotonic calibrator needs as many y as x knots and at least one, got {len(self.x)} x "
                f"and {len(self.y)} y"
            )

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.slope * log_odds(raw) + self.intercept)))
        # An isotonic step can reach exactly 0 or 1, which staff would read as
        # certainty that a few hundred validation rows cannot support.
        return np.clip(np.interp(raw, self.x, self.y), ISOTONIC_FLOOR, 1.0 - ISOTONIC_FLOOR)

    def to_json(self) -> dict[str, object]:
        if self.method == "platt":
            return {"method": "platt", "slope": self.slope, "intercept": self.intercept}
        return {"method": "isotonic", "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_json(cls, body: dict[str, object]) -> Calibrator:
        # Bundles saved before Platt scaling existed hold only the isotonic knots.
        method = str(body.get("method", "isotonic"))
        if method == "platt":
            return cls(method="platt", slope=float(body["slope"]), intercept=float(body["intercept"]))
        return cls(x=np.asarray(body["x"], dtype=np.float64), y=np.asarray(body["y"], dtype=np.float64))


@dataclass
class TargetModel:
    """The booster and calibrator of one target (relapse or new poverty)."""

    target: str
    booster: lgb.Booster
    calibrator: Calibrator | None = None

    def raw_probability(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(features, num_threads=1)

    def probability(self, features: np.ndarray) -> np.ndarray:
        raw = self.raw_probability(features)
        return raw if self.calibrator is None else self.calibrator.apply(raw)

    def contributions(self, features: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Return TreeSHAP contributions in log-odds, one column per feature plus the bias last."""
        return self.booster.predict(features, pred_contrib=True, num_threads=num_threads)


@dataclass
class ModelBundle:
    """Everything needed to score and explain households without the training data."""

    version: str
    feature_names: list[str]
    cause_group_of: dict[str, str]
    measures: dict[str, list[str]]
    models: dict[str, TargetModel]
    lines: pd.DataFrame
    period: str = "month"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # Display label of each cause group, e.g. "illness" -> "Illness".
    cause_labels: dict[str, str] = field(default_factory=dict)
    # How the bundle was made: MLflow run id, data fingerprint, cut-offs and rows per block.
    training: dict[str, object] = field(default_factory=dict)
    # Feature -> cause group of the features measuring income lost to a shock, and
    # the groups (such as income close to the line) whose contribution is shared
    # among the causes in proportion to that lost income. See warning.explain.
    income_loss_features: dict[str, str] = field(default_factory=dict)
    # The feature catalogue the model was trained with, as YAML text, so that
    # scoring computes the same features after the catalogue file changes.
    catalogue_text: str = ""
    shared_groups: dict[str, dict[str, object]] = field(default_factory=dict)
    # Measure -> condition on the households table that a household must meet to be offered it.
    measure_conditions: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return list(self.models)

    def feature_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the model inputs of a feature frame in training order."""
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise KeyError(f"feature frame lacks {missing}; the catalogue changed since this model was trained")
        return frame[self.feature_names].to_numpy(dtype=np.float64)

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for target, model in self.models.items():
            model.booster.save_model(str(folder / f"{target}.lgb.txt"))
            calibrator_path = folder / f"{target}.calibrator.json"
            if model.calibrator is not None:
                calibrator_path.write_text(json.dumps(model.calibrator.to_json()))
            elif calibrator_path.exists():
                calibrator_path.unlink()
        self.lines.to_parquet(folder / "poverty_lines.parquet", index=False)
        if self.catalogue_text:
            (folder / "catalogue.yaml").write_text(self.catalogue_text, encoding="utf-8")
        body = {
            "version": self.version,
            "targets": self.targets,
            "feature_names": self.feature_names,
            "cause_group_of": self.cause_group_of,
            "measures": self.measures,
            "period": self.period,
            "metrics": self.metrics,
            "cause_labels": self.cause_labels,
            "training": self.training,
            "income_loss_features": self.income_loss_features,
            "shared_groups": self.shared_groups,
            "measure_conditions": self.measure_conditions,
        }
        (folder / "bundle.json").write_text(json.dumps(body, indent=2, ensure_ascii=False))
        logger.info("Saved model bundle %s with targets %s to %s", self.version, self.targets, folder)
        return folder

    @classmethod
    def load(cls, folder: Path) -> ModelBundle:
        folder = Path(folder)
        manifest = folder / "bundle.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} not found; train a model first with `povwarn train`")
        body = json.loads(manifest.read_text())
        models = {}
        for target in body["targets"]:
            booster = lgb.Booster(model_file=str(folder / f"{target}.lgb.txt"))
            calibrator_path = folder / f"{target}.calibrator.json"
            calibrator = Calibrator.from_json(json.loads(calibrator_path.read_text())) if calibrator_path.exists() else None
            models[target] = TargetModel(target=target, booster=booster, calibrator=calibrator)
        bundle = cls(
            version=body["version"],
            feature_names=body["feature_names"],
            cause_group_of=body["cause_group_of"],
            measures=body["measures"],
            models=models,
            lines=pd.read_parquet(folder / "poverty_lines.parquet"),
            period=body.get("period", "month"),
            metrics=body.get("metrics", {}),
            cause_labels=body.get("cause_labels", {}),
            training=body.get("training", {}),
            income_loss_features=body.get("income_loss_features", {}),
            shared_groups=body.get("shared_groups", {}),
            measure_conditions=body.get("measure_conditions", {}),
            catalogue_text=(folder / "catalogue.yaml").read_text(encoding="utf-8")
            if (folder / "catalogue.yaml").exists()
            else "",
        )
        logger.info("Loaded model bundle %s from %s", bundle.version, folder)
        return bundle


def models_dir(settings: Settings) -> Path:
    """Return the folder that contains one bundle folder per trained version plus ``champion``."""
    return Path(settings.work_dir) / "models"


def champion_path(settings: Settings) -> Path:
    return models_dir(settings) / CHAMPION


def load_champion(settings: Settings) -> ModelBundle:
    """Load the bundle the service scores with, from ``<work_dir>/models/champion``."""
    return ModelBundle.load(champion_path(settings))


def publish_champion(bundle_folder: Path, settings: Settings) -> Path:
    """Copy a saved bundle folder to ``<work_dir>/models/champion``, replacing the previous champion.

    The copy is made next to the target and then renamed into place, so a
    reader sees either the old or the new champion complete. Between the two
    renames the folder is briefly absent.
    """
    target = champion_path(settings)
    staging = target.with_name(f".{CHAMPION}-{uuid.uuid4().hex}")
    shutil.copytree(bundle_folder, staging)
    retired = None
    if target.exists():
        retired = target.with_name(f".{CHAMPION}-retired-{uuid.uuid4().hex}")
        target.rename(retired)
    staging.rename(target)
    if retired is not None:
        shutil.rmtree(retired)
    logger.info("Published bundle %s as the champion at %s", bundle_folder, target)
    return target
