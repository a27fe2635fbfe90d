"""The built-in household simulator: seeded, vectorised, with the true cause of every fall.

``simulate`` writes a dataset folder with one file per contract table, a
``dataset.yaml``, and ``truth/falls`` and ``truth/hardship`` with the true
cause of each fall below the monitoring line. With oracle cut-offs it also
writes ``truth/risk``, each household's true probability of a fall, which
``read_oracle`` reads. Its parameters live in ``parameters.yaml`` next to
this file.
"""

from warning.simulate.oracle import read_oracle
from warning.simulate.params import DEFAULT_PARAMETERS_PATH, Parameters
from warning.simulate.run import SimulationSummary, read_truth, simulate

__all__ = [
    "DEFAULT_PARAMETERS_PATH",
    "Parameters",
    "SimulationSummary",
    "read_oracle",
    "read_truth",
    "simulate",
]
