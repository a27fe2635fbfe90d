"""Tests of evaluation: backtest origins, county capacity, rule baseline, slices, calibration, the report."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402

from warning.bundle import Calibrator, ModelBundle  # noqa: E402
from warning.contract import DatasetInfo  # noqa: E402
from warning.evaluate import (  # noqa: E402
    EvaluationReport,
    capacity_flags,
    capacity_quota,
    evaluate,
    load_rules,
    rolling_origins,
    rule_frame,
    slice_dimension,
    top_per_group,
)
from warning.evaluate.backtest import sample_households  # noqa: E402
from warning.evaluate.run import with_bundle_horizon  # noqa: E402
from warning.evaluate.measures import rule_comparisons  # noqa: E402
from warning.evaluate.tracking import headline_metrics, log_evaluation  # noqa: E402
from warning.features import load_catalogue  # noqa: E402
from warning.labels import build_labels  # noqa: E402
from warning.panel import Panel, month_number  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.store import Store  # noqa: E402
from warning.train import assign_blocks, build_training_frame, load_cause_groups, split_cutoffs, tracking  # noqa: E402
from warning.train.fit import (  # noqa: E402
    cross_fitted_probabilities,
    fit_calibrator,
    fit_target,
    select_calibration,
)


def _quarterly(count: int, start: str = "2021-12") -> pd.Series:
    return pd.Series(pd.date_range(start, periods=count, freq="3MS").astype("datetime64[ms]"))


def _settings(root: Path, **overrides: object) -> Settings:
    values = {
        "work_dir": root / "out",
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "num_boost_round": 30,
        "min_train_positives": 5,
    }
    values.update(overrides)
    return Settings(**values)


# Origins.


def test_origins_successive_and_embargoed() -> None:
    horizon = 12
    origins = rolling_origins(_quarterly(13), horizon, origins=4, test_cutoffs=1, validation_fraction=0.25)
    assert len(origins) == 4
    all_months = sorted(month_number(_quarterly(13)))
    tests = [month for origin in origins for month in origin.test]
    # The last four labelled cut-offs, one per origin, oldest origin first.
    assert tests == all_months[-4:]
    for earlier, later in zip(origins, origins[1:], strict=False):
        assert earlier.origin < later.origin
        assert max(earlier.test) < min(later.test)
    for origin in origins:
        assert origin.train and origin.validation
        assert origin.origin == min(origin.test) - 1
        assert max(origin.train) + horizon <= min(origin.validation)
        for cutoff in (*origin.train, *origin.validation):
            assert cutoff + horizon <= origin.origin
            for test in origin.test:
                # A label window (cutoff, cutoff + horizon] never reaches a test cut-off.
                assert not cutoff < test <= cutoff + horizon


def test_origins_name_months() -> None:
    origins = rolling_origins(_quarterly(13), 12, origins=4, test_cutoffs=1, validation_fraction=0.25)
    first = origins[0].describe()
    assert origins[0].name == "2024-02"
    assert first == {"train": ["2021-12"], "validation": ["2022-12"], "test": ["2024-03"]}
    assert origins[-1].describe()["test"] == ["2024-12"]


def test_origins_reject_too_many() -> None:
    with pytest.raises(ValueError, match="this data has room for 4 origin"):
        rolling_origins(_quarterly(13), 12, origins=5, test_cutoffs=1, validation_fraction=0.25)


def test_origins_group_test_cutoffs() -> None:
    origins = rolling_origins(_quarterly(20), 12, origins=2, test_cutoffs=3, validation_fraction=0.25)
    assert [len(origin.test) for origin in origins] == [3, 3]
    assert max(origins[0].test) < min(origins[1].test)


# Capacity per county.


def test_capacity_quota_rounds_up() -> None:
    assert capacity_quota(100, 0.05) == 5
    assert capacity_quota(101, 0.05) == 6
    assert capacity_quota(1, 0.05) == 1
    # 0.07 * 100 is 7.000000000000001 in floating point.
    assert capacity_quota(100, 0.07) == 7


def test_capacity_picks_ceil_share_per_county() -> None:
    rng = np.random.default_rng(5)
    sizes = {"520121": 100, "520122": 41, "620102": 7, "410101": 1}
    county = np.concatenate([[code] * size for code, size in sizes.items()])
    order = rng.permutation(county.size)
    county = county[order]
    scores = rng.random(county.size)
    flags = capacity_flags(pd.Series(county), scores, 0.05)
    for code, size in sizes.items():
        members = county == code
        assert flags[members].sum() == math.ceil(0.05 * size)
        # The flagged rows are the county's highest scores.
        threshold = np.sort(scores[members])[::-1][math.ceil(0.05 * size) - 1]
        assert np.all(scores[members & flags] >= threshold)
        assert np.all(scores[members & ~flags] < threshold)


def test_capacity_counts_county_and_cutoff_groups() -> None:
    groups = pd.DataFrame({"cutoff": ["a"] * 30 + ["b"] * 30, "region_code": (["x"] * 10 + ["y"] * 20) * 2})
    flags = capacity_flags(groups, np.arange(60, dtype=float), 0.1)
    counts = pd.Series(flags).groupby([groups["cutoff"], groups["region_code"]]).sum()
    assert counts.to_dict() == {("a", "x"): 1, ("a", "y"): 2, ("b", "x"): 1, ("b", "y"): 2}


def test_top_per_group_breaks_ties_by_order() -> None:
    flags = top_per_group(np.array(["a"] * 4), np.array([1.0, 2.0, 2.0, 2.0]), np.array([2] * 4))
    assert flags.tolist() == [False, True, True, False]


def test_rule_comparison_at_rule_count() -> None:
    pooled = pd.DataFrame(
        {
            "cutoff": ["2024-12"] * 6,
            "region_code": ["x"] * 6,
            "label": [1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
            "raw": [0.9, 0.8, 0.7, 0.1, 0.2, 0.3],
            "flagged": [True, False, False, False, False, False],
            "rule_flagged": [False, False, False, False, True, False],
            "rule_flag": [False, False, True, False, True, False],
        }
    )
    at_capacity, at_rule_count = rule_comparisons(pooled)
    assert at_capacity.model_recall == pytest.approx(1 / 3)
    assert at_capacity.rule_recall == pytest.approx(1 / 3)
    assert at_capacity.recall_margin == pytest.approx(0.0)
    # The rule flags two households, so the model flags its two highest (rows 0 and 1).
    assert at_rule_count.flagged == 2
    assert at_rule_count.model_recall == pytest.approx(2 / 3)
    assert at_rule_count.rule_recall == pytest.approx(1 / 3)
    assert at_rule_count.model_precision == pytest.approx(1.0)
    assert at_rule_count.rule_precision == pytest.approx(0.5)


def test_rule_comparison_means_over_origins() -> None:
    pooled = pd.DataFrame(
        {
            "origin": ["a"] * 4 + ["b"] * 4,
            "cutoff": ["2024-09"] * 4 + ["2024-12"] * 4,
            "region_code": ["x"] * 8,
            # Origin a: 1 of 1 positive flagged by the model. Origin b: 1 of 3.
            "label": [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
            "raw": [0.9, 0.1, 0.2, 0.3, 0.9, 0.1, 0.2, 0.3],
            "flagged": [True, False, False, False, True, False, False, False],
            "rule_flagged": [False, True, False, False, False, True, False, False],
            "rule_flag": [False, True, False, False, False, True, False, False],
        }
    )
    at_capacity, _ = rule_comparisons(pooled)
    assert at_capacity.model_recall == pytest.approx((1.0 + 1 / 3) / 2)
    assert at_capacity.rule_recall == pytest.approx((0.0 + 1 / 3) / 2)
    assert at_capacity.recall_margin == pytest.approx(0.5)
    assert at_capacity.flagged == 2


# The rule baseline.


def _tiny_store() -> Store:
    """Seven one-person rural households over 24 months, each built to hit or miss one rule at month 24."""
    months = pd.date_range("2022-01", periods=24, freq="MS").astype("datetime64[ms]")
    ids = [f"t{index}" for index in range(7)]
    # Yearly income per person: t0 is under 1.5 x 6,000; the rest are well above.
    yearly = {
        "t0": 8_000.0,
        "t1": 20_000.0,
        "t2": 20_000.0,
        "t3": 20_000.0,
        "t4": 20_000.0,
        "t5": 20_000.0,
        "t6": 20_000.0,
    }
    income = pd.DataFrame(
        [
            {"household_id": household, "month": month, "source": "wage", "amount": yearly[household] / 12}
            for household in ids
            for month in months
        ]
    )

    households = pd.DataFrame(
        {
            "household_id": pd.array(ids, dtype="string"),
            "region_code": pd.array(["520121"] * 7, dtype="string"),
            "township_code": pd.array([None] * 7, dtype="string"),
            "urban_rural": pd.array(["rural"] * 7, dtype="string"),
            "members": np.ones(7, dtype="int64"),
            "labour_capable": np.ones(7, dtype="int64"),
            "disabled": np.zeros(7, dtype="int64"),
            "elderly": np.zeros(7, dtype="int64"),
            "children_in_school": np.zeros(7, dtype="int64"),
        }
    )

    claims = pd.DataFrame(
        {
            "household_id": ["t1", "t2", "t1"],
            "month": [months[20], months[18], months[2]],
            "category": ["inpatient", "inpatient", "inpatient"],
            # t1: 3,000 + 2,500 inside the year, the 9,000 of month 3 is outside; t2: 4,000 only.
            "total_cost": [10_000.0, 10_000.0, 20_000.0],
            "reimbursed": [7_000.0, 6_000.0, 11_000.0],
            "out_of_pocket": [3_000.0, 4_000.0, 9_000.0],
        }
    )
    claims = pd.concat(
        [
            claims,
            pd.DataFrame(
                {
                    "household_id": ["t1"],
                    "month": [months[22]],
                    "category": ["outpatient"],
                    "total_cost": [5_000.0],
                    "reimbursed": [2_500.0],
                    "out_of_pocket": [2_500.0],
                }
            ),
        ],
        ignore_index=True,
    )

    events = pd.DataFrame(
        {
            "household_id": ["t3", "t4", "t5", "t6"],
            "month": [months[21], months[8], months[15], months[14]],
            # t3 has a disaster in the window. t4 lost a job 15 months before the cut-off, outside it.
            # t5 paid 12,000 for schooling in the window, and t6 paid 9,000, under the threshold.
            "kind": ["disaster", "job_loss", "schooling", "schooling"],
            "loss_amount": [0.0, 0.0, 12_000.0, 9_000.0],
        }
    )

    lines = pd.DataFrame(
        {
            "year": [2022, 2023],
            "region_prefix": ["", ""],
            "urban_rural": ["rural", "rural"],
            "line": [6000.0, 6000.0],
        }
    )
    tables = {
        "households": households,
        "income": income,
        "medical_claims": claims,
        "events": events,
        "poverty_lines": lines,
    }
    for frame in tables.values():
        if "month" in frame.columns:
            frame["month"] = frame["month"].astype("datetime64[ms]")
    return Store(folder=Path("memory"), info=DatasetInfo(name="tiny"), tables=tables)


def test_rule_flags_exact_households() -> None:
    panel = Panel(_tiny_store())
    rules = load_rules(Settings().rules_path, income_multiplier=1.5)
    frame = rule_frame(panel, np.array([23]), rules).set_index("household_id")
    assert sorted(frame.index[frame["rule_flag"]]) == ["t0", "t1", "t3", "t5"]
    assert frame.loc["t0", "rule_low_income"]
    assert frame.loc["t1", "rule_medical_out_of_pocket"]
    assert not frame.loc["t2", "rule_medical_out_of_pocket"]
    assert frame.loc["t3", "rule_disaster"]
    assert not frame.loc["t4", "rule_job_loss"]
    assert frame.loc["t5", "rule_schooling_cost"]
    assert not frame.loc["t6", "rule_schooling_cost"]
    assert frame.loc["t0", "rule_income_to_line"] == pytest.approx(8_000 / 6_000)


def test_rule_ranks_flagged_by_income_over_line() -> None:
    panel = Panel(_tiny_store())
    rules = load_rules(Settings().rules_path, income_multiplier=1.5)
    frame = rule_frame(panel, np.array([23]), rules)
    ranked = frame.sort_values("rule_score", ascending=False, kind="stable")["household_id"].tolist()
    # t0 has the lowest income among the flagged; the flagged come before the rest.
    assert ranked[0] == "t0"
    assert set(ranked[:4]) == {"t0", "t1", "t3", "t5"}


def test_rule_income_multiplier_is_setting() -> None:
    panel = Panel(_tiny_store())
    rules = load_rules(Settings().rules_path, income_multiplier=1.2)
    frame = rule_frame(panel, np.array([23]), rules).set_index("household_id")
    assert not frame.loc["t0", "rule_low_income"]
    assert sorted(frame.index[frame["rule_flag"]]) == ["t1", "t3", "t5"]


def test_rules_reject_unknown_table(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: odd, series: {table: income, value: amount}, at_least: 1}\n")
    with pytest.raises(ValueError, match="rule 'odd' reads table 'income'"):
        load_rules(path, 1.5)


# Slices.


def _slice_frame() -> pd.DataFrame:
    # Urban: 4 positives, 3 flagged among them. Rural: 5 positives, 2 flagged among them.
    labels = [1, 1, 1, 1, 0, 0] + [1, 1, 1, 1, 1, 0, 0]
    flagged = [1, 1, 1, 0, 1, 0] + [1, 1, 0, 0, 0, 1, 0]
    return pd.DataFrame(
        {
            "urban_rural": ["urban"] * 6 + ["rural"] * 7,
            "label": np.array(labels, dtype=float),
            "flagged": np.array(flagged, dtype=bool),
            "rule_flagged": np.array([0] * 13, dtype=bool),
            "probability": np.linspace(0.1, 0.9, 13),
        }
    )


def test_slice_gap_exact() -> None:
    dimension = slice_dimension(
        _slice_frame(), "urban_rural", "urban_rural", max_recall_gap=0.1, min_positives=1
    )
    by_name = {item.name: item for item in dimension.slices}
    assert by_name["urban"].recall_at_capacity == pytest.approx(0.75)
    assert by_name["rural"].recall_at_capacity == pytest.approx(0.4)
    assert by_name["urban"].precision_at_capacity == pytest.approx(0.75)
    assert by_name["rural"].precision_at_capacity == pytest.approx(2 / 3)
    assert dimension.recall_gap == pytest.approx(0.35)
    assert dimension.highest == "urban"
    assert dimension.lowest == "rural"
    assert dimension.within_bound is False


def test_slice_gap_skips_thin_slices() -> None:
    dimension = slice_dimension(
        _slice_frame(), "urban_rural", "urban_rural", max_recall_gap=0.1, min_positives=5
    )
    assert [item.in_gap for item in dimension.slices] == [True, False]
    assert dimension.recall_gap is None
    assert dimension.within_bound is None


# Calibration.


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def test_calibration_picks_platt_for_scaled_logistic() -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(-2.0, 1.5, 3000)
    raw = _sigmoid(logits)
    labels = (rng.random(raw.size) < _sigmoid(0.6 * logits - 0.5)).astype(float)
    groups = np.arange(raw.size).astype(str)
    method, scores = select_calibration(raw, labels, groups, Settings(calibration_method="auto"))
    assert method == "platt"
    assert scores["platt"]["brier"] < scores["isotonic"]["brier"]


def test_calibration_picks_isotonic_for_step() -> None:
    rng = np.random.default_rng(12)
    raw = rng.random(3000)
    # The true probability jumps at 0.5, which no logistic curve of the log-odds can follow.
    labels = (rng.random(raw.size) < np.where(raw < 0.5, 0.02, 0.7)).astype(float)
    groups = np.arange(raw.size).astype(str)
    method, scores = select_calibration(raw, labels, groups, Settings(calibration_method="auto"))
    assert method == "isotonic"
    assert scores["isotonic"]["brier"] < scores["platt"]["brier"]


def test_calibration_setting_overrides_choice() -> None:
    raw = np.linspace(0.01, 0.99, 50)
    labels = (raw > 0.5).astype(float)
    method, scores = select_calibration(raw, labels, raw.astype(str), Settings(calibration_method="isotonic"))
    assert method == "isotonic"
    assert scores is None


def test_cross_fit_keeps_households_together() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(40).astype(str), 5)
    raw = rng.random(groups.size)
    labels = (rng.random(groups.size) < raw).astype(float)
    probabilities = cross_fitted_probabilities(raw, labels, groups, folds=4, seed=0)
    assert probabilities is not None
    assert set(probabilities) == {"isotonic", "platt"}
    assert all(values.shape == raw.shape for values in probabilities.values())


def test_platt_calibrator_round_trip() -> None:
    rng = np.random.default_rng(4)
    raw = rng.random(500)
    labels = (rng.random(500) < raw).astype(float)
    calibrator = fit_calibrator(raw, labels, "platt")
    restored = Calibrator.from_json(json.loads(json.dumps(calibrator.to_json())))
    assert restored.method == "platt"
    np.testing.assert_allclose(restored.apply(raw), calibrator.apply(raw))
    assert np.all(np.diff(calibrator.apply(np.sort(raw))) >= 0)


def test_calibrator_reads_knots_without_method() -> None:
    restored = Calibrator.from_json({"x": [0.0, 1.0], "y": [0.1, 0.9]})
    assert restored.method == "isotonic"
    assert restored.apply(np.array([0.5]))[0] == pytest.approx(0.5)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_fit_target_uses_calibration_setting(method: str) -> None:
    settings = Settings(num_boost_round=20, calibration_method=method)
    catalogue = load_catalogue(settings.catalogue_path, set(load_cause_groups(settings.cause_groups_path)))
    frame = build_training_frame(make_store(400, 48, seed=6), catalogue, settings)
    frame = assign_blocks(
        frame, split_cutoffs(frame["cutoff"], settings.horizon_months, settings.validation_fraction)
    )
    fitted = fit_target(
        frame, "sudden_hardship", catalogue.feature_names, settings, min_train_positives=5, review_share=0.05
    )
    assert fitted is not None
    assert fitted.calibration_method == method
    assert fitted.model.calibrator is not None
    assert fitted.model.calibrator.method == method


def test_evaluation_takes_horizon_from_bundle() -> None:
    bundle = ModelBundle(
        version="v1",
        feature_names=[],
        cause_group_of={},
        measures={},
        models={},
        lines=pd.DataFrame(),
        training={"horizon_months": 24, "cutoff_step_months": 12},
    )
    settings = Settings(horizon_months=12, cutoff_step_months=3)
    chosen = with_bundle_horizon(settings, bundle)
    assert (chosen.horizon_months, chosen.cutoff_step_months) == (24, 12)
    assert with_bundle_horizon(settings, None) is settings
    assert settings.horizon_months == 12


def test_sample_households_is_seeded() -> None:
    ids = np.array([f"h{index}" for index in range(100)] * 3)
    first = sample_households(ids, 10, seed=1)
    assert first is not None
    assert len(first) == 10
    assert len(set(first)) == 10
    np.testing.assert_array_equal(first, sample_households(ids, 10, seed=1))
    assert sample_households(ids, 0, seed=1) is None
    assert sample_households(ids, 100, seed=1) is None


# The whole evaluation on a small store, with a hand-built oracle.


def _write_oracle(store: Store, folder: Path, horizon_months: int) -> None:
    """Write truth/risk.parquet whose true risk is the label itself, so the oracle ranks perfectly."""
    panel = Panel(store)
    cutoffs = np.arange(0, panel.n_periods - horizon_months)
    labels = build_labels(panel, cutoffs, horizon_months)
    fall = labels["relapse"].fillna(labels["new_poverty"]).fillna(0.0)
    risk = pd.DataFrame(
        {
            "household_id": labels["household_id"].astype(str),
            "cutoff": pd.DatetimeIndex(labels["cutoff"]).strftime("%Y-%m"),
            "below_at_cutoff": False,
            "hardship_at_cutoff": False,
            "p_fall": fall.to_numpy(),
            "p_hardship": labels["sudden_hardship"].fillna(0.0).to_numpy(),
            "replicas": 20,
        }
    )
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    risk.to_parquet(folder / "truth" / "risk.parquet", index=False)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, object]:
    root = tmp_path_factory.mktemp("evaluate")
    settings = _settings(root)
    store = make_store(600, 60, seed=4)
    _write_oracle(store, root / "simulated", settings.horizon_months)
    return settings, evaluate(store, settings, truth=root / "simulated" / "truth")


def test_evaluate_backtests_four_origins(evaluated: tuple) -> None:
    settings, result = evaluated
    report = result.report
    assert [origin.origin for origin in report.origins] == ["2024-02", "2024-05", "2024-08", "2024-11"]
    assert set(report.targets) == {"relapse", "new_poverty", "sudden_hardship"}
    for evaluation in report.targets.values():
        assert len(evaluation.origins) == 4
        assert evaluation.model.origins == 4
        assert evaluation.model.roc_auc is not None and evaluation.model.roc_auc > 0.5
        for origin in evaluation.origins:
            # Model and rule flag the same number of households per county and cut-off.
            assert origin.model.flagged == origin.rule.flagged
            assert origin.rule.brier is None


def test_evaluate_compares_with_oracle(evaluated: tuple) -> None:
    _, result = evaluated
    for evaluation in result.report.targets.values():
        ceiling = evaluation.oracle
        assert ceiling is not None
        assert ceiling.coverage == pytest.approx(1.0)
        assert ceiling.oracle_roc_auc == pytest.approx(1.0)
        assert ceiling.auc_share == pytest.approx(ceiling.model_roc_auc)


def test_evaluate_records_calibration_and_plots(evaluated: tuple) -> None:
    settings, result = evaluated
    folder = settings.work_dir / "reports" / "evaluation"
    assert result.path == folder / f"{result.report.version}.json"
    for target, evaluation in result.report.targets.items():
        assert evaluation.calibration.method in ("isotonic", "platt")
        assert set(evaluation.calibration.out_of_fold) == {"isotonic", "platt"}
        plot = folder / evaluation.calibration.plot
        assert plot == result.plots[target]
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert sum(item.rows for item in evaluation.calibration.reliability) == sum(
            origin.model.rows for origin in evaluation.origins
        )


def test_evaluate_reports_slices(evaluated: tuple) -> None:
    settings, result = evaluated
    for evaluation in result.report.targets.values():
        assert [item.dimension for item in evaluation.slices] == [
            "urban_rural",
            "province",
            "disabled_members",
            "elderly_only",
        ]
        provinces = {item.name for item in evaluation.slices[1].slices}
        assert provinces == {"52", "62"}
        assert all(item.max_recall_gap == settings.max_recall_gap for item in evaluation.slices)


def test_report_json_round_trips(evaluated: tuple) -> None:
    _, result = evaluated
    assert EvaluationReport.read(result.path) == result.report
    assert EvaluationReport.from_json(result.report.to_json()) == result.report
    assert json.loads(result.path.read_text())["schema_version"] == 1


def test_evaluation_logged_to_mlflow(evaluated: tuple) -> None:
    from mlflow import MlflowClient

    settings, result = evaluated
    with tracking.training_run(
        settings.mlflow_tracking_uri, settings.mlflow_experiment, "evaluated-model"
    ) as run:
        run_id = run.info.run_id
    report = result.report.model_copy(update={"mlflow_run_id": run_id})
    assert log_evaluation(report, result.path, result.plots, settings)
    uri, _ = tracking.resolve_tracking(settings.mlflow_tracking_uri)
    logged = MlflowClient(tracking_uri=uri).get_run(run_id)
    expected = headline_metrics(report)
    assert logged.data.metrics["backtest_relapse_roc_auc"] == pytest.approx(
        expected["backtest_relapse_roc_auc"]
    )
    assert "backtest_new_poverty_recall_margin_over_rule" in logged.data.metrics
    assert logged.data.tags["evaluation_calibration_relapse"] == report.targets["relapse"].calibration.method
