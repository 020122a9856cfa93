"""Handing the memory of large requests back to the system once they are answered.

Why: ``mlflow models serve`` (MLflow 3.17.2 on uvicorn and Starlette) reads a request's body whole
before anything of ours sees it: uvicorn passes it up in chunks of tens of kB, Starlette keeps them in a
list and joins them, all on the event loop's thread, so a large body's chunks are allocated from glibc's
main heap among the small blocks of every other request served meanwhile. MLflow's parse (or
``genre.serving.guard``'s count) then runs on one of anyio's worker threads, each of which has an arena
of its own; ``genre web`` analyses uploads on a thread of its own. When a body is freed, glibc keeps the
memory: a heap shrinks only from its top, which one live small block pins, and freed chunks stay in
each arena for the next allocation. Worse, glibc raises its own thresholds as it sees large blocks
freed, so that a thread's arena then keeps tens of MB free at its top, which ``malloc_trim`` does not
reach (it trims the top of the main heap only). So after a burst of large bodies a server held hundreds
of MB it no longer used, more the more bodies had coincided with other requests, and never gave them
back (``MALLOC_ARENA_MAX`` bounds the number of arenas, not what each keeps). docs/reliability.md has
the measurements.

How: a request whose body is at least ``LARGE_BYTES`` calls ``answered`` when it is done. The first
time, ``Glibc.keep_less`` fixes glibc's thresholds (``mallopt``): blocks from ``MMAP_THRESHOLD`` up get
a mapping of their own, and a heap's top is given back beyond ``TRIM_THRESHOLD`` whenever a block is
freed, in every arena. Then a thread of its own calls ``malloc_trim(0)``, which hands back the free
pages inside every arena, every ``INTERVAL`` seconds until ``LINGER`` seconds have passed since the
last such request. Off the request path: a trim locks each arena while it walks it, so it is done on
the trimming thread, never while a request waits on it, and not again sooner than ``INTERVAL`` however
many requests end. It goes on for a while because a body is freed only after its answer has been
sent, a little after ``answered``.

Only on glibc, where the C library has ``malloc_trim`` and ``mallopt``; elsewhere (musl, macOS)
``answered`` does nothing. ``guard.install`` hooks it into the scoring server; ``genre web`` calls it
after a large upload.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from typing import Protocol

__all__ = [
    "INTERVAL",
    "LARGE_BYTES",
    "LINGER",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "Glibc",
    "Trimmer",
    "answered",
]

log = logging.getLogger(__name__)

#: A request body at least this large is followed by trims; smaller ones leave too little behind to matter.
LARGE_BYTES = 8 * 2**20
#: Seconds between two trims, and how long after the last large request trimming goes on.
INTERVAL = 0.5
LINGER = 3.0
#: Blocks this large or larger are mapped on their own and unmapped when freed: the ceiling of glibc's
#: own moving threshold on 64-bit systems, so smaller arrays are still served from the arenas.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of a heap beyond this goes back to the system when a block is freed.
TRIM_THRESHOLD = LARGE_BYTES
#: ``mallopt`` parameters, from glibc's ``malloc.h``.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


class Allocator(Protocol):
    def keep_less(self) -> None: ...

    def trim(self) -> int: ...


class Glibc:
    """glibc's allocator, through ``ctypes``: ``load()`` is None where the C library is not glibc."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self._trim, self._mallopt = libc.malloc_trim, libc.mallopt
        self._trim.argtypes, self._trim.restype = [ctypes.c_size_t], ctypes.c_int
        self._mallopt.argtypes, self._mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int

    @classmethod
    def load(cls) -> Glibc | None:
        try:
            if not os.confstr("CS_GNU_LIBC_VERSION"):
                return None
            return cls(ctypes.CDLL(None))
        except (ValueError, OSError, AttributeError):  # no such confstr name, no C library, no symbol
            return None

    def keep_less(self) -> None:
        """Fix the thresholds (``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``) that glibc would otherwise raise."""
        self._mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        self._mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)

    def trim(self) -> int:
        """``malloc_trim(0)``: 1 if memory went back to the system."""
        return self._trim(0)


class Trimmer:
    """After a large request, ``allocator.keep_less()`` (once) and ``allocator.trim()`` every
    ``interval`` seconds, on a thread of its own, until ``linger`` seconds after the last ``answered``;
    ``trims`` counts the trims. With ``allocator=None`` it does nothing."""

    def __init__(self, allocator: Allocator | None, *, interval: float = INTERVAL, linger: float = LINGER):
        self.allocator, self.interval, self.linger = allocator, interval, linger
        self.trims = 0
        self._last = 0.0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def answered(self, size: int) -> None:
        """A request whose body held ``size`` bytes has been answered: trim soon if it was large."""
        if self.allocator is None or size < LARGE_BYTES:
            return
        with self._lock:
            self._last = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="genre-malloc-trim", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        assert self.allocator is not None
        self.allocator.keep_less()
        while True:
            self._wake.wait()
            self._wake.clear()
            while time.monotonic() - self._last < self.linger:
                time.sleep(self.interval)
                started = time.perf_counter()
                self.allocator.trim()
                self.trims += 1
                log.debug("malloc_trim(0) in %.3f s", time.perf_counter() - started)


_trimmer = Trimmer(Glibc.load())


def answered(size: int) -> None:
    """The process's ``Trimmer.answered``: call it once a request whose body held ``size`` bytes has
    been answered."""
    _trimmer.answered(size)
