"""Compute catalogue features point-in-time at cut-off periods.

A feature at cut-off ``c`` reads only periods ``<= c`` of its series. Every
aggregation below works on all cut-offs at once through cumulative sums over
the period axis, so the cost is one pass per series, not one per cut-off.
"""

from __future__ import annotations

import ast
import logging
import operator

import numpy as np
import pandas as pd

from warning.features.catalogue import Catalogue, FeatureSpec
from warning.panel import Panel, month_number, month_start

logger = logging.getLogger(__name__)

KEY_COLUMNS = ["household_id", "cutoff", "region_code", "urban_rural"]


def _window_totals(values: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Sum each row over the ``window`` periods ending at each end period (inclusive)."""
    padded = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=padded[:, 1:])
    stop = np.maximum(ends + 1, 0)
    start = np.maximum(stop - window, 0)
    return padded[:, stop] - padded[:, start]


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        result = numerator / denominator
    result[~np.isfinite(result)] = np.nan
    return result


class _Aggregator:
    """Aggregations of one panel at fixed cut-offs."""

    def __init__(self, panel: Panel, cutoffs: np.ndarray):
        self.panel = panel
        self.cutoffs = cutoffs
        self.observed = panel.observed.astype(np.float64)
        self._observed_counts: dict[tuple[int, bytes], np.ndarray] = {}

    def observed_count(self, window: int, ends: np.ndarray) -> np.ndarray:
        key = (window, ends.tobytes())
        if key not in self._observed_counts:
            self._observed_counts[key] = _window_totals(self.observed, ends, window)
        return self._observed_counts[key]

    def window_sum_and_count(
        self, values: np.ndarray, window: int, ends: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        ends = self.cutoffs if ends is None else ends
        counts = self.observed_count(window, ends)
        totals = _window_totals(np.nan_to_num(values, nan=0.0), ends, window)
        totals[counts == 0] = np.nan
        return totals, counts

    def mean(self, values: np.ndarray, window: int, ends: np.ndarray | None = None) -> np.ndarray:
        totals, counts = self.window_sum_and_count(values, window, ends)
        return _divide(totals, counts)

    def std(self, values: np.ndarray, window: int) -> np.ndarray:
        mean = self.mean(values, window)
        squares = self.mean(np.square(values), window)
        spread = np.sqrt(np.maximum(squares - np.square(mean), 0.0))
        spread[self.observed_count(window, self.cutoffs) < 2] = np.nan
        return spread

    def max(self, values: np.ndarray, window: int) -> np.ndarray:
        result = np.full((values.shape[0], len(self.cutoffs)), -np.inf)
        for offset in range(window):
            columns = self.cutoffs - offset
            valid = columns >= 0
            if not valid.any():
                break
            taken = values[:, np.maximum(columns, 0)]
            taken[:, ~valid] = -np.inf
            result = np.fmax(result, np.nan_to_num(taken, nan=-np.inf))
        result[np.isinf(result)] = np.nan
        return result

    def months_since_nonzero(self, values: np.ndarray, window: int) -> np.ndarray:
        positions = np.where(np.nan_to_num(values) != 0, np.arange(values.shape[1]), -1)
        latest = np.maximum.accumulate(positions, axis=1)[:, self.cutoffs]
        gap = (self.cutoffs - latest).astype(np.float64)
        gap[(latest < 0) | (gap >= window)] = -1.0
        return gap * np.where(gap >= 0, self.panel.period_months, 1)

    def drop(self, values: np.ndarray, window: int, recent: int) -> np.ndarray:
        """Return 1 - (mean of the last ``recent`` periods / mean of the rest of the window)."""
        recent_mean = self.mean(values, recent)
        earlier_mean = self.mean(values, window - recent, ends=self.cutoffs - recent)
        earlier_mean[earlier_mean <= 0] = np.nan
        return 1.0 - _divide(recent_mean, earlier_mean)

    def loss_since_event(self, values: np.ndarray, events: np.ndarray, window: int) -> np.ndarray:
        """Return how far mean income fell after the latest event in the window.

        For a household whose latest event in the ``window`` periods up to the
        cut-off is at period ``e``, the result is the mean of ``values`` over the
        ``window`` periods before ``e`` minus its mean from ``e`` to the cut-off.
        Without such an event it is 0: no shock of that kind, no loss from it.
        """
        positions = np.where(np.nan_to_num(events) != 0, np.arange(events.shape[1]), -1)
        latest = np.maximum.accumulate(positions, axis=1)[:, self.cutoffs]
        has_event = (latest >= 0) & (self.cutoffs - latest < window)
        event = np.where(has_event, latest, 0)

        padded = np.zeros((values.shape[0], values.shape[1] + 1))
        np.cumsum(np.nan_to_num(values, nan=0.0), axis=1, out=padded[:, 1:])
        observed = np.zeros_like(padded)
        np.cumsum(self.observed, axis=1, out=observed[:, 1:])

        def window_mean(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
            total = np.take_along_axis(padded, stop, axis=1) - np.take_along_axis(padded, start, axis=1)
            count = np.take_along_axis(observed, stop, axis=1) - np.take_along_axis(observed, start, axis=1)
            return _divide(total, count)

        cutoff_stop = np.broadcast_to(self.cutoffs + 1, event.shape)
        after = window_mean(event, cutoff_stop)
        before = window_mean(np.maximum(event - window, 0), event)
        loss = np.where(has_event, before - after, 0.0)
        # An event in the first period has no "before"; its loss is unknown.
        loss[has_event & np.isnan(before)] = np.nan
        return loss

    def annualised_per_person(self, values: np.ndarray) -> np.ndarray:
        return values * self.panel.periods_per_year / self.panel.members[:, None]


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate_expression(expression: str, frame: pd.DataFrame) -> np.ndarray:
    """Evaluate arithmetic and comparisons over a frame's columns, as float.

    Only column names, numbers, strings, + - * /, comparisons and brackets are
    allowed, so a catalogue entry cannot run code. It is also much faster than
    ``DataFrame.eval`` on the one-household frames of a predict request.
    """

    def value(node: ast.AST) -> object:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Name):
            if node.id not in frame.columns:
                raise ValueError(f"expression {expression!r} names {node.id!r}, which is not a households column")
            column = frame[node.id]
            return column.to_numpy(dtype=np.float64) if column.dtype.kind in "fiub" else column.astype(object).to_numpy()
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _OPERATORS:
            return _OPERATORS[type(node.ops[0])](value(node.left), value(node.comparators[0]))
        raise ValueError(f"expression {expression!r} uses {type(node).__name__}, which is not allowed")

    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.asarray(value(ast.parse(expression, mode="eval")), dtype=np.float64)
    return np.broadcast_to(result, (len(frame),)).copy()


def _without_recent(events: np.ndarray, competing: list[np.ndarray], periods: int) -> np.ndarray:
    """Return ``events`` with the periods cleared that follow a competing event within ``periods``.

    Only the competing event's period and the ``periods`` before each event are
    read, never later ones, so the result stays point-in-time.
    """
    happened = np.zeros(events.shape)
    for values in competing:
        happened += np.nan_to_num(values, nan=0.0) != 0
    counts = np.zeros((events.shape[0], events.shape[1] + 1))
    np.cumsum(happened, axis=1, out=counts[:, 1:])
    stop = np.arange(1, events.shape[1] + 1)
    start = np.maximum(stop - 1 - periods, 0)
    recent = (counts[:, stop] - counts[:, start]) > 0
    return np.where(recent, 0.0, events)


def _feature_values(feature: FeatureSpec, catalogue: Catalogue, aggregator: _Aggregator) -> np.ndarray:
    panel = aggregator.panel
    cutoffs = aggregator.cutoffs
    if feature.aggregation == "attribute":
        households = panel.households
        if feature.column is not None:
            column = households[feature.column].to_numpy(dtype=np.float64)
        else:
            column = evaluate_expression(feature.expression, households)
        return np.repeat(column[:, None], len(cutoffs), axis=1)

    values = panel.series(catalogue.series[feature.series])
    window = panel.periods_for_months(feature.window)
    kind = feature.aggregation
    if kind == "sum":
        result = aggregator.window_sum_and_count(values, window)[0]
    elif kind == "mean":
        result = aggregator.mean(values, window)
    elif kind == "std":
        result = aggregator.std(values, window)
    elif kind == "cv":
        result = _divide(aggregator.std(values, window), np.abs(aggregator.mean(values, window)))
    elif kind == "max":
        result = aggregator.max(values, window)
    elif kind == "count_nonzero":
        nonzero = np.where(np.isnan(values), np.nan, (values != 0).astype(np.float64))
        result = aggregator.window_sum_and_count(nonzero, window)[0] * panel.period_months
    elif kind == "last":
        result = values[:, cutoffs]
    elif kind == "drop":
        recent = panel.periods_for_months(feature.recent)
        if recent >= window:
            return np.full((len(panel.household_ids), len(cutoffs)), np.nan)
        result = aggregator.drop(values, window, recent)
    elif kind == "months_since_nonzero":
        result = aggregator.months_since_nonzero(values, window)
    elif kind == "below_line":
        below = aggregator.annualised_per_person(values) < panel.lines
        below = np.where(np.isnan(values), np.nan, below.astype(np.float64))
        result = aggregator.window_sum_and_count(below, window)[0] * panel.period_months
    elif kind == "loss_since_event":
        events = panel.series(catalogue.series[feature.event_series])
        if feature.excluding:
            events = _without_recent(events, [panel.series(catalogue.series[name]) for name in feature.excluding],
                                     panel.periods_for_months(feature.excluding_months))
        result = aggregator.annualised_per_person(aggregator.loss_since_event(values, events, window))
    elif kind == "to_line":
        mean = aggregator.annualised_per_person(aggregator.mean(values, window))
        result = mean / panel.lines[:, cutoffs]
    else:
        raise ValueError(f"feature {feature.name!r} has unknown aggregation {kind!r}")

    if feature.divide_by is not None:
        denominator_values = panel.series(catalogue.series[feature.divide_by])
        if kind == "sum":
            denominator = aggregator.window_sum_and_count(denominator_values, window)[0]
        else:
            denominator = aggregator.mean(denominator_values, window)
        denominator[denominator <= 0] = np.nan
        result = _divide(result, denominator)
    if feature.per_person:
        result = result / panel.members[:, None]
    return result


def training_cutoffs(panel: Panel, horizon_months: int, step_months: int, min_history_months: int) -> np.ndarray:
    """Return the cut-off periods whose whole horizon lies inside the grid."""
    first = panel.periods_for_months(min_history_months) - 1
    last = panel.n_periods - 1 - panel.periods_for_months(horizon_months)
    step = panel.periods_for_months(step_months)
    if last < first:
        raise ValueError(
            f"the data covers {panel.n_periods} periods, too few for {min_history_months} months of history "
            f"plus a {horizon_months}-month horizon"
        )
    # Count back from the latest cut-off so that it is always included.
    return np.arange(last, first - 1, -step)[::-1]


def build_features(panel: Panel, catalogue: Catalogue, cutoffs: np.ndarray) -> pd.DataFrame:
    """Return one row per household and cut-off with every catalogue feature.

    Rows of households not observed at a cut-off are left out. ``cutoff`` is
    the first day of the cut-off's last month, so data dated in that month or
    earlier is what the row may use.
    """
    cutoffs = np.asarray(cutoffs, dtype=np.int64)
    if cutoffs.size and (cutoffs.min() < 0 or cutoffs.max() >= panel.n_periods):
        raise ValueError(f"cut-off periods must lie in 0..{panel.n_periods - 1}, got {cutoffs.tolist()}")
    aggregator = _Aggregator(panel, cutoffs)
    n_households = len(panel.household_ids)
    columns: dict[str, np.ndarray] = {}
    for feature in catalogue.features:
        columns[feature.name] = _feature_values(feature, catalogue, aggregator).astype(np.float32).ravel(order="F")

    cutoff_months = month_start(panel.cutoff_months(cutoffs))
    frame = pd.DataFrame(
        {
            "household_id": np.tile(panel.household_ids, len(cutoffs)),
            "cutoff": np.repeat(cutoff_months.to_numpy(), n_households),
            "region_code": np.tile(panel.households["region_code"].to_numpy(), len(cutoffs)),
            "urban_rural": np.tile(panel.households["urban_rural"].to_numpy(), len(cutoffs)),
            **columns,
        }
    )
    observed = panel.observed[:, cutoffs].ravel(order="F")
    frame = frame.loc[observed].reset_index(drop=True)
    logger.debug(
        "Computed %d features for %d household-cut-offs at %d cut-offs (%s to %s)",
        len(catalogue.features),
        len(frame),
        len(cutoffs),
        cutoff_months.min().strftime("%Y-%m") if len(cutoffs) else "-",
        cutoff_months.max().strftime("%Y-%m") if len(cutoffs) else "-",
    )
    return frame


def cutoff_periods_of(panel: Panel, cutoff_months: pd.Series) -> np.ndarray:
    """Map cut-off dates back to grid periods."""
    return panel.period_of_month(month_number(cutoff_months))
