"""Population stability index (PSI) of one variable between a reference sample and a current sample.

``PSI = sum over bins of (current share - reference share) * ln(current share / reference share)``.

Bins are quantiles of the reference sample, right-closed, with open outer
bins, so every finite value of the current sample falls in one. Missing values
(NaN) form a bin of their own, so a rise in missing values counts as drift.
A bin that is empty in one sample gets the share ``epsilon`` instead of 0,
which keeps the logarithm finite. Shares are not renormalised after that, so
the result differs from the exact formula by about ``epsilon`` per empty bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StabilityIndex:
    """The PSI of one variable and the bins it was computed on."""

    psi: float
    # Interior bin edges from the reference sample; bin i contains the values in (edge[i-1], edge[i]].
    edges: np.ndarray
    # Shares per bin, finite bins first and the missing-value bin last, before epsilon.
    reference_shares: np.ndarray
    current_shares: np.ndarray


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Return the distinct interior edges of ``bins`` quantile bins of the non-missing reference values.

    Repeated quantiles (a feature with few distinct values) merge bins, so
    fewer than ``bins`` bins may remain. Without non-missing values there are
    no edges and one finite bin.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    values = np.asarray(reference, dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size == 0:
        return np.empty(0)
    probabilities = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    # Edges are observed values (the inverse of the empirical CDF), never
    # interpolations between them, so a 0/1 feature gets the edges 0 and 1.
    return np.unique(np.quantile(present, probabilities, method="inverted_cdf"))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Return the share of ``values`` in each bin: ``len(edges) + 1`` finite bins, then the missing-value bin."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot compute bin shares of an empty sample")
    missing = np.isnan(values)
    # side="left" puts a value equal to an edge in the bin below it: bins are right-closed.
    positions = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(positions, minlength=edges.size + 1).astype(np.float64)
    return np.append(counts, float(missing.sum())) / values.size


def population_stability(
    reference: np.ndarray, current: np.ndarray, bins: int = 10, epsilon: float = 1e-4
) -> StabilityIndex:
    """Return the PSI of ``current`` against ``reference`` on quantile bins of ``reference``."""
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    edges = quantile_edges(reference, bins)
    expected = bin_shares(reference, edges)
    actual = bin_shares(current, edges)
    floored_expected = np.maximum(expected, epsilon)
    floored_actual = np.maximum(actual, epsilon)
    psi = float(np.sum((floored_actual - floored_expected) * np.log(floored_actual / floored_expected)))
    return StabilityIndex(psi=psi, edges=edges, reference_shares=expected, current_shares=actual)
