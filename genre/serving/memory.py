"""Handing the memory of large requests back to the system once they are answered.

Why: ``mlflow models serve`` (MLflow 3.17.2 on uvicorn and Starlette) reads a request's body whole
before anything of ours sees it: uvicorn passes it up in chunks of tens of kB, Starlette keeps them in a
list and joins them, all on the event loop's thread, so a large body's chunks are allocated from glibc's
main heap among the small blocks of every other request served meanwhile. MLflow's parse (or
``genre.serving.guard``'s count) then runs on one of anyio's worker threads, each of which has an arena
of its own. When the body is freed, glibc keeps the memory: a heap shrinks only from its top, which one
live small block pins, and freed chunks stay in each arena for the next allocation. So after a burst of
large bodies the server held hundreds of MB it no longer used, more the more bodies had coincided, and
never gave them back (``MALLOC_ARENA_MAX`` bounds the arenas, not what each keeps). ``malloc_trim(0)``
hands the free pages of every arena back to the system, wherever they lie (docs/serving.md has the
measurements).

How: a request whose body is at least ``LARGE_BYTES`` calls ``answered`` when it is done; a thread of
its own then calls ``malloc_trim(0)`` every ``INTERVAL`` seconds until ``LINGER`` seconds have passed
since the last such request. Off the request path: a trim locks each arena while it walks it, so it is
done on the trimming thread, never while a request waits on it, and not again sooner than ``INTERVAL``
however many requests end. It keeps trimming for a while because a body is freed only after its answer
has been sent, a little after ``answered``.

Only on glibc, where the C library has ``malloc_trim``; elsewhere (musl, macOS) ``answered`` does
nothing. ``guard.install`` hooks it into the scoring server; ``genre web`` calls it after a large upload.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["INTERVAL", "LARGE_BYTES", "LINGER", "Trimmer", "answered", "malloc_trim"]

log = logging.getLogger(__name__)

#: A request body at least this large is followed by trims; smaller ones leave too little behind to matter.
LARGE_BYTES = 8 * 2**20
#: Seconds between two trims, and how long after the last large request trimming goes on.
INTERVAL = 0.5
LINGER = 3.0


def malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a function, or None when the C library is not glibc."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        function = ctypes.CDLL(None).malloc_trim
    except (ValueError, OSError, AttributeError):  # no such confstr name, no C library, no symbol
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: function(0)


class Trimmer:
    """Calls ``trim`` every ``interval`` seconds, on a thread of its own, until ``linger`` seconds after
    the last ``answered``; ``trims`` counts the calls. With ``trim=None`` it does nothing."""

    def __init__(self, trim: Callable[[], int] | None, *, interval: float = INTERVAL, linger: float = LINGER):
        self.trim, self.interval, self.linger = trim, interval, linger
        self.trims = 0
        self._last = 0.0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def answered(self, size: int) -> None:
        """A request whose body held ``size`` bytes has been answered: trim soon if it was large."""
        if self.trim is None or size < LARGE_BYTES:
            return
        with self._lock:
            self._last = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="genre-malloc-trim", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        assert self.trim is not None
        while True:
            self._wake.wait()
            self._wake.clear()
            while time.monotonic() - self._last < self.linger:
                time.sleep(self.interval)
                started = time.perf_counter()
                self.trim()
                self.trims += 1
                log.debug("malloc_trim(0) in %.3f s", time.perf_counter() - started)


_trimmer = Trimmer(malloc_trim())


def answered(size: int) -> None:
    """The process's ``Trimmer.answered``: call it once a request whose body held ``size`` bytes has
    been answered."""
    _trimmer.answered(size)
