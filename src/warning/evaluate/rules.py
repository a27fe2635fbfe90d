"""The rule baseline: the department rules that flag households for a visit without a model.

The rules are data: the income multiplier is the ``rule_income_multiplier``
setting and the named risks live in ``features/rules.yaml`` (see the comments
there). ``rule_frame`` evaluates them point-in-time at cut-offs, from data
dated on or before each cut-off only, like the features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from warning.contract import TABLES
from warning.panel import SPELL_TABLES, Panel, SeriesSpec, month_start

logger = logging.getLogger(__name__)

RULE_TABLES = tuple(name for name in ("medical_claims", "events", "assistance") if name in TABLES)
INCOME_RULE = "low_income"
FLAG_COLUMN = "rule_flag"
INCOME_TO_LINE_COLUMN = "rule_income_to_line"
# Rank of a household in the rule's list: flagged ones first, then by income
# over the line, lowest first. Flagged households get this bonus on top of
# minus their income ratio, far more than any income ratio.
_FLAG_BONUS = 1e6


@dataclass(frozen=True)
class Rule:
    """A named risk: the household's sum of ``series`` over the window is at least ``at_least``."""

    name: str
    description: str
    series: SeriesSpec
    at_least: float


@dataclass(frozen=True)
class RuleSet:
    """The income multiplier and the named-risk rules, with the window they look back over."""

    income_multiplier: float
    window_months: int
    rules: tuple[Rule, ...]

    @property
    def flag_names(self) -> list[str]:
        return [INCOME_RULE, *(rule.name for rule in self.rules)]


def _parse_rule(raw: dict, path: Path, position: int) -> Rule:
    name = raw.get("name")
    if not name:
        raise ValueError(f"{path}: rule {position} has no name: {raw}")
    series = raw.get("series") or {}
    table = series.get("table")
    if table not in RULE_TABLES:
        raise ValueError(
            f"{path}: rule {name!r} reads table {table!r}; rules read one of {list(RULE_TABLES)}"
        )
    columns = TABLES[table].column_names
    value = series.get("value")
    if value != "rows" and value not in columns:
        raise ValueError(
            f"{path}: rule {name!r} has value {value!r}; use 'rows' or a column of {table}: {columns}"
        )
    where = {}
    for column, allowed in (series.get("where") or {}).items():
        if column not in columns:
            raise ValueError(f"{path}: rule {name!r} filters on {column!r}, which table {table!r} lacks")
        where[column] = tuple(str(item) for item in allowed)
    if "at_least" not in raw:
        raise ValueError(f"{path}: rule {name!r} has no at_least threshold")
    return Rule(
        name=str(name),
        description=str(raw.get("description", "")),
        series=SeriesSpec(table=table, value=value, where=tuple(sorted(where.items()))),
        at_least=float(raw["at_least"]),
    )


def load_rules(path: Path, income_multiplier: float) -> RuleSet:
    """Read the named-risk rules from ``path`` and combine them with the income multiplier."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"rules file {path} not found; set POVWARN_RULES_PATH to the department rules YAML"
        )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    window = int(raw.get("window_months", 12))
    if window < 1:
        raise ValueError(f"{path}: window_months must be at least 1, got {window}")
    if income_multiplier <= 0:
        raise ValueError(f"the rule income multiplier must be positive, got {income_multiplier}")
    rules = tuple(_parse_rule(entry, path, position) for position, entry in enumerate(raw.get("rules") or []))
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names) or INCOME_RULE in names:
        raise ValueError(f"{path}: rule names must be unique and differ from {INCOME_RULE!r}, got {names}")
    return RuleSet(income_multiplier=income_multiplier, window_months=window, rules=rules)


def _window_sum(values: np.ndarray, cutoffs: np.ndarray, window: int) -> np.ndarray:
    """Sum each row over the ``window`` periods ending at each cut-off; unobserved periods count as 0."""
    padded = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(np.nan_to_num(values, nan=0.0), axis=1, out=padded[:, 1:])
    stop = cutoffs + 1
    start = np.maximum(stop - window, 0)
    return padded[:, stop] - padded[:, start]


def rule_frame(panel: Panel, cutoffs: np.ndarray, rules: RuleSet) -> pd.DataFrame:
    """Return one row per household and cut-off with each rule's flag, the combined flag and income over line.

    Columns: household_id, cutoff, one boolean ``rule_<name>`` per rule
    (``rule_low_income`` for the income test), ``rule_flag`` (any of them),
    ``rule_income_to_line`` (trailing income per person over the line, NaN when
    unknown) and ``rule_score`` (the rule's ranking, higher first). Rows of
    households not observed at a cut-off are left out, as in ``build_features``.
    """
    cutoffs = np.asarray(cutoffs, dtype=np.int64)
    income = panel.income_per_person_12m()[:, cutoffs]
    ratio = income / panel.lines[:, cutoffs]
    flags = {INCOME_RULE: np.nan_to_num(ratio, nan=np.inf) < rules.income_multiplier}
    window = panel.periods_for_months(rules.window_months)
    for rule in rules.rules:
        if rule.series.table in SPELL_TABLES or rule.series.table not in panel.store.tables:
            flags[rule.name] = np.zeros(ratio.shape, dtype=bool)
            continue
        totals = _window_sum(panel.series(rule.series), cutoffs, window)
        flags[rule.name] = totals >= rule.at_least
    flagged = np.logical_or.reduce(list(flags.values()))
    score = np.where(flagged, _FLAG_BONUS, 0.0) - np.nan_to_num(ratio, nan=_FLAG_BONUS / 10)

    n_households = len(panel.household_ids)
    frame = pd.DataFrame(
        {
            "household_id": np.tile(panel.household_ids, len(cutoffs)),
            "cutoff": np.repeat(month_start(panel.cutoff_months(cutoffs)).to_numpy(), n_households),
            **{f"rule_{name}": values.ravel(order="F") for name, values in flags.items()},
            FLAG_COLUMN: flagged.ravel(order="F"),
            INCOME_TO_LINE_COLUMN: ratio.ravel(order="F"),
            "rule_score": score.ravel(order="F"),
        }
    )
    observed = panel.observed[:, cutoffs].ravel(order="F")
    frame = frame.loc[observed].reset_index(drop=True)
    logger.info(
        "Rule baseline at %d cut-offs: %d of %d household-cut-offs flagged (%s)",
        len(cutoffs),
        int(frame[FLAG_COLUMN].sum()),
        len(frame),
        ", ".join(f"{name} {int(frame[f'rule_{name}'].sum())}" for name in flags),
    )
    return frame
