"""Department feeds: person-level exports checked, linked to households, hashed and merged into the store.

``ingest_feeds(source_dir, store_dir)`` ingests one delivery of feed files
(see ``warning.feeds.pipeline``). The feeds are declared per department in
``specs/*.yaml`` (``warning.feeds.spec``). Region codes and their successors
are in ``region_codes.csv`` (``warning.feeds.regions``). Identity numbers are
checked and hashed by ``warning.feeds.identity``.
"""

from warning.feeds.identity import IdentityHasher, check_character, mask_identity
from warning.feeds.pipeline import (
    FEEDS_DIR,
    FeedIngestError,
    MissingSecretError,
    ingest_feeds,
    resolve_secret,
)
from warning.feeds.regions import RegionCodes
from warning.feeds.report import FeedCounts, FeedReport, FileReport
from warning.feeds.spec import ExportSpec, SpecError, load_specs
from warning.store import RESCORE_FILE

__all__ = [
    "FEEDS_DIR",
    "RESCORE_FILE",
    "ExportSpec",
    "FeedCounts",
    "FeedIngestError",
    "FeedReport",
    "FileReport",
    "IdentityHasher",
    "MissingSecretError",
    "RegionCodes",
    "SpecError",
    "check_character",
    "ingest_feeds",
    "load_specs",
    "mask_identity",
    "resolve_secret",
]
