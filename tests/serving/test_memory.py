"""Handing the memory of large requests back (``genre.serving.memory``), without a server: glibc's trim
returns freed memory that a live block pins, its fixed thresholds return the top of a thread's arena,
the trimming thread runs only after large requests and stops, and the guard reports every body it is
given. ``tests/reliability/test_load.py`` asserts the effect on the real servers after a burst of large
bodies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from genre.serving import guard, memory

ROOT = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION"), reason="malloc_trim is glibc's")


def _rss() -> int:
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@glibc
def test_the_trim_hands_back_freed_memory_that_a_live_block_pins():
    glibc = memory.Glibc.load()
    assert glibc is not None
    # 100 MB in blocks too large for Python's own allocator and too small for their own mapping, with
    # one kept in every 100: freed, they stay glibc's, since the kept ones pin the heap around them.
    blocks = [bytearray(2000) for _ in range(50_000)]
    kept = blocks[::100]
    del blocks
    before = _rss()
    assert glibc.trim() == 1
    after = _rss()
    assert before - after > 50 * 2**20, (
        f"RSS {before / 2**20:.0f} MB before the trim, {after / 2**20:.0f} after"
    )
    assert len(kept) == 500


# In a process of its own (the thresholds stay set): glibc raises its trim threshold once it has seen
# a large block freed, after which a thread's arena keeps what is free at its top; keep_less fixes it.
_ARENA_TOP = textwrap.dedent(
    """
    import sys, threading
    from genre.serving import memory
    from tests.serving.test_memory import _rss

    big = bytearray(30 * 2**20); del big  # a mapped block freed: glibc raises its thresholds
    if sys.argv[1] == "keep_less":
        memory.Glibc.load().keep_less()

    def work():
        blocks = [bytearray(2**20) for _ in range(40)]  # from this thread's arena, at its top
        del blocks

    thread = threading.Thread(target=work)
    before = _rss()
    thread.start(); thread.join()
    print((_rss() - before) // 2**20)
    """
)


@glibc
def test_fixed_thresholds_give_back_the_top_of_a_threads_arena():
    def kept(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _ARENA_TOP, mode], capture_output=True, text=True, check=True, cwd=ROOT
        )
        return int(run.stdout)

    assert kept("default") >= 30  # glibc's own thresholds: the 40 MB stay
    assert kept("keep_less") <= memory.TRIM_THRESHOLD // 2**20 + 2


class _Counting:
    """A fake allocator that records its calls."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.kept_less = 0

    def keep_less(self) -> None:
        self.kept_less += 1

    def trim(self) -> int:
        self.calls.append(time.monotonic())
        return 0


def _counting() -> tuple[memory.Trimmer, list[float]]:
    allocator = _Counting()
    return memory.Trimmer(allocator, interval=0.05, linger=0.3), allocator.calls


def _until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_trims_follow_a_large_request_then_stop():
    trimmer, calls = _counting()
    trimmer.answered(memory.LARGE_BYTES - 1)
    assert trimmer._thread is None and not calls  # a small request starts nothing

    answered = time.monotonic()
    trimmer.answered(memory.LARGE_BYTES)
    assert _until(lambda: calls), "no trim after a large request"
    assert calls[0] - answered >= trimmer.interval  # not on the request's own time
    # Then at most one every interval until linger has passed since the request, and none after.
    assert _until(lambda: time.monotonic() - answered > trimmer.linger + 4 * trimmer.interval)
    done = len(calls)
    assert 1 <= done <= trimmer.linger / trimmer.interval + 1
    assert all(b - a >= trimmer.interval * 0.9 for a, b in zip(calls, calls[1:], strict=False))
    time.sleep(4 * trimmer.interval)
    assert len(calls) == done, "trims went on after linger"

    trimmer.answered(10 * memory.LARGE_BYTES)  # the same thread wakes for the next one
    assert _until(lambda: len(calls) > done)
    assert trimmer.allocator.kept_less == 1


def test_without_glibc_nothing_happens():
    trimmer = memory.Trimmer(None)
    trimmer.answered(10 * memory.LARGE_BYTES)
    assert trimmer._thread is None and trimmer.trims == 0


def test_the_guard_reports_every_body_answered_or_refused(monkeypatch):
    sizes: list[int] = []
    monkeypatch.setattr(memory, "answered", sizes.append)

    def invocations(data, content_type, model, input_schema):
        return "answered"

    wrapped = guard.guarded(invocations)
    over = b"tempo\n" + b"1\n" * (guard.MAX_ROWS + 1)
    with pytest.raises(guard.MlflowException):
        wrapped(over, "text/csv", None, None)
    assert wrapped(b"tempo\n1\n", "text/csv", None, None) == "answered"
    assert sizes == [len(over), len(b"tempo\n1\n")]
