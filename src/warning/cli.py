"""The ``povwarn`` command line: one command per pipeline stage, plus ``demo`` and ``real``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from warning.settings import Settings, get_settings

app = typer.Typer(help="Poverty early warning: relapse and new-poverty risk for urban and rural households.", no_args_is_help=True)
logger = logging.getLogger(__name__)

WorkDir = Annotated[
    Path | None,
    typer.Option("--work-dir", help="folder for data, stores, models and scores (default: POVWARN_WORK_DIR or ./out)"),
]


def _settings(work_dir: Path | None = None) -> Settings:
    if work_dir is not None:
        os.environ["POVWARN_WORK_DIR"] = str(work_dir)
        get_settings.cache_clear()
    return get_settings()


@app.callback()
def _configure(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log debug messages")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@app.command()
def simulate(
    out: Annotated[Path | None, typer.Option(help="folder for the simulated tables (default: WORK_DIR/simulated)")] = None,
    households: Annotated[int | None, typer.Option(help="number of households")] = None,
    months: Annotated[int | None, typer.Option(help="number of months simulated")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    work_dir: WorkDir = None,
) -> None:
    """Simulate households and write the contract tables, with the true cause of every fall."""
    from warning.simulate import simulate as run_simulation

    settings = _settings(work_dir)
    out = out or settings.work_dir / "simulated"
    summary = run_simulation(
        out,
        households=households or settings.simulate_households,
        months=months or settings.simulate_months,
        start=settings.simulate_start,
        seed=settings.seed if seed is None else seed,
        file_format=_file_format(file_format),
    )
    typer.echo(f"Simulated {summary}")


def _file_format(value: str) -> Literal["parquet", "csv"]:
    if value not in ("parquet", "csv"):
        raise typer.BadParameter(f"--format must be parquet or csv, got {value!r}")
    return value  # type: ignore[return-value]


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="dataset folder with one CSV or Parquet file per contract table")],
    store: Annotated[Path | None, typer.Option(help="store folder to write (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Validate a dataset folder, quarantine bad rows and write the typed store."""
    from warning.ingest import ingest as run_ingest

    settings = _settings(work_dir)
    report = run_ingest(source, store or settings.store_dir)
    typer.echo(report.summary())


@app.command()
def train(
    store: Annotated[Path | None, typer.Option(help="store folder (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Train one LightGBM model per target, track it in MLflow and make it the champion."""
    from warning.store import read_store
    from warning.train import train as run_training

    settings = _settings(work_dir)
    result = run_training(read_store(store or settings.store_dir), settings)
    typer.echo(result.summary())


@app.command()
def score(
    store: Annotated[Path | None, typer.Option(help="store folder (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Score every household at the latest cut-off into the score database."""
    from warning.bundle import load_champion
    from warning.score import score as run_scoring
    from warning.store import read_store

    settings = _settings(work_dir)
    summary = run_scoring(read_store(store or settings.store_dir), load_champion(settings), settings)
    typer.echo(str(summary))


@app.command()
def causes(
    truth: Annotated[Path | None, typer.Option(help="folder with falls.parquet (default: WORK_DIR/simulated/truth)")] = None,
    store: Annotated[Path | None, typer.Option(help="store folder (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Report how often the champion's top cause is the true cause of a fall (simulated data only)."""
    import json

    import yaml

    from warning.bundle import load_champion
    from warning.explain.truth import measure_cause_recovery, read_falls, recovery_report
    from warning.features import load_catalogue
    from warning.panel import Panel
    from warning.store import read_store

    settings = _settings(work_dir)
    bundle = load_champion(settings)
    groups = set(yaml.safe_load(settings.cause_groups_path.read_text(encoding="utf-8")))
    catalogue = load_catalogue(settings.catalogue_path, groups)
    panel = Panel(read_store(store or settings.store_dir), lines=bundle.lines)
    falls = read_falls(truth or settings.work_dir / "simulated" / "truth")
    results = measure_cause_recovery(panel, bundle, catalogue, falls, settings.horizon_months, settings.top_causes)
    report_path = settings.work_dir / "reports" / "cause_recovery.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(recovery_report(results), indent=2))
    for target, result in results.items():
        typer.echo(
            f"{target}: {result.falls} falls at the test cut-offs; top cause is the true cause for "
            f"{result.top_match:.1%}, top cause other than 'other' for {result.top_match_without_other:.1%} "
            f"of falls with a specific cause, true cause among the top {settings.top_causes} for {result.listed_match:.1%}"
        )
        typer.echo(result.per_cause.round(3).to_string())
    typer.echo(f"Report written to {report_path}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Start the HTTP API (predict, scores, health) with uvicorn."""
    import uvicorn

    from warning.api import create_app

    settings = _settings(work_dir)
    host = host or settings.host
    port = port or settings.port
    typer.echo(f"Serving the API at http://{host}:{port} (docs at http://{host}:{port}/docs); press Ctrl+C to stop")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def demo(
    households: Annotated[int | None, typer.Option(help="number of simulated households")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="stop after scoring instead of starting the API")] = False,
    work_dir: WorkDir = None,
) -> None:
    """Run the whole pipeline on the built-in simulator, then serve the API."""
    settings = _settings(work_dir)
    started = time.perf_counter()
    source = settings.work_dir / "simulated"
    steps = ["simulate", "ingest", "train", "score", "causes"]
    with typer.progressbar(steps, label="Pipeline", item_show_func=lambda step: step or "") as progress:
        for step in progress:
            if step == "simulate":
                simulate(out=source, households=households, months=None, seed=None, file_format="parquet", work_dir=None)
            elif step == "ingest":
                ingest(source=source, store=None, work_dir=None)
            elif step == "train":
                train(store=None, work_dir=None)
            elif step == "score":
                score(store=None, work_dir=None)
            else:
                causes(truth=None, store=None, work_dir=None)
    typer.echo(f"Pipeline finished in {time.perf_counter() - started:.0f} s; outputs are in {settings.work_dir}")
    if not no_serve:
        serve(host=None, port=None, work_dir=None)


@app.command()
def real(
    csv: Annotated[Path | None, typer.Option(help="nlswork.csv (default: the shared real-data folder)")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="stop after scoring")] = True,
    work_dir: WorkDir = None,
) -> None:
    """Run the whole pipeline on the real NLS Young Women panel (1968-88)."""
    from warning.adapters.nlswork import convert_nlswork, default_nlswork_path

    # Survey waves are one or two years apart: predict the next wave within two
    # years, from cut-offs one year apart. Environment variables still win.
    os.environ.setdefault("POVWARN_HORIZON_MONTHS", "24")
    os.environ.setdefault("POVWARN_CUTOFF_STEP_MONTHS", "12")
    settings = _settings(work_dir or Path("out/nlswork"))
    path = csv or default_nlswork_path()
    if path is None or not Path(path).exists():
        raise typer.BadParameter("nlswork.csv not found; pass --csv PATH or set POVWARN_REAL_DATA_DIR")
    source = settings.work_dir / "dataset"
    typer.echo(str(convert_nlswork(Path(path), source)))
    ingest(source=source, store=None, work_dir=None)
    train(store=None, work_dir=None)
    score(store=None, work_dir=None)
    if not no_serve:
        serve(host=None, port=None, work_dir=None)


@app.command("export-openapi")
def export_openapi(
    out: Annotated[Path, typer.Option(help="where to write the OpenAPI document")] = Path("api/openapi.json"),
) -> None:
    """Write the API's OpenAPI document."""
    from warning.api import export_openapi as write_document

    write_document(out)
    typer.echo(f"Wrote {out}")


if __name__ == "__main__":
    app()
