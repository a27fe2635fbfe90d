"""Monitoring of a deployed model: drift of features and scores since training."""

from warning.monitor.drift import DriftReport, VariableDrift, drift_level, measure_drift, write_drift_report
from warning.monitor.psi import StabilityIndex, population_stability

__all__ = [
    "DriftReport",
    "StabilityIndex",
    "VariableDrift",
    "drift_level",
    "measure_drift",
    "population_stability",
    "write_drift_report",
]
