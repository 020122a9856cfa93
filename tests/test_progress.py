"""Console progress: which run, fit k of n, elapsed and left; a line per finished run off a terminal."""

from __future__ import annotations

import io

from genre.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_left_comes_from_measured_fits_once_a_model_has_run():
    clock, stream = _Clock(), _Terminal()
    progress = Progress(stream=stream, clock=clock)
    first = progress.plan("nn (grouped)", "nn", 3)
    second = progress.plan("nn (seed)", "nn", 3)
    progress.start(first)
    clock.now = 2.0
    progress.advance()
    assert "nn (grouped) · fit 2/3 · 0:02 elapsed" in stream.getvalue()
    assert progress.seconds_left() == 2 * 2.0 + 3 * 2.0  # two fits here, three in the next run
    clock.now = 6.0
    progress.advance(2)
    progress.finish("cv accuracy 0.9")
    progress.start(second)
    assert progress.seconds_left() == 3 * 2.0
    assert "\r\033[Knn (grouped): cv accuracy 0.9\n" in stream.getvalue()  # the live line, kept


def test_off_a_terminal_only_finished_runs_are_printed_and_quiet_prints_nothing():
    stream = io.StringIO()
    progress = Progress(stream=stream)
    task = progress.plan("knn (grouped)", "knn", 2)
    progress.start(task)
    progress.advance(2)
    progress.finish("done")
    progress.note("reusing run x")
    assert stream.getvalue() == "knn (grouped): done\nreusing run x\n"
    silent = io.StringIO()
    quiet = Progress(stream=silent, quiet=True)
    quiet.start(quiet.plan("a", "knn", 1))
    quiet.finish("x")
    quiet.note("y")
    assert silent.getvalue() == ""
