"""Evaluation: the protocols (how data is split), the scores, cross-validation and the reports of it.

``protocols`` defines ``seed`` and ``grouped``; ``cross_validation`` scores a model under one of them;
``metrics`` names the scores every run logs; ``reports`` draws the confusion matrix, the class report,
training curves and markdown tables.
"""

from genre.evaluation.cross_validation import Evaluation, evaluate, fit_model, grouped_validation
from genre.evaluation.metrics import SCORES, score, track_accuracy
from genre.evaluation.protocols import PROTOCOLS, check_protocols, grouped_folds, row_folds, seed_split
from genre.evaluation.reports import class_report_files, confusion_matrix_png, curves_png, markdown_table

__all__ = [
    "PROTOCOLS",
    "SCORES",
    "Evaluation",
    "check_protocols",
    "class_report_files",
    "confusion_matrix_png",
    "curves_png",
    "evaluate",
    "fit_model",
    "grouped_folds",
    "grouped_validation",
    "markdown_table",
    "row_folds",
    "score",
    "seed_split",
    "track_accuracy",
]
