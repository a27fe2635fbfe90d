"""Settings read from environment variables (``POVWARN_*``) and an optional TOML file.

The file is ``povwarn.toml`` in the working directory, or the path in
``POVWARN_CONFIG``. Environment variables override the file, and the file
overrides the defaults below.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _config_file() -> Path:
    return Path(os.environ.get("POVWARN_CONFIG", "povwarn.toml"))


class Settings(BaseSettings):
    """Every tunable of the pipeline and the service."""

    model_config = SettingsConfigDict(env_prefix="POVWARN_", extra="ignore")

    # Where things live.
    work_dir: Path = Field(Path("out"), description="folder for simulated data, stores and reports")
    catalogue_path: Path = Field(PROJECT_ROOT / "features" / "catalogue.yaml")
    cause_groups_path: Path = Field(PROJECT_ROOT / "features" / "cause_groups.yaml")
    # MLflow 3 no longer accepts a plain folder as tracking store, so runs go to
    # SQLite inside mlruns/ and artifacts beside it.
    mlflow_tracking_uri: str = Field(f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}")
    model_refresh_seconds: float = Field(
        60.0,
        ge=0,
        description="seconds between the API's checks for a new champion; 0 loads it only at start-up",
    )
    registered_model_prefix: str = Field("poverty-warning", description="registry name prefix; the target is appended")
    mlflow_experiment: str = "poverty-early-warning"
    database_url: str = Field("", description="SQLAlchemy URL of the score store; empty means SQLite in work_dir")

    # Simulator defaults.
    simulate_households: int = Field(50_000, ge=10)
    simulate_months: int = Field(60, ge=24)
    simulate_start: str = "2021-01"
    seed: int = 20210101

    # Targets and cut-offs.
    horizon_months: int = Field(12, ge=1)
    cutoff_step_months: int = Field(3, ge=1, description="months between training cut-offs")
    min_history_months: int = Field(12, ge=1, description="history required before the first cut-off")
    validation_fraction: float = Field(0.25, gt=0, lt=1, description="share of the latest cut-offs held out")

    # Model.
    num_boost_round: int = Field(400, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    num_leaves: int = Field(31, ge=2)
    learning_rate: float = Field(0.05, gt=0)
    num_threads: int = Field(2, ge=1)
    min_train_positives: int = Field(20, ge=1, description="a target with fewer positive training labels is skipped")
    review_share: float = Field(
        0.05, gt=0, lt=1, description="share of the riskiest households staff can visit, for recall and precision"
    )

    # Calibration: ``auto`` fits both methods on folds of the validation block
    # and keeps the one with the lower out-of-fold criterion.
    calibration_method: Literal["auto", "isotonic", "platt"] = "auto"
    calibration_criterion: Literal["brier", "ece"] = Field(
        "brier", description="out-of-fold score that decides between isotonic and Platt calibration"
    )
    calibration_folds: int = Field(5, ge=2, description="folds of the validation block, grouped by household")

    # Evaluation: rolling-origin backtest, the rule baseline and fairness slices.
    capacity_share: float = Field(
        0.05, gt=0, le=1, description="share of each county's households staff can visit at a cut-off"
    )
    backtest_origins: int = Field(4, ge=1, description="successive origins of the rolling-origin backtest")
    backtest_test_cutoffs: int = Field(1, ge=1, description="labelled cut-offs tested after each origin")
    # The cap bounds the backtest's cost on large stores. At its default, a
    # store the size of the default simulation trains on every household.
    backtest_max_train_households: int = Field(
        50_000, ge=0, description="households sampled for each origin's training; 0 uses all of them"
    )
    rule_income_multiplier: float = Field(
        1.5, gt=0, description="the rule flags trailing income per person under this multiple of the line"
    )
    rules_path: Path = Field(
        PROJECT_ROOT / "features" / "rules.yaml", description="named-risk rules of departments (YAML)"
    )
    max_recall_gap: float = Field(
        0.10, ge=0, le=1, description="largest allowed gap in recall at capacity between slices of a dimension"
    )
    slice_min_positives: int = Field(
        20, ge=1, description="a slice with fewer positive labels is reported but left out of the recall gap"
    )

    # Promotion gate. For every target, the challenger's backtest mean ROC-AUC and
    # recall at capacity may fall below the champion's by at most their tolerance,
    # and its mean ECE may rise by at most its tolerance. Its largest slice recall
    # gap must also be within max_recall_gap.
    promotion_auc_tolerance: float = Field(0.005, ge=0, le=1, description="allowed fall in mean ROC-AUC")
    promotion_recall_tolerance: float = Field(
        0.01, ge=0, le=1, description="allowed fall in mean recall at capacity"
    )
    promotion_ece_tolerance: float = Field(0.01, ge=0, le=1, description="allowed rise in mean ECE")
    promotion_same_origins: bool = Field(
        True, description="require both backtests to use the same origins, so they compare like with like"
    )
    model_cards_dir: Path = Field(PROJECT_ROOT / "models" / "cards", description="folder of generated model cards")
    known_limits_path: Path = Field(
        PROJECT_ROOT / "models" / "known_limits.yaml", description="limits that model cards list per dataset"
    )

    # Drift: population stability index between the training window and the newest month.
    drift_bins: int = Field(10, ge=2, description="quantile bins of the training window per feature")
    drift_epsilon: float = Field(1e-4, gt=0, lt=0.01, description="share given to an empty bin before the log")
    drift_moderate_psi: float = Field(0.1, gt=0, description="PSI from which a feature's drift is moderate")
    drift_major_psi: float = Field(0.2, gt=0, description="PSI above which a feature's drift is major")

    # Risk bands: a probability at or above a threshold gets that band.
    band_thresholds: dict[str, float] = Field(default_factory=lambda: {"high": 0.5, "medium": 0.2, "low": 0.0})
    top_causes: int = Field(3, ge=1)
    min_cause_share: float = Field(
        0.1, ge=0, lt=1, description="a cause after the first is listed, with its measures, only from this share of the risk"
    )

    # Service.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_households_per_request: int = Field(1000, ge=1)
    # An estimate: 1000 households with 10 years of monthly income from every
    # source take about 40 MB of JSON.
    max_request_bytes: int = Field(
        50_000_000, ge=1, description="largest request body in bytes; a larger body gets HTTP 413 before parsing"
    )

    # Department feeds.
    id_hash_secret: SecretStr | None = Field(
        None, description="key of the HMAC that replaces identity numbers; required to ingest feeds"
    )
    region_codes_path: Path | None = Field(
        None, description="CSV of region codes with validity dates and successors; empty uses the packaged table"
    )
    feed_specs_dir: Path | None = Field(
        None, description="folder of department feed specifications (*.yaml); empty uses the packaged ones"
    )
    feed_unit_error_ratio: float = Field(
        1000.0, gt=1, description="an amount this many times its usual level is quarantined as a likely unit error"
    )
    feed_partitions: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="household partitions of a new feed store; empty: one per feed_partition_megabytes delivered",
    )
    feed_partition_megabytes: float = Field(
        256.0, gt=0, description="delivered feed files per household partition when a feed store is created"
    )
    feed_unit_level_quantile: float = Field(
        0.75,
        ge=0.5,
        lt=1,
        description="quantile of a person's or household's amounts taken as its usual level in the unit check",
    )
    feed_block_megabytes: float = Field(
        64.0,
        ge=0.01,
        description="feed files are read in blocks of about this many megabytes of text; a row must fit in one",
    )
    feed_unit_min_rows: int = Field(
        4, ge=2, description="rows a person or household needs before its amounts are checked for unit errors"
    )

    @field_validator("band_thresholds")
    @classmethod
    def _valid_band_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("POVWARN_BAND_THRESHOLDS must name at least one band, got an empty mapping")
        for band, threshold in value.items():
            if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
                raise ValueError(
                    f"POVWARN_BAND_THRESHOLDS: band {band!r} has threshold {threshold}, "
                    f"which is not a probability between 0 and 1; got {value}"
                )
        thresholds = list(value.values())
        if len(set(thresholds)) < len(thresholds):
            repeated = sorted({threshold for threshold in thresholds if thresholds.count(threshold) > 1})
            raise ValueError(
                f"POVWARN_BAND_THRESHOLDS: thresholds must be distinct, but {repeated} is given to "
                f"several bands; got {value}"
            )
        if min(thresholds) != 0.0:
            raise ValueError(f"POVWARN_BAND_THRESHOLDS must include a band starting at 0, got {value}")
        return value

    @field_validator("drift_major_psi")
    @classmethod
    def _major_above_moderate(cls, value: float, info: ValidationInfo) -> float:
        moderate = info.data.get("drift_moderate_psi")
        if moderate is not None and value <= moderate:
            raise ValueError(
                f"POVWARN_DRIFT_MAJOR_PSI must be above POVWARN_DRIFT_MODERATE_PSI ({moderate}), got {value}"
            )
        return value

    @property
    def store_dir(self) -> Path:
        return self.work_dir / "store"

    @property
    def score_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.work_dir / 'scores.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml, file_secret_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
