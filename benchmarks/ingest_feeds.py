"""Benchmark feed ingest: simulate households as department feeds, then time ``ingest_feeds``.

Each size runs in its own process, so that its peak memory (max RSS) is its own:

    python -m benchmarks.ingest_feeds --households 100000 250000 --months 36

Data is generated in a temporary folder and removed afterwards. The run
prints one line per size and a linear extrapolation in feed rows to the
largest size asked for with ``--extrapolate-to``. This is a measurement,
not a test.
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


def measure(households: int, months: int, file_format: str, keep: Path | None) -> dict[str, object]:
    """Simulate one size as feeds, ingest it, and return timings, rows and peak memory."""
    from warning.feeds import ingest_feeds
    from warning.simulate import simulate

    folder = Path(tempfile.mkdtemp(prefix="feeds-bench-", dir=keep))
    try:
        began = time.perf_counter()
        simulate(
            folder / "sim",
            households=households,
            months=months,
            start="2021-01",
            seed=1,
            file_format=file_format,
            as_feeds=True,
        )  # type: ignore[arg-type]
        simulated = time.perf_counter() - began
        feed_bytes = sum(path.stat().st_size for path in (folder / "sim" / "feeds").iterdir())
        began = time.perf_counter()
        report = ingest_feeds(folder / "sim" / "feeds", folder / "store", secret=SECRET, as_of="2024-12-31")
        ingested = time.perf_counter() - began
        store_bytes = sum(path.stat().st_size for path in (folder / "store").rglob("*") if path.is_file())
        totals = report.totals
        slowest = sorted(report.feeds.values(), key=lambda counts: counts.read, reverse=True)[:3]
        return {
            "households": households,
            "months": months,
            "format": file_format,
            "feed_rows": totals["read"],
            "kept": totals["kept"],
            "quarantined": totals["quarantined"],
            "simulate_seconds": round(simulated, 1),
            "ingest_seconds": round(ingested, 1),
            "rows_per_second": round(totals["read"] / ingested),
            "feed_megabytes": round(feed_bytes / 2**20),
            "store_megabytes": round(store_bytes / 2**20),
            "largest_feeds": {counts.feed: counts.read for counts in slowest},
            "store_rows": report.store_rows,
            "max_rss_gigabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, nargs="+", default=[100_000, 250_000])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="file format of the feeds"
    )
    parser.add_argument("--extrapolate-to", type=int, default=1_000_000, help="households to extrapolate to")
    parser.add_argument("--temp-dir", type=Path, default=None, help="where to generate the data")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.one:
        print(json.dumps(measure(args.households[0], args.months, args.format, args.temp_dir)))
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
        ]
        if args.temp_dir is not None:
            command += ["--temp-dir", str(args.temp_dir)]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True, env=os.environ.copy()
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.out is not None:
        args.out.write_text("".join(json.dumps(result) + "\n" for result in results), encoding="utf-8")
    largest = results[-1]
    scale = args.extrapolate_to / int(largest["households"])
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}. Linear extrapolation from "
        f"{largest['households']:,} to {args.extrapolate_to:,} households: about "
        f"{int(largest['feed_rows']) * scale / 1e6:.0f} million feed rows, "
        f"{float(largest['ingest_seconds']) * scale / 60:.0f} minutes to ingest and "
        f"{float(largest['max_rss_gigabytes']) * scale:.0f} GB peak memory (an estimate, not a measurement)"
    )


if __name__ == "__main__":
    main()
