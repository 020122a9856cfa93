"""Worker processes that end with the process that started them.

genre spreads files over joblib's loky workers (``genre predict``, ``genre catalog``, ``genre
extract``). A loky worker waits for work for five minutes before it exits, and nothing tells it that
its parent is gone: when the parent is killed (SIGKILL, the out-of-memory killer, a closed terminal's
SIGHUP that only the parent gets), its workers finish what was queued, then sit idle with a model's
worth of memory until their timeout. Each worker here watches its parent and exits as soon as it is
reparented.
"""

from __future__ import annotations

import os
import threading
import time

from joblib.parallel import LokyBackend

__all__ = ["PARENT_POLL_SECONDS", "process_backend"]

#: How often a worker checks that its parent is alive: the longest an orphan outlives it.
PARENT_POLL_SECONDS = 0.5


def process_backend() -> LokyBackend:
    """joblib's loky backend, its workers started with a watch on their parent; pass it as
    ``Parallel(backend=...)``."""
    return LokyBackend(initializer=_watch_parent, initargs=(os.getpid(),))


def _watch_parent(parent: int) -> None:
    """Run in each new worker: a daemon thread that ends the worker once its parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)  # no cleanup to run: the parent that would read the results is gone

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
