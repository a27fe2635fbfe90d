"""Tests of the simulator's true risk (oracle): replicas run forward from each cut-off."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import warning.simulate.oracle as oracle_module
from warning.contract import TABLES
from warning.ingest import ingest
from warning.labels import build_labels
from warning.panel import Panel
from warning.simulate import read_oracle, read_truth, simulate
from warning.simulate.oracle import RISK_COLUMNS, RiskOracle, replica_generator
from warning.store import read_store

# Enough households for about 50 falls per cut-off, so that the AUC is stable.
RUN = {"households": 2000, "months": 36, "seed": 3}
CUTOFFS = ["2021-12", "2022-12"]
REPLICAS = 8
# The oracle's pooled ROC-AUC over households at risk was 0.91-0.95 for
# seeds 0-5 (3,000 households, 36 months, 8 replicas), so 0.8 fails only
# when the ranking is broken.
MIN_ORACLE_AUC = 0.8


def month_number(labels: pd.Series) -> np.ndarray:
    text = labels.astype(str)
    return (text.str[:4].astype(int) * 12 + text.str[5:7].astype(int) - 1).to_numpy()


def roc_auc(scores: np.ndarray, outcomes: np.ndarray) -> float:
    """Return the ROC-AUC as the Mann-Whitney statistic, with ties counted as half."""
    ranks = pd.Series(scores).rank().to_numpy()
    positives = int(outcomes.sum())
    negatives = len(outcomes) - positives
    return float((ranks[outcomes].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def labels_at_cutoffs(folder: Path, store_dir: Path, cutoffs: list[str]) -> pd.DataFrame:
    """Return the product's labels at the cut-offs, with cutoff as ``YYYY-MM``."""
    ingest(folder, store_dir)
    panel = Panel(read_store(store_dir))
    periods = month_number(pd.Series(cutoffs)) - panel.first_month
    labels = build_labels(panel, periods, 12)
    labels["cutoff"] = labels["cutoff"].dt.strftime("%Y-%m")
    labels["label"] = labels["relapse"].fillna(labels["new_poverty"])
    return labels


def realised_within_horizon(truth: pd.DataFrame, cutoff: str, horizon: int = 12) -> set[str]:
    """Return households with a recorded onset in the months after the cut-off and within the horizon."""
    months = month_number(truth["month"])
    start = month_number(pd.Series([cutoff]))[0]
    inside = (months > start) & (months <= start + horizon)
    return set(truth.loc[inside, "household_id"])


@pytest.fixture(scope="module")
def oracle_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("oracle")
    simulate(folder, **RUN, oracle_cutoffs=CUTOFFS, oracle_replicas=REPLICAS)
    return folder


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plain")
    simulate(folder, **RUN)
    return folder


@pytest.fixture(scope="module")
def risk(oracle_folder: Path) -> pd.DataFrame:
    return read_oracle(oracle_folder)


@pytest.fixture(scope="module")
def labelled_risk(
    oracle_folder: Path, risk: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    labels = labels_at_cutoffs(oracle_folder, tmp_path_factory.mktemp("store"), CUTOFFS)
    return risk.merge(labels[["household_id", "cutoff", "label"]], on=["household_id", "cutoff"], how="left")


def test_oracle_leaves_observed_tables_unchanged(oracle_folder: Path, plain_folder: Path) -> None:
    for name in TABLES:
        with_oracle = pd.read_parquet(oracle_folder / f"{name}.parquet")
        without = pd.read_parquet(plain_folder / f"{name}.parquet")
        pd.testing.assert_frame_equal(with_oracle, without, obj=name)
    for name in ("falls", "hardship"):
        with_oracle = read_truth(oracle_folder, name)
        without = read_truth(plain_folder, name)
        pd.testing.assert_frame_equal(with_oracle, without, obj=name)
    assert (oracle_folder / "dataset.yaml").read_text() == (plain_folder / "dataset.yaml").read_text()


def test_default_run_writes_no_risk(plain_folder: Path) -> None:
    assert not (plain_folder / "truth" / "risk.parquet").exists()
    with pytest.raises(FileNotFoundError, match="oracle_cutoffs"):
        read_oracle(plain_folder)


def test_risk_has_every_household_at_every_cutoff(oracle_folder: Path, risk: pd.DataFrame) -> None:
    households = pd.read_parquet(oracle_folder / "households.parquet")
    assert list(risk.columns) == list(RISK_COLUMNS)
    assert len(risk) == RUN["households"] * len(CUTOFFS)
    assert list(risk["cutoff"].unique()) == CUTOFFS
    for cutoff in CUTOFFS:
        ids = risk.loc[risk["cutoff"] == cutoff, "household_id"].tolist()
        assert ids == households["household_id"].tolist()
    assert (risk["replicas"] == REPLICAS).all()


def test_risk_shares_are_replica_fractions(risk: pd.DataFrame) -> None:
    for column in ("p_fall", "p_hardship"):
        values = risk[column].to_numpy()
        assert values.min() >= 0.0
        assert values.max() <= 1.0
        np.testing.assert_allclose(values * REPLICAS, np.rint(values * REPLICAS), atol=1e-12)
    assert risk["p_fall"].between(0.0, 1.0, inclusive="neither").any()


def test_below_at_cutoff_matches_labels(labelled_risk: pd.DataFrame) -> None:
    # Labels exist exactly for the households at or above the line at the cut-off.
    assert (labelled_risk["label"].isna() == labelled_risk["below_at_cutoff"]).all()
    assert labelled_risk["below_at_cutoff"].any()


def test_households_below_line_stay_likely_below(labelled_risk: pd.DataFrame) -> None:
    below = labelled_risk[labelled_risk["below_at_cutoff"]]
    above = labelled_risk[~labelled_risk["below_at_cutoff"]]
    assert below["p_fall"].mean() > 0.9
    assert above["p_fall"].mean() < 0.1


def test_oracle_ranks_realised_falls(labelled_risk: pd.DataFrame) -> None:
    at_risk = labelled_risk[~labelled_risk["below_at_cutoff"]]
    outcomes = at_risk["label"].to_numpy() == 1.0
    assert outcomes.sum() >= 50
    for cutoff in CUTOFFS:
        rows = (at_risk["cutoff"] == cutoff).to_numpy()
        assert roc_auc(at_risk["p_fall"].to_numpy()[rows], outcomes[rows]) > MIN_ORACLE_AUC, cutoff
    assert roc_auc(at_risk["p_fall"].to_numpy(), outcomes) > MIN_ORACLE_AUC


def test_oracle_expected_falls_match_realised(labelled_risk: pd.DataFrame) -> None:
    at_risk = labelled_risk[~labelled_risk["below_at_cutoff"]]
    expected = at_risk["p_fall"].sum()
    realised = (at_risk["label"] == 1.0).sum()
    # The realised count is a sum of independent Bernoulli outcomes with these probabilities.
    spread = np.sqrt((at_risk["p_fall"] * (1.0 - at_risk["p_fall"])).sum())
    assert abs(realised - expected) < 4.0 * max(spread, 1.0)


def test_oracle_ranks_realised_hardship(oracle_folder: Path, risk: pd.DataFrame) -> None:
    hardship = read_truth(oracle_folder, "hardship")
    scores, outcomes = [], []
    for cutoff in CUTOFFS:
        rows = risk[(risk["cutoff"] == cutoff) & ~risk["below_at_cutoff"] & ~risk["hardship_at_cutoff"]]
        scores.append(rows["p_hardship"].to_numpy())
        outcomes.append(rows["household_id"].isin(realised_within_horizon(hardship, cutoff)).to_numpy())
    outcome = np.concatenate(outcomes)
    assert outcome.sum() >= 50
    assert roc_auc(np.concatenate(scores), outcome) > MIN_ORACLE_AUC


def test_replica_on_observed_stream_replays_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replica that continues the observed run's own random stream must
    # reproduce it exactly, which checks that replicas step like the run.
    record = RiskOracle.record

    def record_on_observed_stream(self: RiskOracle, run, month: int) -> None:  # noqa: ANN001
        monkeypatch.setattr(
            oracle_module, "replica_generator", lambda *_: copy.deepcopy(run.simulation.rng)
        )
        record(self, run, month)

    monkeypatch.setattr(RiskOracle, "record", record_on_observed_stream)
    small = {"households": 400, "months": 36, "seed": 7}
    simulate(tmp_path / "run", **small, oracle_cutoffs=CUTOFFS, oracle_replicas=1)
    risk = read_oracle(tmp_path / "run")
    labels = labels_at_cutoffs(tmp_path / "run", tmp_path / "store", CUTOFFS)
    merged = risk.merge(labels, on=["household_id", "cutoff"])
    at_risk = merged[~merged["below_at_cutoff"]]
    np.testing.assert_array_equal(at_risk["p_fall"].to_numpy(), at_risk["label"].to_numpy())
    assert at_risk["label"].sum() > 0

    hardship = read_truth(tmp_path / "run", "hardship")
    assert risk["p_hardship"].sum() > 0
    for cutoff in CUTOFFS:
        rows = risk[(risk["cutoff"] == cutoff) & ~risk["below_at_cutoff"] & ~risk["hardship_at_cutoff"]]
        realised = rows["household_id"].isin(realised_within_horizon(hardship, cutoff)).to_numpy()
        np.testing.assert_array_equal(rows["p_hardship"].to_numpy(), realised.astype(float))


def test_same_seed_gives_same_risk(tmp_path: Path) -> None:
    small = {"households": 300, "months": 24, "seed": 2}
    first = simulate(tmp_path / "a", **small, oracle_cutoffs=["2021-12"], oracle_replicas=3).out_dir
    second = simulate(tmp_path / "b", **small, oracle_cutoffs=["2021-12"], oracle_replicas=3).out_dir
    pd.testing.assert_frame_equal(read_oracle(first), read_oracle(second))


def test_more_replicas_extend_fewer(tmp_path: Path) -> None:
    small = {"households": 300, "months": 24, "seed": 2}
    simulate(tmp_path / "a", **small, oracle_cutoffs=["2021-12"], oracle_replicas=2)
    simulate(tmp_path / "b", **small, oracle_cutoffs=["2021-12"], oracle_replicas=4)
    fewer = read_oracle(tmp_path / "a")
    more = read_oracle(tmp_path / "b")
    # The first two of four replicas are the two replicas of the smaller run.
    fewer_counts = np.rint(fewer["p_fall"].to_numpy() * 2)
    more_counts = np.rint(more["p_fall"].to_numpy() * 4)
    assert (more_counts >= fewer_counts).all()
    assert (more_counts <= fewer_counts + 2).all()
    assert (more_counts != 2 * fewer_counts).any()


def test_risk_roundtrips_through_csv(tmp_path: Path) -> None:
    small = {"households": 200, "months": 24, "seed": 4}
    simulate(tmp_path, **small, file_format="csv", oracle_cutoffs=["2021-12"], oracle_replicas=2)
    risk = read_oracle(tmp_path)
    assert list(risk.columns) == list(RISK_COLUMNS)
    assert len(risk) == small["households"]
    assert risk["household_id"].map(type).eq(str).all()
    assert (risk["cutoff"] == "2021-12").all()
    assert risk["below_at_cutoff"].dtype == bool


def test_replica_streams_are_independent() -> None:
    observed = np.random.default_rng(5).random(4)
    first = replica_generator(5, 24263, 0).random(4)
    second = replica_generator(5, 24263, 1).random(4)
    assert not np.allclose(first, observed)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, replica_generator(5, 24263, 0).random(4))


@pytest.mark.parametrize(
    ("cutoffs", "options", "message"),
    [
        (["2021-06"], {}, "valid cut-offs are from 2021-12 to 2021-12"),
        (["2022-01"], {}, "valid cut-offs are from 2021-12 to 2021-12"),
        (["2021-12"], {"horizon_months": 13}, "none: simulate more months"),
        (["2021/12"], {}, "YYYY-MM"),
        (["2021-12", "2021-12"], {}, "listed twice"),
        (["2021-12"], {"oracle_replicas": 0}, "oracle_replicas"),
        (["2021-12"], {"horizon_months": 0}, "horizon_months"),
    ],
)
def test_invalid_oracle_options_rejected(
    tmp_path: Path, cutoffs: list[str], options: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(tmp_path, households=50, months=24, oracle_cutoffs=cutoffs, **options)
