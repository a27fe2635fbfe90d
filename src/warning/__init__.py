"""Poverty early warning: relapse and new-poverty risk for urban and rural households."""

__version__ = "0.1.0"
