"""The project's exceptions.

One base class, so the CLI can turn every expected failure into a one-line message and an exit code
instead of a traceback, and callers can catch ``GenreError`` without knowing which layer raised it.
"""

from __future__ import annotations

__all__ = [
    "GenreError",
    "DataError",
    "AudioError",
    "ConfigError",
    "RequestError",
    "RegistryError",
    "BatchError",
]


class GenreError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(GenreError, ValueError):
    """A feature table is malformed: names the file, and the row or column where possible."""


class AudioError(GenreError, ValueError):
    """An audio file or signal cannot be turned into features (unreadable, empty, silent, too short).

    ``kind`` is a short machine-readable reason (``"unreadable"``, ``"empty"``, ``"silent"``,
    ``"too_short"``) used by batch extraction's failures report.
    """

    def __init__(self, message: str, *, kind: str = "unreadable") -> None:
        super().__init__(message)
        self.kind = kind


class ConfigError(GenreError, ValueError):
    """An experiment configuration or a parameter value is invalid: names the file or parameter and key."""


class RequestError(GenreError, ValueError):
    """A prediction request cannot be answered as sent: names the row, column or limit at fault.

    The served model turns it into an HTTP 400, so a client learns what to fix instead of getting a 500.
    ``kind`` is a short machine-readable reason for audio requests (``"too_large"``, ``"unreadable"``,
    ``"empty"``, ``"too_long"``, ``"too_short"``, ``"silent"``; ``"invalid"`` otherwise), so the web demo
    can headline the problem in plain words without parsing the message.
    """

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


class RegistryError(GenreError):
    """A registration or promotion cannot be done: no such run, model, version or alias; names which."""


class BatchError(GenreError):
    """A batch scoring job cannot run: no Java or pyspark, an input or output path at fault, a failed task.

    Problems with single rows or files are not errors: the job reports them in its ``error`` column.
    """
