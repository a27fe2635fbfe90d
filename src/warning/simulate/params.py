"""Load the simulator's parameters and read them by dotted path with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

DEFAULT_PARAMETERS_PATH = Path(__file__).with_name("parameters.yaml")


class Parameters:
    """Nested parameter values read from YAML, addressed as ``"section.key"``."""

    def __init__(self, values: dict[str, Any], source: Path) -> None:
        self.values = values
        self.source = source

    @classmethod
    def load(cls, path: Path | None = None) -> Parameters:
        path = Path(path) if path is not None else DEFAULT_PARAMETERS_PATH
        if not path.is_file():
            raise FileNotFoundError(f"simulator parameters file {path} not found")
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"simulator parameters file {path} must contain a mapping at the top level")
        return cls(values, path)

    def get(self, key: str) -> Any:
        node: Any = self.values
        walked: list[str] = []
        for part in key.split("."):
            walked.append(part)
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"simulator parameters {self.source}: missing key {'.'.join(walked)!r}")
            node = node[part]
        return node

    def number(self, key: str, minimum: float | None = None, maximum: float | None = None) -> float:
        """Return a number, checked against optional bounds."""
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"simulator parameters {self.source}: {key} must be a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"simulator parameters {self.source}: {key} must be >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise ValueError(f"simulator parameters {self.source}: {key} must be <= {maximum}, got {value!r}")
        return float(value)

    def probability(self, key: str) -> float:
        return self.number(key, 0.0, 1.0)

    def integer(self, key: str, minimum: int | None = None) -> int:
        value = self.number(key, minimum)
        if value != int(value):
            raise ValueError(
                f"simulator parameters {self.source}: {key} must be a whole number, got {value!r}"
            )
        return int(value)

    def vector(self, key: str, length: int | None = None) -> np.ndarray:
        """Return a list of numbers as a float array, checked for length."""
        value = self.get(key)
        if not isinstance(value, list) or not all(isinstance(item, (int, float)) for item in value):
            raise ValueError(
                f"simulator parameters {self.source}: {key} must be a list of numbers, got {value!r}"
            )
        if length is not None and len(value) != length:
            raise ValueError(
                f"simulator parameters {self.source}: {key} must have {length} values, got {len(value)}"
            )
        return np.asarray(value, dtype=np.float64)

    def distribution(self, key: str, length: int | None = None) -> np.ndarray:
        """Return a probability vector, checked to be non-negative and to sum to 1."""
        values = self.vector(key, length)
        if (values < 0).any() or not np.isclose(values.sum(), 1.0, atol=1e-6):
            raise ValueError(
                f"simulator parameters {self.source}: {key} must be non-negative and sum to 1, "
                f"got {values.tolist()} (sum {values.sum():.6f})"
            )
        return values / values.sum()

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if not isinstance(value, dict):
            raise ValueError(f"simulator parameters {self.source}: {key} must be a mapping, got {value!r}")
        return value
