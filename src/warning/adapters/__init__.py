"""Adapters that convert real public survey data into contract dataset folders."""

from warning.adapters.nlswork import AdapterSummary, convert_nlswork, default_nlswork_path, load_mapping

__all__ = ["AdapterSummary", "convert_nlswork", "default_nlswork_path", "load_mapping"]
