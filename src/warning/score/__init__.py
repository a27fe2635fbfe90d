"""Batch scoring of households into the score database, and the scoring shared with the API."""

from warning.score.batch import ScoreSummary, score
from warning.score.compute import SCORE_COLUMNS, assign_bands, score_panel
from warning.score.database import SCORES, ScoreRecord, create_tables, display_url, make_engine, write_scores

__all__ = [
    "SCORES",
    "SCORE_COLUMNS",
    "ScoreRecord",
    "ScoreSummary",
    "assign_bands",
    "create_tables",
    "display_url",
    "make_engine",
    "score",
    "score_panel",
    "write_scores",
]
