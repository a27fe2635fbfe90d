"""Benchmark feed ingest: simulate households as department feeds, then time ``ingest_feeds``.

Each size runs in its own process, so that its peak memory (max RSS) is its own:

    python -m benchmarks.ingest_feeds --households 25000 100000 --months 36

Data is generated in a temporary folder and removed afterwards. Sizes above
``--households-per-part`` are simulated in parts (``simulate_feeds``). To
time a large size without simulating it in the same process, generate it
once and ingest it with ``--data``. ``--then`` ingests a second delivery
into the same store afterwards, such as the last month split off with
``--split-month``:

    python -m benchmarks.ingest_feeds --generate /data/1m --households 1000000
    python -m benchmarks.ingest_feeds --split-month 2023-12 /data/1m/feeds /data/first /data/last
    python -m benchmarks.ingest_feeds --households 1000000 --data /data/first --then /data/last

This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "benchmark-only-secret-0123456789"


def simulate_feeds(folder: Path, households: int, months: int, file_format: str, parts: int) -> Path:
    """Simulate ``households`` as one delivery of feeds in ``folder/feeds``, in ``parts`` separate runs.

    A simulation holds all its households in memory (4.6 GB peak for 100,000
    households over 36 months, measured), so large sizes are simulated in
    parts with their own seeds and disjoint identity numbers, each part
    writing its own file per export (``-partNN``).
    """
    from warning.simulate import simulate

    feeds = folder / "feeds"
    feeds.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        part_dir = folder / f"part{part:02d}"
        simulate(
            part_dir,
            households=households // parts + (1 if part < households % parts else 0),
            months=months,
            start="2021-01",
            seed=1 + part,
            file_format=file_format,  # type: ignore[arg-type]
            as_feeds=True,
            feed_part=part if parts > 1 else None,
        )
        for path in (part_dir / "feeds").iterdir():
            path.rename(feeds / path.name)
        shutil.rmtree(part_dir)
        print(f"simulated part {part + 1} of {parts}", file=sys.stderr, flush=True)
    return feeds


def split_month(feeds: Path, month: str, first: Path, second: Path) -> None:
    """Copy a delivery into two: rows of months before ``month`` (and undated rows), and rows of ``month``.

    Monthly tables (income, claims, assistance, events) are split by their
    month or date column (``warning.simulate.deliveries``); the other exports
    go whole into the first delivery, and rows after ``month`` are dropped.
    """
    from warning.simulate.deliveries import split_monthly_deliveries

    shutil.copytree(feeds, first)
    later = Path(tempfile.mkdtemp(prefix="later-", dir=first.parent))
    try:
        split_monthly_deliveries(first, later, month)
        second.mkdir(parents=True, exist_ok=True)
        if (later / month).is_dir():
            for path in (later / month).iterdir():
                path.rename(second / path.name)
    finally:
        shutil.rmtree(later, ignore_errors=True)


def measure(
    households: int,
    months: int,
    file_format: str,
    keep: Path | None,
    parts: int,
    data: Path | None,
    then: Path | None = None,
) -> dict[str, object]:
    """Simulate one size as feeds (or reuse ``data``), ingest it, and return timings, rows and peak memory."""
    from warning.feeds import ingest_feeds

    folder = Path(tempfile.mkdtemp(prefix="feeds-bench-", dir=keep))
    try:
        began = time.perf_counter()
        feeds = data if data is not None else simulate_feeds(folder, households, months, file_format, parts)
        simulated = time.perf_counter() - began
        feed_bytes = sum(path.stat().st_size for path in feeds.iterdir())
        began = time.perf_counter()
        report = ingest_feeds(feeds, folder / "store", secret=SECRET, as_of="2024-12-31")
        ingested = time.perf_counter() - began
        store_bytes = sum(path.stat().st_size for path in (folder / "store").rglob("*") if path.is_file())
        layout = json.loads((folder / "store" / "feeds" / "layout.json").read_text(encoding="utf-8"))
        following: dict[str, object] = {}
        if then is not None:
            began = time.perf_counter()
            second = ingest_feeds(then, folder / "store", secret=SECRET, as_of="2024-12-31")
            following = {
                "then_feed_rows": second.totals["read"],
                "then_kept": second.totals["kept"],
                "then_corrected": second.totals["corrected"],
                "then_rescore_households": second.rescore_households,
                "then_ingest_seconds": round(time.perf_counter() - began, 1),
                "then_phase_seconds": second.phase_seconds,
            }
        totals = report.totals
        slowest = sorted(report.feeds.values(), key=lambda counts: counts.read, reverse=True)[:3]
        return {
            "households": households,
            "months": months,
            "format": file_format,
            "feed_rows": totals["read"],
            "kept": totals["kept"],
            "quarantined": totals["quarantined"],
            "parts": parts,
            "partitions": layout["partitions"],
            "simulate_seconds": round(simulated, 1) if data is None else None,
            "ingest_seconds": round(ingested, 1),
            "phase_seconds": report.phase_seconds,
            "rows_per_second": round(totals["read"] / ingested),
            "feed_megabytes": round(feed_bytes / 2**20),
            "store_megabytes": round(store_bytes / 2**20),
            "largest_feeds": {counts.feed: counts.read for counts in slowest},
            "store_rows": report.store_rows,
            **following,
            "max_rss_gigabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="file format of the feeds"
    )
    parser.add_argument(
        "--households-per-part",
        type=int,
        default=100_000,
        help="simulate larger sizes in parts of this many households (at most 10 parts)",
    )
    parser.add_argument("--temp-dir", type=Path, default=None, help="where to generate the data")
    parser.add_argument(
        "--generate", type=Path, default=None, help="only simulate the first size's feeds into this folder"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="ingest the feeds in this folder instead of simulating them"
    )
    parser.add_argument(
        "--then", type=Path, default=None, help="ingest the feeds in this folder as a second delivery"
    )
    parser.add_argument(
        "--split-month",
        nargs=4,
        metavar=("MONTH", "FEEDS", "FIRST", "SECOND"),
        default=None,
        help="split the delivery in FEEDS into FIRST (before MONTH, YYYY-MM) and SECOND (MONTH) and stop",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def parts_of(households: int) -> int:
        return max(1, -(-households // args.households_per_part))

    if args.split_month is not None:
        month, feeds, first, second = args.split_month
        split_month(Path(feeds), month, Path(first), Path(second))
        return
    if args.generate is not None:
        households = args.households[0]
        simulate_feeds(args.generate, households, args.months, args.format, parts_of(households))
        return
    if args.one:
        households = args.households[0]
        result = measure(
            households, args.months, args.format, args.temp_dir, parts_of(households), args.data, args.then
        )
        print(json.dumps(result))
        return
    results = []
    for households in args.households:
        command = [
            sys.executable,
            "-m",
            "benchmarks.ingest_feeds",
            "--one",
            "--households",
            str(households),
            "--months",
            str(args.months),
            "--format",
            args.format,
            "--households-per-part",
            str(args.households_per_part),
        ]
        if args.temp_dir is not None:
            command += ["--temp-dir", str(args.temp_dir)]
        if args.data is not None:
            command += ["--data", str(args.data)]
        if args.then is not None:
            command += ["--then", str(args.then)]
        output = subprocess.run(
            command, check=True, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.out is not None:
        args.out.write_text("".join(json.dumps(result) + "\n" for result in results), encoding="utf-8")
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}.")


if __name__ == "__main__":
    main()
