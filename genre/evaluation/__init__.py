"""Evaluation: the protocols (how data is split), the scores, cross-validation and the reports of it.

``protocols`` defines ``seed`` and ``grouped``; ``cross_validation`` scores a model under one of them;
``metrics`` names the scores every run logs; ``reports`` draws the confusion matrix, the class report,
training curves and markdown tables.
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
    PROTOCOLS,
    TrackFolds,
    check_protocols,
    grouped_folds,
    row_folds,
    seed_split,
)
from genre.evaluation.reports import class_report_files, confusion_matrix_png, curves_png, markdown_table

__all__ = [
    "PROTOCOLS",
    "SCORES",
    "TrackFolds",
    "Evaluation",
    "check_protocols",
    "cross_validate_groups",
    "class_report_files",
    "confusion_matrix_png",
    "curves_png",
    "evaluate",
    "fit_model",
    "grouped_folds",
    "markdown_table",
    "routed_groups",
    "row_folds",
    "score",
    "score_fold",
    "seed_split",
    "track_accuracy",
]
