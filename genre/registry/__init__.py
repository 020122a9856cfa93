"""The Model Registry: a training run's model registered for serving with a model card, behind aliases,
and serving models loaded back (``genre predict``, the web page, Spark scoring)."""

from genre.registry.loading import ANSWER_COLUMNS, SongAnswer, load_classifier, predict_files
from genre.registry.registration import MODEL_CARD_TEMPLATE, Registration, best_run, promote, register

__all__ = [
    "ANSWER_COLUMNS",
    "MODEL_CARD_TEMPLATE",
    "Registration",
    "SongAnswer",
    "best_run",
    "load_classifier",
    "predict_files",
    "promote",
    "register",
]
