"""Serving: the classifier behind ``mlflow models serve`` and ``genre predict``, as an MLflow pyfunc.

``classifier`` answers requests (feature rows or base64 audio) with any fitted genre model; ``pyfunc``
is that classifier as MLflow's ``PythonModel``, with its signature and the way it is logged; ``guard``
refuses requests over the limits inside ``mlflow models serve`` before MLflow parses them; ``memory``
has glibc hand back what a large request's body took once it is answered.
"""

from genre.serving.classifier import (
    AUDIO_COLUMN,
    CLIP_WINDOW_SAMPLES,
    EXCERPT_SECONDS,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_SECONDS,
    MAX_REQUEST_BYTES,
    MAX_ROWS,
    GenreClassifier,
    Windows,
    audio_windows,
    encode_audio,
    windowing,
)
from genre.serving.pyfunc import GenrePyfunc, log_serving_model, signature

__all__ = [
    "AUDIO_COLUMN",
    "CLIP_WINDOW_SAMPLES",
    "EXCERPT_SECONDS",
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "MAX_REQUEST_BYTES",
    "MAX_ROWS",
    "GenreClassifier",
    "GenrePyfunc",
    "Windows",
    "audio_windows",
    "encode_audio",
    "log_serving_model",
    "signature",
    "windowing",
]
