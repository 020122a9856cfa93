"""Serving models loaded from the registry, a model URI or a training run; ``genre predict`` on files.

``load_classifier`` is how the web page, Spark scoring and ``genre predict`` get the ``GenreClassifier``
the server runs, so a local answer is the server's answer. In ``predict_files`` an unreadable file is
reported by name and the others are still answered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genre import settings
from genre.errors import GenreError, RegistryError
from genre.serving import GenreClassifier, GenrePyfunc, windowing
from genre.tracking import configure_tracking, logged_model_uri

__all__ = ["load_classifier", "predict_files"]


def load_classifier(
    *,
    model: str | None = None,
    run_id: str | None = None,
    name: str = settings.MODEL_NAME,
    alias: str = settings.CHAMPION,
) -> GenreClassifier:
    """The classifier behind a serving model URI (``model``), a training run's model, or ``name@alias``.

    Raises
    ------
    RegistryError
        The model, run or alias does not exist, or the URI is not a genre serving model.
    """
    configure_tracking()
    if run_id is not None:
        try:
            run = MlflowClient().get_run(run_id)
            estimator = mlflow.sklearn.load_model(logged_model_uri(run))
        except (MlflowException, OSError) as exc:
            raise RegistryError(f"run {run_id}: no loadable model ({str(exc).splitlines()[0]})") from None
        windowed = run.data.params.get("data.windowed", "True") == "True"
        return GenreClassifier(estimator, **windowing(windowed))
    uri = model or f"models:/{name}@{alias}"
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"cannot load {uri}: {str(exc).splitlines()[0]}") from None
    try:
        python_model = loaded.unwrap_python_model()
    except MlflowException:
        python_model = None
    if not isinstance(python_model, GenrePyfunc):
        raise RegistryError(f"{uri} is not a genre serving model (register one with `genre register`)")
    return python_model.classifier


def predict_files(
    paths: Sequence[str | Path], **source: str | None
) -> Iterator[tuple[str, dict[str, object] | str]]:
    """Yield ``(path, answer)`` per file: the answer row as a dict, or the error message for that file.

    ``source`` is passed to ``load_classifier``.
    """
    classifier = load_classifier(**source)
    for path in map(str, paths):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            yield path, f"cannot read the file ({exc.strerror})"
            continue
        try:
            answer = classifier.predict_audio([data], names=[path])
        except GenreError as exc:
            yield path, exc.detail
            continue
        yield path, answer.iloc[0].to_dict()
