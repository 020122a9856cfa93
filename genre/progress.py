"""Live progress of a long job on the console: what runs now, fold k of n, time spent and time left.

A job knows its plan up front -- each (model, protocol) run is a number of fits (its folds and the
final fit) -- so ``Progress`` can say how much is left. The estimate of a fit's cost starts from rough
relative costs per model and is replaced by the measured time per fit as soon as a model has run
once (the second protocol of ``genre main`` then has exact figures). On a terminal one line is
rewritten in place; elsewhere (CI logs, a pipe) only finished runs are printed, one line each.
Nothing is printed when quiet.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Progress", "Task"]

#: Rough seconds per fit on the embedded set, only to weigh models against each other before the
#: first fit of each has been timed (measured once: docs/results.md has the real figures).
_PRIOR_SECONDS = {"knn": 0.05, "svm": 0.2, "nn": 1.0, "stacking": 6.0}


@dataclass
class Task:
    """One planned run: ``fits`` units of work of ``model``'s cost."""

    label: str
    model: str
    fits: int
    done: int = 0


@dataclass
class Progress:
    """Progress over a plan of tasks; ``quiet`` prints nothing.

    Parameters
    ----------
    stream : text stream, default sys.stderr
    quiet : bool, default False
    clock : callable, default time.monotonic
        Seconds (tests pass a fake clock).
    """

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    quiet: bool = False
    clock: Callable[[], float] = time.monotonic
    tasks: list[Task] = field(default_factory=list)
    _started: float | None = None
    _per_fit: dict[str, list[float]] = field(default_factory=dict)
    _last: float | None = None
    _current: Task | None = None

    @property
    def live(self) -> bool:
        """Whether one line is rewritten in place (a terminal) rather than printed per finished run."""
        return not self.quiet and self.stream.isatty()

    def plan(self, label: str, model: str, fits: int) -> Task:
        """Add a run of ``fits`` fits of ``model`` to the plan, and return it."""
        task = Task(label, model, fits)
        self.tasks.append(task)
        return task

    def start(self, task: Task) -> None:
        """``task`` begins now."""
        now = self.clock()
        self._started = now if self._started is None else self._started
        self._current, self._last = task, now
        self._show()

    def advance(self, fits: int = 1) -> None:
        """``fits`` more fits of the current task are done."""
        task, now = self._current, self.clock()
        if task is None or self._last is None:
            return
        self._per_fit.setdefault(task.model, []).append((now - self._last) / max(fits, 1))
        task.done = min(task.fits, task.done + fits)
        self._last = now
        self._show()

    def finish(self, summary: str) -> None:
        """The current task is over; ``summary`` (e.g. its score) is printed on a line of its own."""
        task = self._current
        if task is not None:
            task.done = task.fits
        self._current = None
        if not self.quiet:
            self._write(f"{task.label if task else ''}: {summary}", end="\n")

    def note(self, text: str) -> None:
        """A line of its own, e.g. that a finished run was reused."""
        if not self.quiet:
            self._write(text, end="\n")

    def seconds_left(self) -> float:
        """Estimated seconds until every planned fit is done."""
        known = {model: sum(times) / len(times) for model, times in self._per_fit.items() if times}
        scales = [known[model] / _PRIOR_SECONDS.get(model, 1.0) for model in known]
        scale = sum(scales) / len(scales) if scales else 1.0
        return sum(
            (task.fits - task.done) * known.get(task.model, _PRIOR_SECONDS.get(task.model, 1.0) * scale)
            for task in self.tasks
        )

    def _show(self) -> None:
        task = self._current
        if not self.live or task is None or self._started is None:
            return
        elapsed = self.clock() - self._started
        fold = f"fit {min(task.done + 1, task.fits)}/{task.fits}"
        line = f"{task.label} · {fold} · {_clock(elapsed)} elapsed · ~{_clock(self.seconds_left())} left"
        self._write(line, end="")

    def _write(self, text: str, *, end: str) -> None:
        prefix = "\r\033[K" if self.stream.isatty() else ""
        self.stream.write(prefix + text + end)
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
