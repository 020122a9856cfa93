"""Evaluation: the protocols (how data is split), the scores, cross-validation and the reports of it.

``protocols`` defines ``filtered``, ``grouped`` and ``seed``; ``cross_validation`` scores a model under
one of them; ``metrics`` names the scores every run logs; ``reports`` draws the confusion matrix, the
class report, training curves and markdown tables.
"""

from genre.evaluation.cross_validation import (
    Evaluation,
    cross_validate_groups,
    evaluate,
    fit_model,
    routed_groups,
    score_fold,
)
from genre.evaluation.metrics import SCORES, score, track_accuracy
from genre.evaluation.protocols import (
    HELD_OUT,
    PROTOCOLS,
    ContiguousTrackFolds,
    TrackFolds,
    check_protocols,
    filtered_folds,
    filtered_split,
    grouped_folds,
    row_folds,
    search_folds,
    seed_split,
)
from genre.evaluation.reports import class_report_files, confusion_matrix_png, curves_png, markdown_table

__all__ = [
    "HELD_OUT",
    "PROTOCOLS",
    "ContiguousTrackFolds",
    "SCORES",
    "TrackFolds",
    "Evaluation",
    "check_protocols",
    "cross_validate_groups",
    "class_report_files",
    "confusion_matrix_png",
    "curves_png",
    "evaluate",
    "filtered_folds",
    "filtered_split",
    "fit_model",
    "grouped_folds",
    "markdown_table",
    "routed_groups",
    "row_folds",
    "search_folds",
    "score",
    "score_fold",
    "seed_split",
    "track_accuracy",
]
