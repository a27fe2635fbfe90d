"""Benchmarks of the scoring paths, each reported as a ratio to a floor measured in the same run.

Run with ``make bench`` (or ``python -m benchmarks.run --households N``). It
simulates a dataset, ingests and trains on it in a temporary folder, then
times:

- features at one cut-off for every household, against a plain pandas
  groupby-sum of the same income rows (the least any feature build must do);
- calibrated probabilities, and explanations by cause group, against raw
  LightGBM ``predict`` on the same rows;
- batch scoring (features, probabilities, explanations, bands) against the
  same raw ``predict``;
- one-household predict through the HTTP app (in-process client), against
  raw ``predict`` of one row.

Absolute times move between runs and machines; the ratios hold better.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from warning.bundle import load_champion
from warning.explain import explain_frame
from warning.features import build_features, load_catalogue
from warning.ingest import ingest
from warning.panel import Panel, month_number
from warning.score import score_panel
from warning.settings import Settings
from warning.simulate import simulate
from warning.store import read_store
from warning.train import train

logger = logging.getLogger("benchmarks")


def best_of(function: Callable[[], object], repeats: int) -> float:
    """Return the fastest of ``repeats`` timed calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def _json_value(value: object) -> object:
    """Return a store cell as a JSON-ready value: None for missing, Python scalars for numpy ones."""
    if pd.isna(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _history_request(store, household_id: str) -> dict:
    """Build a predict request body for one household from the store's rows."""
    history: dict[str, object] = {}
    household = store.table("households")
    row = household[household["household_id"] == household_id].iloc[0]
    history["household"] = {key: _json_value(value) for key, value in row.items()}
    for name in ("income", "employment", "insurance", "medical_claims", "assistance", "events", "registrations"):
        table = store.table(name)
        rows = table[table["household_id"] == household_id].drop(columns="household_id")
        for column in rows.columns:
            if column == "month" or column.endswith("_month"):
                rows[column] = rows[column].dt.strftime("%Y-%m")
        history[name] = json.loads(rows.to_json(orient="records"))
    return {"households": [history]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=20_000, help="simulated households")
    parser.add_argument("--months", type=int, default=48, help="simulated months")
    parser.add_argument("--requests", type=int, default=200, help="single-household predict requests")
    parser.add_argument("--out", type=Path, default=Path("out/benchmarks/latest.json"), help="where to write results")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="povwarn-bench-") as folder:
        work = Path(folder)
        settings = Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
        print(f"Preparing {arguments.households} households x {arguments.months} months in {work} ...")
        simulate(work / "simulated", households=arguments.households, months=arguments.months)
        ingest(work / "simulated", settings.store_dir)
        store = read_store(settings.store_dir)
        train(store, settings)
        bundle = load_champion(settings)
        groups = set(yaml.safe_load(settings.cause_groups_path.read_text(encoding="utf-8")))
        catalogue = load_catalogue(settings.catalogue_path, groups)
        panel = Panel(store, lines=bundle.lines)
        latest = np.array([panel.n_periods - 1])
        features = build_features(panel, catalogue, latest)
        matrix = bundle.feature_matrix(features)
        target = "new_poverty"
        model = bundle.models[target]
        rows = len(matrix)
        results: dict[str, float] = {"rows": rows, "trees": model.booster.num_trees()}

        # Floors.
        income = store.table("income")
        last_month = int(month_number(income["month"]).max())
        window = income[month_number(income["month"]) > last_month - 12]
        results["floor_groupby_s"] = best_of(lambda: window.groupby("household_id")["amount"].sum(), 3)
        results["floor_predict_s"] = best_of(lambda: model.booster.predict(matrix, num_threads=1), 3)
        one_row = matrix[:1]
        results["floor_predict_one_s"] = best_of(lambda: model.booster.predict(one_row, num_threads=1), 50)

        # Product paths.
        results["features_s"] = best_of(lambda: build_features(Panel(store, lines=bundle.lines), catalogue, latest), 2)
        results["probability_s"] = best_of(lambda: model.probability(matrix), 3)
        results["explain_s"] = best_of(lambda: explain_frame(bundle, target, matrix, top=3), 1)
        results["score_panel_s"] = best_of(
            lambda: score_panel(panel, bundle, catalogue, settings.band_thresholds, settings.top_causes), 1
        )

        from fastapi.testclient import TestClient

        from warning.api import create_app

        body = _history_request(store, str(features["household_id"].iloc[0]))
        latencies = []
        with TestClient(create_app(settings)) as client:
            for _ in range(arguments.requests):
                started = time.perf_counter()
                response = client.post("/v1/predict", json=body)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
        results["predict_p50_s"] = statistics.median(latencies)
        results["predict_p99_s"] = float(np.quantile(latencies, 0.99))

    ratios = {
        "features / groupby floor": results["features_s"] / results["floor_groupby_s"],
        "calibrated probability / raw predict": results["probability_s"] / results["floor_predict_s"],
        "explanations / raw predict": results["explain_s"] / results["floor_predict_s"],
        "batch scoring / raw predict": results["score_panel_s"] / results["floor_predict_s"],
        "one-household predict p50 / raw predict of one row": results["predict_p50_s"] / results["floor_predict_one_s"],
    }
    print(f"\n{rows} households at one cut-off, {results['trees']} trees in the {target} model")
    print(f"{'path':55s} {'seconds':>10s} {'ratio':>8s}")
    pairs = [
        ("features", results["features_s"], ratios["features / groupby floor"]),
        ("calibrated probability", results["probability_s"], ratios["calibrated probability / raw predict"]),
        ("explanations (pred_contrib + cause groups)", results["explain_s"], ratios["explanations / raw predict"]),
        ("batch scoring", results["score_panel_s"], ratios["batch scoring / raw predict"]),
        ("one-household predict over HTTP, p50", results["predict_p50_s"], ratios["one-household predict p50 / raw predict of one row"]),
    ]
    for name, seconds, ratio in pairs:
        print(f"{name:55s} {seconds:10.4f} {ratio:8.1f}x")
    print(f"{'floor: pandas groupby-sum of 12 months of income':55s} {results['floor_groupby_s']:10.4f}")
    print(f"{'floor: raw LightGBM predict, all rows':55s} {results['floor_predict_s']:10.4f}")
    print(f"{'floor: raw LightGBM predict, one row':55s} {results['floor_predict_one_s']:10.6f}")
    print(f"one-household predict p99: {results['predict_p99_s'] * 1000:.1f} ms over {arguments.requests} requests")
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))
    print(f"Results written to {arguments.out}")


if __name__ == "__main__":
    main()
