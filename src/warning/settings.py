"""Settings read from environment variables (``POVWARN_*``) and an optional TOML file.

The file is ``povwarn.toml`` in the working directory, or the path in
``POVWARN_CONFIG``. Environment variables override the file, and the file
overrides the defaults below.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

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

    # Risk bands: a probability at or above a threshold gets that band.
    band_thresholds: dict[str, float] = Field(default_factory=lambda: {"high": 0.5, "medium": 0.2, "low": 0.0})
    top_causes: int = Field(3, ge=1)

    # Service.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_households_per_request: int = Field(1000, ge=1)

    @field_validator("band_thresholds")
    @classmethod
    def _bands_cover_zero(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or min(value.values()) > 0:
            raise ValueError(f"POVWARN_BAND_THRESHOLDS must include a band starting at 0, got {value}")
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
