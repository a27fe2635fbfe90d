"""The HTTP API: predict from household histories, list batch scores, health and metrics."""

from warning.api.app import create_app, export_openapi

__all__ = ["create_app", "export_openapi"]
