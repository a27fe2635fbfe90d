"""Tests of the registry: aliases after training, the promotion gate, serving by alias and model cards."""

from __future__ import annotations

import json
import shutil
import time
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402

from warning.api import create_app  # noqa: E402
from warning.api.deps import refreshed_state  # noqa: E402
from warning.bundle import CHAMPION, load_champion, publish_champion  # noqa: E402
from warning.cli import app  # noqa: E402
from warning.evaluate.report import (  # noqa: E402
    CalibrationChoice,
    EvaluationReport,
    MetricMeans,
    OracleCeiling,
    OriginSpec,
    RuleComparison,
    SliceDimension,
    SliceMetrics,
    TargetEvaluation,
)
from warning.labels import ALL_TARGETS  # noqa: E402
from warning.registry.aliases import (  # noqa: E402
    CHALLENGER,
    ensure_champion_folder,
    find_alias,
    find_bundle,
    load_champion_by_alias,
    point_alias,
    registered_model_name,
    registry_client,
)
from warning.registry.cards import write_card, write_cards  # noqa: E402
from warning.registry.gate import Candidate, Tolerances, judge  # noqa: E402
from warning.registry.promotion import promote  # noqa: E402
from warning.registry.reports import ReportError, evaluation_path, read_evaluation  # noqa: E402
from warning.settings import Settings, get_settings  # noqa: E402
from warning.train import TrainResult, train  # noqa: E402

PREFIX = "poverty-warning"
ORIGINS = ("2023-01", "2023-04")


# Hand-built evaluation reports.


def metric_means(roc_auc: float | None, recall: float | None, ece: float | None) -> MetricMeans:
    return MetricMeans(
        origins=len(ORIGINS),
        roc_auc=roc_auc,
        pr_auc=0.3312,
        brier=0.0871,
        ece=ece,
        recall_at_capacity=recall,
        precision_at_capacity=0.4417,
    )


def slice_dimension(dimension: str, first: str, second: str, recall: float, gap: float) -> SliceDimension:
    high, low = recall + gap / 2, recall - gap / 2
    return SliceDimension(
        dimension=dimension,
        slices=[
            SliceMetrics(name=first, rows=800, positives=90, flagged=60, recall_at_capacity=high, in_gap=True),
            SliceMetrics(name=second, rows=700, positives=70, flagged=40, recall_at_capacity=low, in_gap=True),
            SliceMetrics(name="thin", rows=20, positives=2, flagged=1, recall_at_capacity=0.5, in_gap=False),
        ],
        recall_gap=gap,
        highest=first,
        lowest=second,
        max_recall_gap=0.1,
        within_bound=gap <= 0.1,
    )


def target_evaluation(
    target: str,
    roc_auc: float | None = 0.75,
    recall: float | None = 0.40,
    ece: float | None = 0.02,
    gap: float | None = 0.05,
    oracle: bool = True,
) -> TargetEvaluation:
    return TargetEvaluation(
        target=target,
        origins=[],
        model=metric_means(roc_auc, recall, ece),
        rule=MetricMeans(origins=len(ORIGINS), roc_auc=0.6011, recall_at_capacity=0.2468, precision_at_capacity=0.2101),
        at_capacity=RuleComparison(
            basis="capacity share per county",
            flagged=120,
            model_recall=recall,
            rule_recall=0.2468,
            recall_margin=None if recall is None else recall - 0.2468,
            model_precision=0.4417,
            rule_precision=0.2101,
        ),
        at_rule_count=RuleComparison(basis="as many as the rule flags per county", flagged=150),
        calibration=CalibrationChoice(
            setting="auto",
            criterion="brier",
            method="platt",
            out_of_fold={"isotonic": {"brier": 0.0902, "ece": 0.0301}, "platt": {"brier": 0.0895, "ece": 0.0222}},
            test={"platt": {"brier": 0.0871, "ece": 0.0199}},
            raw_test_ece=0.0634,
            plot=f"{target}-reliability.png",
        ),
        oracle=(
            OracleCeiling(rows=1400, coverage=0.93, model_roc_auc=0.7512, oracle_roc_auc=0.8634, auc_share=0.8700, lift_share=0.6789)
            if oracle
            else None
        ),
        slices=[] if gap is None else [slice_dimension("urban_rural", "urban", "rural", recall or 0.4, gap)],
    )


def make_report(version: str, targets: dict[str, TargetEvaluation], origins: tuple[str, ...] = ORIGINS) -> EvaluationReport:
    return EvaluationReport(
        version=version,
        created_at="2024-01-02T03:04:05+00:00",
        dataset="factory",
        store="memory",
        bundle_version=version,
        capacity_share=0.05,
        max_recall_gap=0.1,
        settings={},
        origins=[
            OriginSpec(
                origin=origin,
                train_cutoffs=["2021-12", "2022-03"],
                validation_cutoffs=["2022-06"],
                test_cutoffs=[origin],
                train_households=400,
            )
            for origin in origins
        ],
        targets=targets,
    )


def write_report(settings: Settings, result: TrainResult, **metrics: object) -> Path:
    targets = {target: target_evaluation(target, **metrics) for target in result.registered_versions}
    return make_report(result.version, targets).write(evaluation_path(settings, result.version))


# Pure gate rules.


def candidate(version: str, report: EvaluationReport | None) -> Candidate:
    return Candidate(version=version, report_path=Path(f"/reports/{version}.json"), report=report)


def tolerances(**overrides: object) -> Tolerances:
    values = {"roc_auc": 0.005, "recall_at_capacity": 0.01, "ece": 0.01, "max_recall_gap": 0.1} | overrides
    return Tolerances(**values)  # type: ignore[arg-type]


def one_target(version: str, **metrics: object) -> Candidate:
    return candidate(version, make_report(version, {"relapse": target_evaluation("relapse", **metrics)}))


def test_judge_passes_equal_within_tolerance() -> None:
    champion = one_target("old", roc_auc=0.75, recall=0.40, ece=0.02)
    challenger = one_target("new", roc_auc=0.745, recall=0.39, ece=0.03)

    checks = judge(challenger, champion, tolerances())

    assert all(check.passed for check in checks), [check.message for check in checks if not check.passed]
    assert {check.rule for check in checks} == {"same_origins", "roc_auc", "recall_at_capacity", "ece", "recall_gap_urban_rural"}


def test_judge_names_metric_and_values() -> None:
    checks = judge(one_target("new", roc_auc=0.70), one_target("old", roc_auc=0.75), tolerances())

    [failed] = [check for check in checks if not check.passed]
    assert failed.rule == "roc_auc"
    assert failed.challenger == 0.70
    assert failed.champion == 0.75
    assert failed.bound == pytest.approx(0.745)
    assert "mean roc_auc 0.7000" in failed.message
    assert "champion's 0.7500" in failed.message


def test_judge_rejects_higher_ece() -> None:
    checks = judge(one_target("new", ece=0.05), one_target("old", ece=0.02), tolerances())

    [failed] = [check for check in checks if not check.passed]
    assert failed.rule == "ece"
    assert "0.0500" in failed.message
    assert "above the champion's 0.0200 plus tolerance 0.01" in failed.message


def test_judge_undefined_metrics() -> None:
    champion_undefined = judge(one_target("new", roc_auc=0.6), one_target("old", roc_auc=None), tolerances())
    challenger_undefined = judge(one_target("new", roc_auc=None), one_target("old", roc_auc=0.75), tolerances())

    assert all(check.passed for check in champion_undefined)
    [failed] = [check for check in challenger_undefined if not check.passed]
    assert "undefined" in failed.message


def test_judge_rejects_missing_target() -> None:
    champion = candidate(
        "old",
        make_report("old", {target: target_evaluation(target) for target in ("relapse", "new_poverty")}),
    )

    checks = judge(one_target("new"), champion, tolerances())

    [failed] = [check for check in checks if not check.passed]
    assert failed.rule == "target_present"
    assert failed.target == "new_poverty"


def test_judge_rejects_different_origins() -> None:
    champion = candidate("old", make_report("old", {"relapse": target_evaluation("relapse")}, origins=("2022-10",)))

    failed = [check for check in judge(one_target("new"), champion, tolerances()) if not check.passed]

    assert [check.rule for check in failed] == ["same_origins"]
    assert not [check for check in judge(one_target("new"), champion, tolerances(same_origins=False)) if not check.passed]


def test_judge_without_champion_checks_gap_only() -> None:
    passing = judge(one_target("new", roc_auc=0.51, gap=0.08), None, tolerances())
    failing = judge(one_target("new", gap=0.12), None, tolerances())

    assert [check.rule for check in passing] == ["recall_gap_urban_rural"]
    assert passing[0].passed
    assert not failing[0].passed
    assert "0.1200" in failing[0].message


def test_judge_missing_reports() -> None:
    checks = judge(candidate("new", None), candidate("old", None), tolerances())

    assert [check.passed for check in checks] == [False, False]
    assert "challenger new has no evaluation report at /reports/new.json" in checks[0].message
    assert "champion old has no evaluation report" in checks[1].message


def test_read_evaluation_rejects_other_version(tmp_path: Path) -> None:
    path = make_report("a", {"relapse": target_evaluation("relapse")}).write(tmp_path / "b.json")

    with pytest.raises(ReportError, match="evaluates bundle 'a', not 'b'"):
        read_evaluation(path, "b")


def test_read_evaluation_names_invalid_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    body = json.loads(make_report("a", {}).to_json())
    body["capacity_share"] = "many"
    path.write_text(json.dumps(body))

    with pytest.raises(ReportError, match=r"invalid at capacity_share"):
        read_evaluation(path)


# Registry end to end: two trainings in a temporary MLflow store.


@dataclass
class Trained:
    settings: Settings
    first: TrainResult
    second: TrainResult


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("registry")
    settings = Settings(
        work_dir=root / "out",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        model_cards_dir=root / "cards",
        num_boost_round=40,
        calibration_method="isotonic",
        min_train_positives=5,
    )
    first = train(make_store(400, 48, seed=1), settings)
    second = train(make_store(400, 48, seed=2), settings)
    return Trained(settings, first, second)


@pytest.fixture
def registry(trained: Trained) -> Trained:
    """The registry as training left it: the first bundle champion, the second challenger, no reports."""
    settings = trained.settings
    client = registry_client(settings)
    point_alias(client, PREFIX, CHAMPION, find_bundle(client, PREFIX, trained.first.version))
    point_alias(client, PREFIX, CHALLENGER, find_bundle(client, PREFIX, trained.second.version))
    shutil.rmtree(settings.work_dir / "reports", ignore_errors=True)
    shutil.rmtree(settings.model_cards_dir, ignore_errors=True)
    publish_champion(trained.first.bundle_path, settings)
    return trained


def alias_versions(settings: Settings, alias: str) -> dict[str, str]:
    """Return the version that ``alias`` points at on each target's registered model."""
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    versions = {}
    for target in ALL_TARGETS:
        try:
            model = client.get_registered_model(registered_model_name(PREFIX, target))
        except MlflowException:
            continue
        if alias in model.aliases:
            versions[target] = str(model.aliases[alias])
    return versions


def version_tags(settings: Settings, result: TrainResult) -> dict[str, str]:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    target, number = next(iter(result.registered_versions.items()))
    return client.get_model_version(registered_model_name(PREFIX, target), number).tags


def test_first_training_is_champion_second_challenger(trained: Trained) -> None:
    settings, first, second = trained.settings, trained.first, trained.second

    assert first.alias == CHAMPION
    assert second.alias == CHALLENGER
    assert first.registered_versions
    assert set(second.registered_versions) == set(first.registered_versions)
    assert "Registered as the challenger" in second.summary()
    client = registry_client(settings)
    assert find_alias(client, PREFIX, CHAMPION).bundle_version == first.version
    assert find_alias(client, PREFIX, CHALLENGER).bundle_version == second.version
    # Training the challenger leaves the published champion alone.
    assert load_champion(settings).version == first.version


def test_registered_versions_tagged_with_bundle(registry: Trained) -> None:
    assert version_tags(registry.settings, registry.second)["bundle_version"] == registry.second.version


def test_gate_promotes_better_challenger(registry: Trained) -> None:
    settings, first, second = registry.settings, registry.first, registry.second
    write_report(settings, first, roc_auc=0.74, recall=0.38, ece=0.03)
    write_report(settings, second, roc_auc=0.76, recall=0.41, ece=0.02)

    decision = promote(settings, requested_by="analyst-1")

    assert decision.outcome == "promoted"
    assert decision.challenger == second.version
    assert decision.champion_before == first.version
    assert decision.failed == []
    assert alias_versions(settings, CHAMPION) == second.registered_versions
    assert alias_versions(settings, CHALLENGER) == {}
    assert load_champion(settings).version == second.version
    record = json.loads(decision.record_path.read_text(encoding="utf-8"))
    assert decision.record_path.parent == settings.work_dir / "reports" / "promotions"
    assert record["outcome"] == "promoted"
    assert record["requested_by"] == "analyst-1"
    assert record["champion_after"] == second.version
    assert record["tolerances"]["roc_auc"] == settings.promotion_auc_tolerance
    assert {check["rule"] for check in record["checks"]} >= {"roc_auc", "recall_at_capacity", "ece", "same_origins"}
    tags = version_tags(settings, second)
    assert tags["promotion_outcome"] == "promoted"
    assert tags["promotion_record"] == decision.record_path.name
    assert version_tags(settings, first)["replaced_by"] == second.version


def test_gate_rejects_worse_challenger(registry: Trained) -> None:
    settings, first, second = registry.settings, registry.first, registry.second
    write_report(settings, first, roc_auc=0.75, recall=0.40)
    write_report(settings, second, roc_auc=0.70, recall=0.40)

    decision = promote(settings)

    assert decision.outcome == "rejected"
    reasons = [check.message for check in decision.failed]
    assert [check.target for check in decision.failed] == list(second.registered_versions)
    for reason in reasons:
        assert "mean roc_auc 0.7000 of the challenger is below the champion's 0.7500" in reason
    assert alias_versions(settings, CHAMPION) == first.registered_versions
    assert alias_versions(settings, CHALLENGER) == second.registered_versions
    assert load_champion(settings).version == first.version
    record = json.loads(decision.record_path.read_text(encoding="utf-8"))
    assert record["outcome"] == "rejected"
    assert record["reasons"] == reasons
    assert record["champion_after"] == first.version
    tags = version_tags(settings, second)
    assert tags["promotion_outcome"] == "rejected"
    assert "roc_auc" in tags["promotion_reasons"]


def test_gate_rejects_fairness_gap(registry: Trained) -> None:
    settings, first, second = registry.settings, registry.first, registry.second
    write_report(settings, first)
    write_report(settings, second, roc_auc=0.80, gap=0.25)

    decision = promote(settings)

    assert decision.outcome == "rejected"
    assert {check.rule for check in decision.failed} == {"recall_gap_urban_rural"}
    message = decision.failed[0].message
    assert "urban_rural" in message
    assert "0.2500" in message
    assert "beyond max_recall_gap 0.1" in message
    assert alias_versions(settings, CHAMPION) == first.registered_versions


def test_forced_promotion_records_reason(registry: Trained) -> None:
    settings, first, second = registry.settings, registry.first, registry.second
    write_report(settings, first, roc_auc=0.75)
    write_report(settings, second, roc_auc=0.60)

    decision = promote(settings, version=second.version, force=True, reason="new provincial line from 2024")

    assert decision.outcome == "forced"
    assert decision.promoted
    assert not decision.gate_passed
    assert alias_versions(settings, CHAMPION) == second.registered_versions
    record = json.loads(decision.record_path.read_text(encoding="utf-8"))
    assert record["forced"] is True
    assert record["override_reason"] == "new provincial line from 2024"
    assert record["gate_passed"] is False
    assert any("roc_auc" in reason for reason in record["reasons"])
    tags = version_tags(settings, second)
    assert tags["promotion_outcome"] == "forced"
    assert tags["promotion_override_reason"] == "new provincial line from 2024"


def test_forced_promotion_when_gate_passes(registry: Trained) -> None:
    settings = registry.settings
    write_report(settings, registry.first)
    write_report(settings, registry.second)

    decision = promote(settings, force=True, reason="scheduled refresh")

    assert decision.outcome == "promoted"
    assert decision.forced
    assert decision.override_reason == "scheduled refresh"
    assert decision.notes == ["every check passed, so the promotion did not need the override"]


def test_forced_promotion_needs_reason(registry: Trained) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        promote(registry.settings, force=True, reason="  ")


def test_gate_rejects_without_reports(registry: Trained) -> None:
    decision = promote(registry.settings)

    assert decision.outcome == "rejected"
    assert [check.rule for check in decision.failed] == ["evaluation_report", "evaluation_report"]
    assert "run povwarn evaluate" in decision.failed[0].message


def test_promote_unknown_version(registry: Trained) -> None:
    with pytest.raises(LookupError, match="no registered models"):
        promote(registry.settings, version="20990101T000000Z-deadbeef")


def test_promote_current_champion(registry: Trained) -> None:
    with pytest.raises(ValueError, match="already the champion"):
        promote(registry.settings, version=registry.first.version)


# Serving by alias.


def registered_names(result: TrainResult) -> dict[str, str]:
    return {registered_model_name(PREFIX, target): number for target, number in result.registered_versions.items()}


def health(settings: Settings) -> dict[str, object]:
    with TestClient(create_app(settings)) as client:
        return client.get("/health").json()


def test_health_shows_alias_version_after_promotion(registry: Trained) -> None:
    settings, first, second = registry.settings, registry.first, registry.second
    write_report(settings, first)
    write_report(settings, second, roc_auc=0.77)

    before = health(settings)
    promote(settings)
    after = health(settings)

    assert before["model_version"] == first.version
    assert before["champion_source"] == "registry"
    assert before["registry_versions"] == registered_names(first)
    assert after["model_version"] == second.version
    assert after["registry_versions"] == registered_names(second)
    assert after["registry_error"] is None


def test_running_service_loads_promoted_champion(registry: Trained) -> None:
    settings = registry.settings.model_copy(update={"model_refresh_seconds": 0.0})
    write_report(settings, registry.first)
    write_report(settings, registry.second, roc_auc=0.77)
    app = create_app(settings)
    with TestClient(app) as client:
        state = app.state.service
        assert refreshed_state(state) is None
        promote(settings)
        fresh = refreshed_state(state)
        assert fresh is not None
        assert fresh.engine is state.engine
        app.state.service = fresh
        body = client.get("/health").json()
    assert body["model_version"] == registry.second.version
    assert body["registry_versions"] == registered_names(registry.second)


def test_service_checks_champion_in_background(registry: Trained) -> None:
    settings = registry.settings.model_copy(update={"model_refresh_seconds": 0.05})
    write_report(settings, registry.first)
    write_report(settings, registry.second, roc_auc=0.77)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["model_version"] == registry.first.version
        promote(settings)
        # Bounded wait for the background check; it runs every 0.05 s.
        deadline = time.monotonic() + 20
        while client.get("/health").json()["model_version"] != registry.second.version:
            assert time.monotonic() < deadline, "the service did not load the promoted champion"
            time.sleep(0.1)


def test_serving_follows_alias_not_folder(registry: Trained) -> None:
    settings = registry.settings
    # Move the alias without publishing: the service follows the registry.
    client = registry_client(settings)
    point_alias(client, PREFIX, CHAMPION, find_bundle(client, PREFIX, registry.second.version))

    bundle, source = load_champion_by_alias(settings)

    assert bundle.version == registry.second.version
    assert source.source == "registry"
    assert load_champion(settings).version == registry.first.version


def test_champion_downloaded_into_new_work_dir(registry: Trained, tmp_path: Path) -> None:
    settings = registry.settings.model_copy(update={"work_dir": tmp_path})

    bundle, source = load_champion_by_alias(settings)
    published = ensure_champion_folder(settings)

    assert bundle.version == registry.first.version
    assert source.folder == tmp_path / "models" / registry.first.version
    assert published == tmp_path / "models" / CHAMPION
    assert load_champion(settings).version == registry.first.version
    assert ensure_champion_folder(settings) is None


def test_serving_without_registry_uses_folder(registry: Trained, tmp_path: Path) -> None:
    settings = registry.settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"})

    body = health(settings)

    assert body["model_version"] == registry.first.version
    assert body["champion_source"] == "folder"
    assert body["registry_versions"] == {}
    assert not (tmp_path / "none" / "mlflow.db").exists()


# Model cards.


SECTIONS = (
    "## Intended use",
    "## Data window",
    "## Features",
    "## Metrics by target",
    "## Metrics by slice",
    "## Calibration",
    "## Baseline comparison",
    "## Oracle share",
    "## Known limits",
)


def test_card_has_sections_and_report_numbers(registry: Trained) -> None:
    settings, second = registry.settings, registry.second
    report_path = write_report(settings, second, roc_auc=0.8123, recall=0.4321, ece=0.0234, gap=0.0456)
    target = next(iter(second.registered_versions))
    (report_path.parent / f"{target}-reliability.png").write_bytes(b"\x89PNG")

    path = write_card(settings, second.version)
    text = path.read_text(encoding="utf-8")

    assert path == settings.model_cards_dir / f"{second.version}.md"
    assert text.startswith(f"# Model card: {second.version}")
    for section in SECTIONS:
        assert section in text, section
    assert "| Registry alias | challenger |" in text
    assert f"| {target} | model | 2 | 0.812 | 0.331 | 0.0871 | 0.0234 | 0.432 | 0.442 |" in text
    assert f"| {target} | rule | 2 | 0.601 |" in text
    # Baseline: model recall 0.4321 against rule 0.2468 at capacity, margin +0.185.
    assert f"| {target} | capacity share per county | 120 | 0.432 | 0.247 | +0.185 | 0.442 | 0.210 |" in text
    assert "| urban | 800 | 90 | 60 | 0.455 |" in text
    assert "Largest recall gap: 0.046 (urban highest, rural lowest), within the bound 0.1." in text
    assert "backtest method **platt**" in text
    assert f"[{target}-reliability.png](" in text
    assert "| 0.870 | 0.679 |" in text
    assert "Dataset: `factory`" in text
    assert second.run_id in text
    assert "Never an automatic decision" in text
    assert "override is recorded with its reason" in text
    assert "too few falls to judge recall in the urban_rural slice(s) thin" in text
    assert "`income_to_line_12m` | income_position |" in text


def test_card_logged_to_mlflow_run(registry: Trained) -> None:
    settings, first = registry.settings, registry.first

    write_card(settings, first.version)

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    logged = {item.path for item in client.list_artifacts(first.run_id, "model_card")}
    assert logged == {f"model_card/{first.version}.md"}


def test_card_without_report_says_so(registry: Trained) -> None:
    text = write_card(registry.settings, registry.first.version).read_text(encoding="utf-8")

    assert "| Registry alias | champion |" in text
    assert "No backtest: run `povwarn evaluate` for this version." in text
    assert "No oracle" in text
    assert "Not evaluated by a rolling-origin backtest" in text
    for section in SECTIONS:
        assert section in text, section


def test_card_lists_promotion_decision(registry: Trained) -> None:
    settings = registry.settings
    write_report(settings, registry.first)
    write_report(settings, registry.second, roc_auc=0.70)
    promote(settings)

    text = write_card(settings, registry.second.version).read_text(encoding="utf-8")

    assert "| Last promotion decision | rejected at " in text
    assert "mean roc_auc 0.7000" in text


def test_cards_for_every_registered_version(registry: Trained) -> None:
    paths = write_cards(registry.settings)

    assert [path.stem for path in paths] == [registry.first.version, registry.second.version]


# Command line.


@pytest.fixture
def cli_env(registry: Trained, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trained]:
    """Point the povwarn settings at the temporary registry, and restore them afterwards."""
    settings = registry.settings
    # The CLI writes --work-dir into the environment, so record the variable for monkeypatch to restore.
    monkeypatch.setenv("POVWARN_WORK_DIR", str(settings.work_dir))
    monkeypatch.setenv("POVWARN_MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("POVWARN_MODEL_CARDS_DIR", str(settings.model_cards_dir))
    get_settings.cache_clear()
    yield registry
    get_settings.cache_clear()


def test_cli_promote_exit_codes(cli_env: Trained) -> None:
    settings, first, second = cli_env.settings, cli_env.first, cli_env.second
    write_report(settings, first, roc_auc=0.75)
    write_report(settings, second, roc_auc=0.70)
    runner = CliRunner()
    work_dir = ["--work-dir", str(settings.work_dir)]

    rejected = runner.invoke(app, ["promote", *work_dir])
    no_reason = runner.invoke(app, ["promote", "--force", *work_dir])
    forced = runner.invoke(app, ["promote", "--force", "--reason", "line change", "--by", "analyst-2", *work_dir])

    assert rejected.exit_code == 1, rejected.output
    assert f"Rejected {second.version}" in rejected.output
    assert no_reason.exit_code == 2
    assert forced.exit_code == 0, forced.output
    assert "by analyst override" in forced.output
    assert (settings.model_cards_dir / f"{second.version}.md").exists()
    assert alias_versions(settings, CHAMPION) == second.registered_versions
