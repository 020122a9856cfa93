"""The served model as MLflow defines it: ``GenrePyfunc``, its signature, and how it is logged.

``mlflow models serve`` answers ``/invocations`` by calling ``predict`` of a ``mlflow.pyfunc`` model:
``load_context`` does the once-per-load work (the estimator from its joblib artifact, the warm-up) and
``predict`` only the per-request work, through ``GenreClassifier``. The package's code is logged beside
the model (``code_paths``), so it loads with the code it was trained with.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array, Map, Object, Property

import genre
from genre import settings
from genre.data.schema import WINDOW_SAMPLES, WINDOW_STEP, feature_columns
from genre.errors import GenreError
from genre.serving.classifier import (
    AUDIO_COLUMN,
    GenreClassifier,
    feature_sets_of,
    windowing,
)
from genre.serving.guard import install as install_guard
from genre.serving.guard import invalid_request

__all__ = ["GenrePyfunc", "log_serving_model", "signature"]


def signature(features: Sequence[str] = ("gtzan57",)) -> ModelSignature:
    """The served model's signature: the columns of its feature sets ``features`` as optional doubles
    and an optional ``audio`` string, by name, and two request parameters.

    Every input is optional because a request carries one form or the other; ``GenreClassifier`` checks
    that a form is complete. The output holds the genre, a map of each genre's probability, and for
    audio the number of windows, for a musicnn model the strongest tags and, asked for, the timeline.
    The parameters (``"params"`` of a JSON request; MLflow passes them to ``predict`` only because they
    are declared here):

    * ``timeline`` (bool, default false): audio answers hold each window's probabilities;
    * ``layout`` (``records`` or ``columns``; empty: the served model's ``layout`` setting, ``records``
      unless ``mlflow models serve`` was started with ``SERVING_MODEL_CONFIG='{"layout": "columns"}'``,
      which is how CSV and Parquet bodies, which carry no parameters, get the columns layout).
    """
    inputs = [ColSpec(DataType.double, name, required=False) for name in feature_columns(features)]
    inputs.append(ColSpec(DataType.string, AUDIO_COLUMN, required=False))
    window = Object(
        [
            Property("start_s", DataType.double),
            Property("end_s", DataType.double),
            Property("probabilities", Map(DataType.double)),
        ]
    )
    outputs = [
        ColSpec(DataType.string, "genre"),
        ColSpec(Map(DataType.double), "probabilities"),
        ColSpec(DataType.long, "windows", required=False),
        ColSpec(DataType.boolean, "partial", required=False),
        ColSpec(Map(DataType.double), "tags", required=False),
        ColSpec(Array(window), "timeline", required=False),
    ]
    params = ParamSchema(
        [ParamSpec("timeline", DataType.boolean, False), ParamSpec("layout", DataType.string, "")]
    )
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


class GenrePyfunc(mlflow.pyfunc.PythonModel):
    """``GenreClassifier`` as an MLflow pyfunc model: what ``mlflow models serve`` loads and calls.

    The artifact ``estimator`` is the joblib file of the fitted pipeline (and for a model of musicnn's
    features, ``musicnn_weights`` the converted weights, ISC-licensed); ``model_config`` holds the
    audio windowing (``window_samples``, ``window_step``), the feature sets audio becomes
    (``features``) and the default ``layout`` of answers.
    ``RequestError`` becomes an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, which the scoring
    server answers with HTTP 400: the message, and the error's ``kind``, ``subject`` and ``detail`` as
    the fields ``genre_kind``, ``genre_subject`` and ``genre_detail``. Inside ``mlflow models serve``,
    ``load_context`` also puts ``genre.serving.guard`` in front of the scoring server, which refuses
    bodies over the row and byte limits the same way before MLflow parses them.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load the estimator (compiled by ``GenreClassifier``) and warm up the audio extractor, once per
        process. Inside the scoring server, install the guard against over-limit requests and warm up on
        a thread of its own: feature rows are answered as soon as the model is loaded, while the
        extractor's numba functions load (about 2 s; 10-20 s when their cache is new, as in a model's
        first server), and an audio request arriving meanwhile waits for what it needs. Anywhere else
        (``genre predict``, the web page, Spark) the warm-up is done before this returns."""
        config = context.model_config or {}
        if "musicnn_weights" in context.artifacts:
            from genre.features import musicnn_weights

            musicnn_weights.use_weights_file(context.artifacts["musicnn_weights"])
        self.classifier = GenreClassifier(
            joblib.load(context.artifacts["estimator"]),
            window_samples=int(config.get("window_samples", WINDOW_SAMPLES)),
            window_step=int(config.get("window_step", WINDOW_STEP)),
            features=config.get("features"),
        )
        self.layout = str(config.get("layout") or "records")
        if install_guard():  # in the scoring server (the guard's own test)
            threading.Thread(target=self.classifier.warm_up, name="genre-warm-up", daemon=True).start()
        else:
            self.classifier.warm_up()

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame | dict[str, Any]:
        """Answer one request; see ``GenreClassifier.predict`` and the signature's parameters."""
        params = params or {}
        try:
            return self.classifier.predict(
                model_input, timeline=bool(params.get("timeline")), layout=params.get("layout") or self.layout
            )
        except GenreError as exc:
            # The scoring server answers with the exception's JSON, these fields included: clients read
            # what went wrong from them rather than from the message, which MLflow rewrites.
            raise invalid_request(exc) from None


def log_serving_model(
    estimator: Any,
    *,
    windowed: bool,
    input_example: pd.DataFrame,
    name: str = "serving_model",
    registered_model_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelInfo:
    """Log ``estimator`` as a ``GenrePyfunc`` model in the active run; register it when a name is given.

    Parameters
    ----------
    estimator : fitted classifier
        A pipeline from ``make_model``, fitted on the columns of one or more feature sets.
    windowed : bool
        Whether it was trained on 3-s windows (True) or on whole clips; sets the audio windowing.
    input_example : pandas.DataFrame
        A few feature rows, stored with the model and checked against it when logged.
    name : str, default "serving_model"
        The model's name within the run.
    registered_model_name : str, optional
        Register the logged model as a new version of this registered model.
    tags : mapping, optional
        Tags of the logged model.

    Returns
    -------
    mlflow.models.model.ModelInfo
        ``registered_model_version`` is set when registered.
    """
    features = feature_sets_of(estimator)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estimator.joblib"
        joblib.dump(estimator, path)
        artifacts = {"estimator": str(path)}
        if "musicnn" in features:  # the server computes musicnn from audio without the wheel
            from genre.features import musicnn_weights

            artifacts["musicnn_weights"] = str(musicnn_weights.weights_file())
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=GenrePyfunc(),
            artifacts=artifacts,
            model_config={**windowing(windowed), "features": list(features), "layout": "records"},
            code_paths=[str(Path(genre.__file__).parent)],
            pip_requirements=settings.SERVING_REQUIREMENTS,
            signature=signature(features),
            input_example=input_example.loc[:, feature_columns(features)],
            registered_model_name=registered_model_name,
            tags=dict(tags or {}),
        )
