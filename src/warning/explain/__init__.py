"""Explanations: TreeSHAP contributions summed into cause groups and mapped to assistance measures.

Imports only the model bundle, so the service can explain without the training code.
"""

from warning.explain.contributions import (
    CauseContribution,
    Explanation,
    cause_contributions,
    cause_groups_of,
    explain,
    explain_frame,
)
from warning.explain.recovery import CauseRecovery, cause_recovery

__all__ = [
    "CauseContribution",
    "CauseRecovery",
    "Explanation",
    "cause_contributions",
    "cause_groups_of",
    "cause_recovery",
    "explain",
    "explain_frame",
]
