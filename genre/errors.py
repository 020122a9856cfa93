"""The project's exceptions, with what went wrong as data.

One base class, so the CLI can turn every expected failure into a one-line message and an exit code
instead of a traceback, and callers can catch ``GenreError`` without knowing which layer raised it.

Every error carries a ``kind`` (a short machine-readable reason such as ``"too_short"``), the ``subject``
it is about (a file, a request row) when there is one, and the ``detail`` (the message without the
subject). Consumers read these attributes -- batch extraction's failures report, the web page's
headline, the served model's HTTP 400 body -- and never parse the message text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

__all__ = [
    "AudioError",
    "BatchError",
    "ConfigError",
    "DataError",
    "GenreError",
    "RegistryError",
    "RequestError",
    "TrackingError",
    "causes",
]


class GenreError(Exception):
    """Base class of every error this package raises on purpose.

    Parameters
    ----------
    detail : str
        What is wrong, in words a user can act on.
    kind : str, optional
        The machine-readable reason; each class has its default.
    subject : str, optional
        What the error is about (a path, ``"row 3"``); the message is then ``"<subject>: <detail>"``.
    """

    default_kind: ClassVar[str] = "error"

    def __init__(self, detail: str, *, kind: str | None = None, subject: str | None = None) -> None:
        self.detail = detail
        self.kind = kind or self.default_kind
        self.subject = subject
        super().__init__(f"{subject}: {detail}" if subject else detail)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the keyword attributes (a joblib worker's error keeps its kind and subject)."""
        return _rebuild, (type(self), self.detail, self.kind, self.subject)


def _rebuild(cls: type[GenreError], detail: str, kind: str, subject: str | None) -> GenreError:
    return cls(detail, kind=kind, subject=subject)


class DataError(GenreError, ValueError):
    """A feature table is malformed: names the file, and the row or column where possible."""

    default_kind = "invalid_data"


class AudioError(GenreError, ValueError):
    """An audio file or signal cannot be turned into features.

    ``kind`` is ``"unreadable"``, ``"empty"``, ``"too_long"``, ``"too_short"`` or ``"silent"``.
    """

    default_kind = "unreadable"


class ConfigError(GenreError, ValueError):
    """An experiment configuration or a parameter value is invalid: names the file or parameter and key."""

    default_kind = "invalid_config"


class RequestError(GenreError, ValueError):
    """A prediction request cannot be answered as sent: names the row, column or limit at fault.

    The served model turns it into an HTTP 400, so a client learns what to fix instead of getting a 500.
    ``kind`` is an ``AudioError`` kind for audio the model cannot use, ``"too_large"`` beyond the payload
    limit, and ``"invalid"`` otherwise.
    """

    default_kind = "invalid"


class RegistryError(GenreError):
    """A registration or promotion cannot be done: no such run, model, version or alias; names which."""

    default_kind = "not_found"


class BatchError(GenreError):
    """A batch scoring job cannot run: no Java or pyspark, an input or output path at fault, a failed task.

    Problems with single rows or files are not errors: the job reports them in its ``error`` column.
    """

    default_kind = "batch"


class TrackingError(GenreError):
    """The MLflow tracking server did not answer (no connection, a timeout, or server errors after MLflow's
    own retries): names the server and the run it leaves, so a job does not end in a library traceback.

    ``kind`` is ``"unreachable"``.
    """

    default_kind = "unreachable"


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it was raised from or while handling, and so on, each once.

    Libraries wrap the failure that matters (a refused connection) in their own exceptions, and whether
    it is ``__cause__`` or ``__context__`` depends on how they re-raise; callers that ask "is this a lost
    connection?" look along the whole chain.
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__
