"""Commit a delivery to the store so that an ingest stopped at any point is completed by the next one.

An ingest writes everything it changes beside the store first, under
``<work>/install/`` with the paths the files will have in the store: feed
state and history, lineage and conflicts, households to re-score, the
delivery's report and the delivery log. It then writes a marker,
``feeds/install.json``, naming that folder, moves the files into place and
removes the marker. Moving a file is a rename, so repeating the moves after
an interruption finishes the commit without doing anything twice. The next
ingest into the store repeats them when it finds the marker. The contract
tables are replaced before the marker by ``warning.feeds.build``, which
leaves the store as it was when it fails; a delivery stopped before its
marker is simply ingested again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

INSTALL_DIR = "install"
MARKER_FILE = "install.json"
# Folders replaced whole, so that files of an earlier build that this one did not write go away.
REPLACED_FOLDERS = ("feeds/lineage", "feeds/conflicts")
DELIVERY_FOLDERS = "feeds/deliveries"


def staged_path(work: Path, relative: str) -> Path:
    """Return where a file that will be at ``relative`` in the store is staged, creating its folder."""
    path = work / INSTALL_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def stage_frame(work: Path, relative: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(staged_path(work, relative), index=False)


def stage_appended(store_dir: Path, work: Path, relative: str, frame: pd.DataFrame) -> None:
    """Stage the store's Parquet file at ``relative`` with ``frame``'s rows added after its own."""
    if not len(frame):
        return
    current = store_dir / relative
    if current.is_file():
        frame = pd.concat([pd.read_parquet(current), frame], ignore_index=True)
    stage_frame(work, relative, frame)


def commit(store_dir: Path, work: Path) -> None:
    """Move everything staged in ``work`` into the store, behind a marker that makes the moves resumable."""
    feeds_dir = store_dir / "feeds"
    marker = feeds_dir / MARKER_FILE
    pending = marker.with_suffix(".tmp")
    pending.write_text(json.dumps({"work": work.name}) + "\n", encoding="utf-8")
    os.replace(pending, marker)
    _apply(store_dir, work / INSTALL_DIR)
    marker.unlink()


def is_committing(feeds_dir: Path, work: Path) -> bool:
    """Whether a marker names ``work``, so that its staged files must be kept for the next ingest."""
    marker = feeds_dir / MARKER_FILE
    return marker.is_file() and json.loads(marker.read_text(encoding="utf-8"))["work"] == work.name


def recover(store_dir: Path, work_prefix: str) -> None:
    """Finish a commit that an earlier ingest started, then remove the work folders that stopped ingests left."""
    feeds_dir = store_dir / "feeds"
    marker = feeds_dir / MARKER_FILE
    if marker.is_file():
        work = feeds_dir / json.loads(marker.read_text(encoding="utf-8"))["work"]
        logger.warning("Finishing the commit of %s, which an ingest stopped part way", work)
        _apply(store_dir, work / INSTALL_DIR)
        marker.unlink()
    for folder in sorted(feeds_dir.glob(f"{work_prefix}*")):
        logger.warning("Removing %s, left by an ingest that was stopped part way", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _apply(store_dir: Path, install: Path) -> None:
    """Rename every staged folder and file into the store; running it again after a stop is harmless."""
    for relative in REPLACED_FOLDERS:
        staged = install / relative
        if staged.is_dir():
            shutil.rmtree(store_dir / relative, ignore_errors=True)
            staged.rename(store_dir / relative)
    deliveries = install / DELIVERY_FOLDERS
    if deliveries.is_dir():
        for staged in sorted(deliveries.iterdir()):
            target = store_dir / DELIVERY_FOLDERS / staged.name
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(target)
    moved = 0
    for staged in sorted(path for path in install.rglob("*") if path.is_file()):
        target = store_dir / staged.relative_to(install)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        moved += 1
    logger.info("Committed %d files to %s", moved, store_dir)
