"""Worker processes end with the process that started them (``genre.workers``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from genre.workers import PARENT_POLL_SECONDS

# A parent that starts two workers through ``process_backend``, prints their pids once both are busy,
# then dies without a word to them, as a SIGKILLed ``genre predict`` does.
_PARENT = """
import os, sys, time
from joblib import Parallel, delayed
from genre.workers import process_backend

def busy(seconds):
    time.sleep(0.2)  # both workers take a task before the parent reports them
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()

pids = set()
for pid in Parallel(n_jobs=2, backend=process_backend(), return_as="generator_unordered")(
    delayed(busy)(s) for s in (0.1, 0.1, 60, 60)
):
    pids.add(pid)
    if len(pids) == 2:
        print(*pids, flush=True)
        os._exit(9)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead, only not yet reaped
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_soon_after_their_parent_dies_mid_task():
    """Without the watch, loky's workers finish their 60-s tasks and idle for five minutes more."""
    done = subprocess.run([sys.executable, "-c", _PARENT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    workers = [int(pid) for pid in done.stdout.split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 20 * PARENT_POLL_SECONDS  # a poll, plus the scheduler's delay
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers)), f"workers {workers} outlived their parent"
