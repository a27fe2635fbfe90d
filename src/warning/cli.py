"""The ``povwarn`` command line: one command per pipeline stage, plus ``demo`` and ``real``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from warning.settings import Settings, get_settings

app = typer.Typer(
    help="Poverty early warning: relapse and new-poverty risk for urban and rural households.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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
    households: Annotated[int | None, typer.Option(help="number of households (default 50,000)", min=10)] = None,
    months: Annotated[int | None, typer.Option(help="number of months simulated (default 60)", min=24)] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    work_dir: WorkDir = None,
    as_feeds: Annotated[
        bool, typer.Option("--as-feeds", help="also write the tables as department feeds under OUT/feeds")
    ] = False,
    monthly_deliveries: Annotated[
        int,
        typer.Option(
            help="with --as-feeds, move the last N months of monthly feeds into OUT/deliveries/YYYY-MM/",
            min=0,
            max=24,
        ),
    ] = 0,
) -> None:
    """Simulate households and write the contract tables, with the true cause of every fall."""
    import pandas as pd

    from warning.simulate import simulate as run_simulation
    from warning.simulate.deliveries import split_monthly_deliveries

    if monthly_deliveries and not as_feeds:
        raise typer.BadParameter("--monthly-deliveries needs --as-feeds", param_hint="--monthly-deliveries")

    settings = _settings(work_dir)
    out = out or settings.work_dir / "simulated"
    summary = run_simulation(
        out,
        households=settings.simulate_households if households is None else households,
        months=settings.simulate_months if months is None else months,
        start=settings.simulate_start,
        seed=settings.seed if seed is None else seed,
        file_format=_file_format(file_format),
        as_feeds=as_feeds,
    )
    falls = ", ".join(f"{cause} {count}" for cause, count in sorted(summary.falls_by_cause.items(), key=lambda item: -item[1]))
    typer.echo(
        f"Simulated {summary.households} households x {summary.months} months from {summary.start} "
        f"in {summary.elapsed_seconds:.1f} s into {summary.out_dir}; "
        f"{summary.households_with_falls} households fell below the line (falls by true cause: {falls})"
    )
    if monthly_deliveries:
        first = (pd.Period(summary.start, "M") + (summary.months - monthly_deliveries)).strftime("%Y-%m")
        moved = split_monthly_deliveries(out / "feeds", out / "deliveries", first)
        typer.echo(
            f"Moved the feed rows of {len(moved)} months from {first} into {out / 'deliveries'}: "
            + ", ".join(f"{month} {rows:,} rows" for month, rows in moved.items())
        )
    if as_feeds:
        typer.echo(f"Department feeds written to {out / 'feeds'}; ingest them with `povwarn feeds ingest`")


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
) -> object:
    """Train one LightGBM model per target and track it in MLflow.

    The first model of a registry becomes the champion; later ones become the
    challenger, which `povwarn promote` may make champion.
    """
    from warning.store import read_store
    from warning.train import train as run_training

    settings = _settings(work_dir)
    result = run_training(read_store(store or settings.store_dir), settings)
    typer.echo(result.summary())
    # Returned for demo, which promotes what it trained; Typer ignores it.
    return result


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
    bundle = load_champion(settings)
    summary = run_scoring(read_store(store or settings.store_dir), bundle, settings)
    typer.echo(str(summary))


@app.command()
def causes(
    truth: Annotated[Path | None, typer.Option(help="folder with falls.parquet (default: WORK_DIR/simulated/truth)")] = None,
    store: Annotated[Path | None, typer.Option(help="store folder (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Report how often the champion's top cause is the true cause of a fall (simulated data only)."""
    import json

    from warning.bundle import load_champion
    from warning.explain.truth import measure_cause_recovery, read_falls, read_hardship, recovery_report
    from warning.features import catalogue_of
    from warning.panel import Panel
    from warning.store import read_store

    settings = _settings(work_dir)
    bundle = load_champion(settings)
    catalogue = catalogue_of(bundle, settings.catalogue_path)
    store_dir = store or settings.store_dir
    truth_dir = truth or settings.work_dir / "simulated" / "truth"
    panel = Panel(read_store(store_dir), lines=bundle.lines)
    falls = read_falls(truth_dir)
    hardship = read_hardship(truth_dir)
    if (store_dir / "feeds" / "layout.json").is_file():
        from warning.feeds import IdentityHasher, resolve_secret
        from warning.simulate.feeds import feed_household_ids

        # A store built from feeds names households by hashed identity numbers, not the simulator's ids.
        hashed = feed_household_ids(truth_dir, IdentityHasher(resolve_secret(None, settings)))
        for truth_frame in (falls, hardship):
            if truth_frame is not None:
                truth_frame["household_id"] = truth_frame["household_id"].astype(str).map(hashed)
    results = measure_cause_recovery(
        panel, bundle, catalogue, falls, settings.horizon_months, settings.top_causes, hardship=hardship
    )
    report_path = settings.work_dir / "reports" / "cause_recovery.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(recovery_report(results), indent=2))
    for target, result in results.items():
        onsets = "onsets of sudden hardship" if target == "sudden_hardship" else "falls"
        typer.echo(
            f"{target}: {result.falls} {onsets} at the test cut-offs; top cause is the true cause for "
            f"{result.top_match:.1%}, top cause other than 'other' for {result.top_match_without_other:.1%} "
            f"of falls with a specific cause, true cause among the top {settings.top_causes} for {result.listed_match:.1%}"
        )
        typer.echo(result.per_cause.round(3).to_string())
    typer.echo(f"Report written to {report_path}")


@app.command()
def evaluate(
    store: Annotated[Path | None, typer.Option(help="store folder (default: WORK_DIR/store)")] = None,
    origins: Annotated[
        int | None, typer.Option(help="successive backtest origins (default: setting backtest_origins)")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="simulator truth folder with falls and risk files (default: WORK_DIR/simulated/truth if present)"
        ),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="bundle folder of the evaluated model (default: the champion, if any)")
    ] = None,
    work_dir: WorkDir = None,
) -> None:
    """Backtest every target at rolling origins against the rule baseline, the oracle and slices."""
    from warning.bundle import ModelBundle, champion_path
    from warning.evaluate import evaluate as run_evaluation
    from warning.evaluate.run import format_summary
    from warning.store import read_store

    settings = _settings(work_dir)
    bundle_folder = bundle or champion_path(settings)
    evaluated = ModelBundle.load(bundle_folder) if (bundle_folder / "bundle.json").exists() else None
    if bundle is not None and evaluated is None:
        raise typer.BadParameter(
            f"bundle.json not found in {bundle}; pass a bundle folder written by `povwarn train`"
        )
    default_truth = settings.work_dir / "simulated" / "truth"
    truth = truth or (default_truth if default_truth.is_dir() else None)
    result = run_evaluation(
        read_store(store or settings.store_dir), settings, bundle=evaluated, truth=truth, origins=origins
    )
    typer.echo(format_summary(result.report, result.path))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000)", min=1, max=65535)] = None,
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
    households: Annotated[int | None, typer.Option(help="number of simulated households (default 50,000)", min=10)] = None,
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
                result = train(store=None, work_dir=None)
                if result.alias != "champion":
                    _promote_demo_model(settings, result.version)
            elif step == "score":
                score(store=None, work_dir=None)
            else:
                causes(truth=None, store=None, work_dir=None)
    typer.echo(f"Pipeline finished in {time.perf_counter() - started:.0f} s; outputs are in {settings.work_dir}")
    if not no_serve:
        serve(host=None, port=None, work_dir=None)


def _promote_demo_model(settings: Settings, version: str, command: str = "demo") -> None:
    """Make the model a demonstration run just trained the champion, recorded as an override.

    `demo` and `real` show the pipeline end to end, so they serve the model
    they trained. Retraining in production goes through evaluate and the
    promotion gate instead.
    """
    from warning.registry.promotion import promote as run_promotion

    decision = run_promotion(
        settings,
        version=version,
        force=True,
        reason=f"povwarn {command} serves the model it has just trained",
        requested_by=f"povwarn {command}",
    )
    typer.echo(decision.summary())


@app.command()
def real(
    csv: Annotated[Path | None, typer.Option(help="nlswork.csv (default: the shared real-data folder)")] = None,
    serve_api: Annotated[bool, typer.Option("--serve", help="serve the API on the real-data scores afterwards")] = False,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="output folder (default: out/nlswork)")] = None,
) -> None:
    """Run the whole pipeline on the real NLS Young Women panel (1968-88)."""
    from warning.adapters.nlswork import convert_nlswork, default_nlswork_path

    # Survey waves are one or two years apart: predict the next wave within two
    # years, from cut-offs one year apart. Environment variables still win.
    os.environ.setdefault("POVWARN_HORIZON_MONTHS", "24")
    os.environ.setdefault("POVWARN_CUTOFF_STEP_MONTHS", "12")
    # Models of a different population get their own registry names, so that
    # the simulator's champion and the panel's never compete.
    os.environ.setdefault("POVWARN_REGISTERED_MODEL_PREFIX", "poverty-warning-nlswork")
    settings = _settings(work_dir or Path("out/nlswork"))
    path = csv or default_nlswork_path()
    if path is None or not Path(path).exists():
        raise typer.BadParameter("nlswork.csv not found; pass --csv PATH or set POVWARN_REAL_DATA_DIR")
    source = settings.work_dir / "dataset"
    converted = convert_nlswork(Path(path), source)
    typer.echo(
        f"Converted {converted.persons} persons, {converted.person_waves} person-waves in {converted.waves} waves "
        f"({min(converted.years)}-{max(converted.years)}) into {converted.out_dir}"
    )
    ingest(source=source, store=None, work_dir=None)
    result = train(store=None, work_dir=None)
    if result.alias != "champion":
        _promote_demo_model(settings, result.version, command="real")
    score(store=None, work_dir=None)
    if serve_api:
        serve(host=None, port=None, work_dir=None)


@app.command()
def promote(
    version: Annotated[
        str | None, typer.Option(help="bundle version to promote (default: the one with the 'challenger' alias)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="promote even when the gate rejects it; needs --reason")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="the analyst's justification of a forced promotion")] = None,
    by: Annotated[str | None, typer.Option("--by", help="who requests the promotion (default: the login name)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Compare a challenger's backtest with the champion's and make it the champion if it is not worse."""
    from warning.registry.cards import write_card
    from warning.registry.promotion import promote as run_promotion

    settings = _settings(work_dir)
    if force and not (reason or "").strip():
        raise typer.BadParameter("--force needs --reason with the analyst's justification", param_hint="--reason")
    try:
        decision = run_promotion(settings, version=version, force=force, reason=reason, requested_by=by)
    except (LookupError, FileNotFoundError, ValueError) as error:
        typer.echo(f"Promotion failed: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(decision.summary())
    card = write_card(settings, decision.challenger)
    typer.echo(f"Model card: {card}")
    if not decision.promoted:
        raise typer.Exit(1)


@app.command()
def card(
    version: Annotated[
        list[str] | None, typer.Option(help="bundle version; repeat for several (default: every registered version)")
    ] = None,
    work_dir: WorkDir = None,
) -> None:
    """Write the Markdown model card of registered bundle versions and log each to its MLflow run."""
    from warning.registry.cards import write_cards

    settings = _settings(work_dir)
    try:
        paths = write_cards(settings, version or None)
    except (LookupError, FileNotFoundError, ValueError) as error:
        typer.echo(f"Writing model cards failed: {error}", err=True)
        raise typer.Exit(2) from error
    for path in paths:
        typer.echo(f"Wrote {path}")


@app.command()
def drift(
    store: Annotated[Path | None, typer.Option(help="store folder (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Report the PSI of each feature and score of the champion between its training window and the newest month."""
    from warning.monitor import measure_drift, write_drift_report
    from warning.registry.aliases import load_champion_by_alias
    from warning.store import read_store

    settings = _settings(work_dir)
    bundle, _ = load_champion_by_alias(settings)
    report = measure_drift(read_store(store or settings.store_dir), bundle, settings)
    json_path, markdown_path = write_drift_report(report, settings)
    drifting = report.drifting
    typer.echo(
        f"Model {report.bundle_version}, {report.current_cutoff} against the training window: "
        f"{len(drifting)} of {len(report.variables)} variables drift"
    )
    for item in drifting:
        typer.echo(f"  {item.name}: PSI {item.psi:.3f} ({item.level})")
    typer.echo(f"Reports: {json_path} and {markdown_path}")


feeds_app = typer.Typer(help="Department feeds: ingest deliveries and list the feeds they may contain.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")


@feeds_app.command("ingest")
def feeds_ingest(
    source: Annotated[Path, typer.Argument(help="delivery folder with the department feed files of one batch")],
    store: Annotated[Path | None, typer.Option(help="store folder to update (default: WORK_DIR/store)")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="delivery date YYYY-MM-DD; later months and dates are rejected (default: today)")
    ] = None,
    work_dir: WorkDir = None,
) -> None:
    """Check, link and hash one delivery of department feeds and merge it into the store.

    Needs POVWARN_ID_HASH_SECRET, the key of the hash that replaces identity numbers.
    Exits with 1 when a file failed or lacked required columns (the rest of
    the delivery is stored), and with 2 when nothing was stored: no file
    matched a feed, every row was quarantined, or the store or key is wrong.
    """
    from warning.feeds import FeedIngestError, ingest_feeds

    settings = _settings(work_dir)
    try:
        report = ingest_feeds(source, store or settings.store_dir, as_of=as_of, settings=settings)
    except FeedIngestError as error:
        typer.echo(f"Feed ingest failed: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(report.summary())
    unusable = [entry.file for entry in report.files if entry.status == "failed" or entry.missing_columns]
    totals = report.totals
    if totals["kept"] + totals["merged"] == 0:
        reason = f"all {totals['quarantined']:,} rows read were quarantined" if totals["read"] else "no row was read"
        typer.echo(f"Nothing was stored: {reason}; correct the files and deliver them again", err=True)
        raise typer.Exit(2)
    if unusable:
        typer.echo(
            f"{len(unusable)} file(s) could not be used: {', '.join(unusable)}; correct them and deliver them again",
            err=True,
        )
        raise typer.Exit(1)


@feeds_app.command("lookup")
def feeds_lookup(
    numbers: Annotated[list[str] | None, typer.Argument(help="resident identity numbers to look up")] = None,
    numbers_file: Annotated[
        Path | None, typer.Option("--numbers-file", help="text file with one identity number per line")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="feed store folder (default: WORK_DIR/store)")] = None,
    work_dir: WorkDir = None,
) -> None:
    """Print the person and household ids that the store gives identity numbers, in input order.

    Numbers are hashed with POVWARN_ID_HASH_SECRET and printed masked, so the
    output never contains a raw number.
    """
    import pandas as pd

    from warning.feeds import IdentityHasher, load_specs, resolve_secret
    from warning.feeds.lookup import lookup_identities, read_roster

    settings = _settings(work_dir)
    given = list(numbers or [])
    if numbers_file is not None:
        lines = numbers_file.read_text(encoding="utf-8-sig").splitlines()
        given += [line.strip() for line in lines if line.strip()]
    if not given:
        raise typer.BadParameter("give identity numbers as arguments or with --numbers-file")
    hasher = IdentityHasher(resolve_secret(None, settings))
    roster = read_roster(store or settings.store_dir, load_specs(settings.feed_specs_dir), hasher)
    found = lookup_identities(pd.Series(given), roster, hasher, pd.Timestamp.now().normalize())
    typer.echo(found.fillna("").to_string(index=False))
    typer.echo(
        f"{int(found['household_id'].notna().sum())} of {len(found)} numbers are in the household roster",
        err=True,
    )


@feeds_app.command("list")
def feeds_list(work_dir: WorkDir = None) -> None:
    """List every feed of the specifications: its file patterns and the contract table it fills."""
    from warning.feeds import load_specs

    settings = _settings(work_dir)
    for spec in load_specs(settings.feed_specs_dir):
        target = spec.target or "(members)"
        typer.echo(f"{spec.feed:<42} {target:<15} {', '.join(spec.files)}  {spec.title}")


@app.command("export-openapi")
def export_openapi(
    out: Annotated[Path, typer.Option(help="where to write the OpenAPI document")] = Path("api/openapi.json"),
) -> None:
    """Write the API's OpenAPI document."""
    from warning.api import export_openapi as write_document

    write_document(out)
    typer.echo(f"Wrote {out}")


def main() -> None:
    """Run the CLI; errors in the input or the setup print one line instead of a traceback.

    With ``--verbose`` the traceback is shown as well.
    """
    from lightgbm.basic import LightGBMError
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from warning.feeds import FeedIngestError
    from warning.feeds.identity import mask_identities_in_text
    from warning.ingest import IngestError

    # MLflow draws a progress bar for every artifact download, which floods the
    # output when a champion bundle is fetched from the registry.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app()
    except (
        OSError,
        ValueError,
        KeyError,
        OverflowError,
        IngestError,
        FeedIngestError,
        ArgumentError,
        SQLAlchemyError,
        LightGBMError,
    ) as error:
        logger.debug("Command failed", exc_info=True)
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        # A path or a cell in the message can be an identity number, such as the name of a numbers file.
        typer.secho(f"Error: {mask_identities_in_text(str(message))}", err=True, fg=typer.colors.RED)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
