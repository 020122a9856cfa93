"""Serving models loaded from the registry, a model URI or a training run; ``genre predict`` on files.

``load_classifier`` is how the web page, Spark scoring and ``genre predict`` get the ``GenreClassifier``
the server runs, so a local answer is the server's answer. ``predict_files`` answers a person's songs:
decoded on every core, an unreadable file reported by name and the others still answered.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from joblib import Parallel, delayed
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genre import settings
from genre.errors import RegistryError
from genre.serving import GenreClassifier, GenrePyfunc, windowing
from genre.tracking import configure_tracking, logged_model_uri
from genre.workers import process_backend

__all__ = ["ANSWER_COLUMNS", "SongAnswer", "load_classifier", "predict_files"]


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


@dataclass(frozen=True)
class SongAnswer:
    """What ``genre predict`` says of one file: its genre, the three most probable genres with their
    probabilities, the share of analysed windows that agree with the genre, or why it has no answer."""

    path: str
    genre: str | None = None
    top: tuple[tuple[str, float], ...] = ()
    agreement: float | None = None
    windows: int = 0
    seconds: float | None = None
    error: str | None = None

    def row(self) -> dict[str, object]:
        """A flat table row: ``path, genre, probability, second, second_probability, third, ...``."""
        row: dict[str, object] = {"path": self.path, "genre": self.genre}
        for (genre, probability), (name, key) in zip(self.top, _TOP_COLUMNS, strict=False):
            if name != "genre":
                row[name] = genre
            row[key] = round(probability, 4)
        row.update(
            agreement=None if self.agreement is None else round(self.agreement, 4),
            windows=self.windows,
            seconds=None if self.seconds is None else round(self.seconds, 2),
            error=self.error,
        )
        return row


_TOP_COLUMNS = (("genre", "probability"), ("second", "second_probability"), ("third", "third_probability"))
#: The columns of ``SongAnswer.row``, in order, for a table that also holds failed files.
ANSWER_COLUMNS = (
    "path", *(c for pair in _TOP_COLUMNS for c in pair), "agreement", "windows", "seconds", "error",
)  # fmt: skip


def predict_files(
    paths: Sequence[str | Path],
    *,
    full: bool = False,
    jobs: int | None = None,
    **source: str | None,
) -> Iterator[SongAnswer]:
    """Yield a ``SongAnswer`` per audio file, in order; an unreadable file gets its error and the others
    are still answered.

    Files are decoded and cut into windows (a long song: ``EXCERPT_SECONDS`` of windows spread over it,
    every window with ``full``) in ``jobs`` worker processes (default ``settings.default_jobs()``), and
    answered here, so the model is loaded once. ``source`` is passed to ``load_classifier``.
    """
    classifier = load_classifier(**source)
    # A loaded model runs the code logged with it (MLflow puts its copy of genre first on sys.path), so
    # the worker processes cut audio with that copy's function too.
    cut = getattr(sys.modules[type(classifier).__module__], "file_windows", None)
    if cut is None:
        raise RegistryError(
            "this model version was registered by an earlier genre that cannot answer files in batches; "
            "register it again (genre register --run-id <its training run>)"
        )
    jobs = settings.default_jobs() if jobs is None else jobs
    options = {**classifier.window_options, "full": full}
    names = list(map(str, paths))
    if jobs > 1 and len(names) > 1:
        cuts = Parallel(n_jobs=jobs, backend=process_backend(), return_as="generator")(
            delayed(cut)(name, threads=1, **options) for name in names
        )
    else:  # one song: its windows on every core instead
        cuts = (cut(name, threads=jobs, **options) for name in names)
    for name, found in zip(names, cuts, strict=True):
        if isinstance(found, str):
            yield SongAnswer(name, error=found)
            continue
        answer = classifier.answer_windows([found]).iloc[0]
        top = sorted(answer["probabilities"].items(), key=lambda item: -item[1])[:3]
        yield SongAnswer(
            name,
            genre=answer["genre"],
            top=tuple((genre, float(p)) for genre, p in top),
            agreement=float(answer["agreement"]),
            windows=int(answer["windows"]),
            seconds=found.seconds,
        )
