"""The feature sets of one decoded signal: the 57 GTZAN features, musicnn's tags, or both.

Batch extraction, the served model and ``genre predict`` all turn audio into rows here, so a row means
the same wherever it was computed. The signal is decoded once, at ``SAMPLE_RATE``; musicnn resamples it
to its own 16 kHz. musicnn (and the TensorFlow-free weights it needs) is imported only when its set is
asked for, so the 57-feature path never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from genre.data.schema import FEATURE_SETS, SAMPLE_RATE, WINDOW_SAMPLES
from genre.errors import AudioError
from genre.features import gtzan57

__all__ = ["extract_sets", "extract_set_windows", "spread", "window_starts"]


def extract_sets(y: np.ndarray, *, sets: Sequence[str], sr: int = SAMPLE_RATE) -> dict[str, float]:
    """One row of features of ``y``: every column of the feature sets ``sets``, in canonical order."""
    row: dict[str, float] = {}
    for name in FEATURE_SETS:
        if name not in sets:
            continue
        if name == "gtzan57":
            row.update(gtzan57.extract_features(y, sr=sr))
        else:
            from genre.features import musicnn

            row.update(musicnn.extract_musicnn(y, sr=sr))
    return row


def window_starts(n_samples: int, *, window: int = WINDOW_SAMPLES, step: int | None = None) -> range:
    """Where the complete windows of a signal of ``n_samples`` start: every ``step`` samples (default
    ``window + 1``, Kaggle's 3-s layout; see ``gtzan57.extract_windows``).

    Raises ``AudioError`` (``too_short``) when not one complete window fits.
    """
    step = window + 1 if step is None else step
    if n_samples < window:
        raise AudioError(
            f"signal of {n_samples} samples holds no complete window of {window} samples", kind="too_short"
        )
    return range(0, n_samples - window + 1, step)


def spread(starts: Sequence[int], limit: int | None) -> list[int]:
    """At most ``limit`` of ``starts``, evenly spaced from the first to the last (all of them when there
    are no more than ``limit``, or ``limit`` is None): excerpts of a long song that cover all of it."""
    if limit is None or len(starts) <= limit:
        return list(starts)
    if limit == 1:
        return [starts[(len(starts) - 1) // 2]]  # the middle, not the intro
    return [starts[i] for i in np.linspace(0, len(starts) - 1, limit).round().astype(int)]


def extract_set_windows(
    y: np.ndarray,
    *,
    sets: Sequence[str],
    sr: int = SAMPLE_RATE,
    window: int = WINDOW_SAMPLES,
    step: int | None = None,
    starts: Sequence[int] | None = None,
    threads: int = 1,
) -> list[dict[str, float]]:
    """``extract_sets`` of each complete window ``y[start : start + window]``, in time order.

    Each window is an independent signal, as Kaggle's 3-s rows are: a window's musicnn features are the
    tags of the patches inside it (one patch in a 3-s window). ``starts`` chooses the windows (default:
    every ``step`` samples, ``window_starts``). With ``threads`` > 1 windows are computed side by side:
    each on one thread with single-threaded BLAS (``genre.threads``), so the rows are the same bits as
    one after the other, in less time for a long song on several cores.
    """
    starts = window_starts(len(y), window=window, step=step) if starts is None else starts

    def one(start: int) -> dict[str, float]:
        return extract_sets(y[start : start + window], sets=sets, sr=sr)

    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="window") as pool:
            return list(pool.map(one, starts))
    return [one(start) for start in starts]
