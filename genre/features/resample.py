"""Resampling to musicnn's 16 kHz as musicnn itself did it: resampy 0.2's ``kaiser_best``, but fast.

musicnn's published taggrams, and so every model trained on them, were computed from
``librosa.load(file, sr=16000)`` under librosa 0.7, which resampled with resampy < 0.3's ``kaiser_best``
filter. librosa's default today (soxr) has another anti-aliasing roll-off: the top mel bands differ and
tag probabilities move by up to 0.056 on GTZAN clips. A model trained on the published taggrams should see
features made from the same kind of input, so genre resamples musicnn's input with that filter: the
float64 value of resampy 0.2.1's sums, rounded to float32 (``tests/features/test_musicnn.py`` compares it
with a sample-by-sample transcription of resampy's loop), in about 0.03 s of one core per 30-s clip,
where resampy 0.2.1 took 0.5 s.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np
import scipy.signal

from genre.errors import AudioError
from genre.threads import single_threaded

__all__ = ["KAISER_BETA", "ROLLOFF", "TABLE_SIZE", "ZERO_CROSSINGS", "resample_musicnn"]

#: resampy 0.2's ``kaiser_best`` (its ``data/kaiser_best.npz``): a Kaiser-windowed sinc with this many zero
#: crossings on each side, tabulated at this many entries per crossing (``precision=9``), ...
ZERO_CROSSINGS, TABLE_SIZE = 64, 512
#: ... with this Kaiser beta and roll-off (fraction of the lower Nyquist frequency). resampy 0.3 replaced the
#: filter with another one (roll-off 0.917), so resampy's ``kaiser_best`` today is not musicnn's.
KAISER_BETA, ROLLOFF = 14.769656459379492, 0.9475937167399596
#: Most output phases (output samples per period of the rational ratio) the polyphase path tabulates;
#: rarer ratios go through the per-sample path.
MAX_PHASES = 4096
#: A group of neighbouring phases is one matrix product; its input window spans at most this many
#: filter lengths (a longer one multiplies more of the zeros around each phase's taps).
_WINDOW_SPAN = 1.25
#: Most output samples between re-anchorings of the phases (40 s at 16 kHz; segments are whole periods
#: of equal length): the running sum's drift grows with the position, and over minutes it carries
#: outputs to other table offsets. A 30-s clip is one segment.
_SEGMENT = 640_000


@single_threaded()
def resample_musicnn(y: np.ndarray, *, orig_sr: float, target_sr: float = 16_000) -> np.ndarray:
    """``y`` resampled as musicnn's ``librosa.load(..., sr=16000)`` did: resampy 0.2's ``kaiser_best``.

    resampy evaluates each output sample at its position in the input, a running float64 sum of
    ``orig_sr / target_sr``, as a left and a right wing of the windowed sinc read from a table with linear
    interpolation. The same positions, table offsets and interpolation factors are computed here, then
    the products are grouped differently: with ``target_sr / orig_sr = L / M`` (320/441 from GTZAN's
    22,050 Hz), output ``t + L`` has the same table offsets as output ``t`` and nearly the same
    interpolation factor (the running sum drifts by a few 1e-6 samples over 30 s, moving the factor by
    up to 1e-3, which does matter). So each phase's taps at its factor in a segment's first period, and
    the taps' slopes times each output's own deviation from that factor, are applied to every period of
    the segment as strided dot products, many phases to one matrix product; segments are re-anchored
    every 40 s, as the drift grows with the position. Outputs the drift carried to another table offset
    or input sample (1 in 430 over 30 s at 22,050 Hz, 1 in 12 over 10 minutes) and ratios with more than
    ``MAX_PHASES`` phases are computed one by one. Like librosa 0.7, the result is then padded with
    zeros (or trimmed) to ``ceil(len(y) * target_sr / orig_sr)`` samples.

    resampy accumulated each output in float32, one product at a time; here the sums are float64,
    rounded once, so the result is within one float32 step of the float64 sum (equal to it on every
    sample of the GTZAN clips). It differs from resampy's by resampy's own rounding, which grows with the
    number of products per output (176 from 22,050 Hz, 354 from 44,100 Hz, 385 from 48,000 Hz; the
    measured differences are in tests/features/test_musicnn.py).

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono signal; converted to float32 first, as ``librosa.load`` returned it.
    orig_sr : float
        Sample rate of ``y``.
    target_sr : float, default 16000
        Sample rate of the result (musicnn's).

    Returns
    -------
    numpy.ndarray of float32, shape (ceil(n * target_sr / orig_sr),)
        ``y`` itself (as float32) when the rates are equal.

    Raises
    ------
    AudioError
        ``kind="too_short"`` when not one output sample results (resampy's error);
        ``kind="unreadable"`` for a non-1-D or non-finite signal.
    ValueError
        For a sample rate that is not positive.
    """
    if not (orig_sr > 0 and target_sr > 0):
        raise ValueError(f"sample rates must be positive, got orig_sr={orig_sr}, target_sr={target_sr}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"expected a mono signal of shape (n,), got shape {y.shape}", kind="unreadable")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if orig_sr == target_sr:
        return y
    if not np.isfinite(y).all():
        raise AudioError(f"signal has {int(np.count_nonzero(~np.isfinite(y)))} NaN or infinite samples")
    # resampy's and librosa 0.7's arithmetic, verbatim: a float ratio, a truncated and a rounded-up length.
    ratio = float(target_sr) / orig_sr
    n_out = int(len(y) * ratio)
    if n_out < 1:
        raise AudioError(
            f"signal of {len(y)} samples at {orig_sr} Hz gives no sample at {target_sr} Hz", kind="too_short"
        )
    wings = _wings(ratio)
    plan = _plan_for(ratio, orig_sr=orig_sr, target_sr=target_sr, n_out=n_out)
    n_blocks = -(-n_out // plan.phases) if plan else 1
    pad = wings.n_taps  # zeros before and after the signal stand for resampy's truncated wings
    end = len(y) + wings.n_taps + 1
    if plan:
        end = max(end, (n_blocks - 1) * plan.period + max(g.first + g.n_rows for g in plan.groups))
    x = np.zeros(pad + end)
    x[pad : pad + len(y)] = y
    n_final = int(np.ceil(len(y) * ratio))
    out = np.empty(max(n_final, n_blocks * plan.phases if plan else n_out), np.float32)
    if plan:
        strays = _polyphase(x, pad, n_out, ratio, plan, wings, out[: n_blocks * plan.phases])
    else:
        strays = (np.arange(n_out), *_positions(n_out, ratio, TABLE_SIZE))
    _direct(x, pad, *strays, wings, out)
    out[n_out:n_final] = 0.0
    return out[:n_final]


def _polyphase(
    x: np.ndarray, pad: int, n_out: int, ratio: float, plan: _Plan, wings: _Wings, out: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Fill ``out`` (whole periods) by matrix products; returns the outputs left for :func:`_direct`.

    The signal is cut into segments of ``segment_blocks`` periods. In each, every phase's taps are
    taken at its interpolation factors in the segment's first period (its anchor); a later output of the
    phase adds the taps' slopes times its own factor's deviation from the anchor. One matrix product per
    group of phases gives both for every period of the segment.
    """
    n_blocks = len(out) // plan.phases
    n_segments = -(-n_blocks // max(1, _SEGMENT // plan.phases))
    segment_blocks = -(-n_blocks // n_segments)
    anchors, deviation, moved, strays = _track(
        n_out, ratio, TABLE_SIZE, plan.base, plan.period, n_blocks, segment_blocks
    )
    deviation = deviation.reshape(n_blocks, plan.phases)
    blocks = out.reshape(n_blocks, plan.phases)
    windows = np.lib.stride_tricks.sliding_window_view
    for segment, (off_left, eta_left, off_right, eta_right) in enumerate(zip(*anchors, strict=True)):
        taps = np.concatenate(
            [
                wings.left_taps[off_left] + eta_left[:, None] * wings.left_slopes[off_left],
                wings.right_taps[off_right] + eta_right[:, None] * wings.right_slopes[off_right],
            ],
            axis=1,
        )
        if moved[segment]:
            slopes = np.concatenate([wings.left_slopes[off_left], -wings.right_slopes[off_right]], axis=1)
        first, last = segment * segment_blocks, min(n_blocks, (segment + 1) * segment_blocks)
        for g in plan.groups:
            width = g.stop - g.start
            matrix = np.zeros((g.n_rows, 2 * width if moved[segment] else width))
            matrix[g.row_index, g.column_index] = taps[g.start : g.stop]
            if moved[segment]:
                matrix[g.row_index, g.column_index + width] = slopes[g.start : g.stop]
            # Rows step by one period, each a contiguous stretch of x: BLAS reads the view as it is.
            start = pad + g.first + first * plan.period
            rows = windows(x[start : start + (last - first - 1) * plan.period + g.n_rows], g.n_rows)
            products = rows[:: plan.period] @ matrix
            if moved[segment]:
                correction = np.multiply(deviation[first:last, g.start : g.stop], products[:, width:])
                np.add(products[:, :width], correction, out=blocks[first:last, g.start : g.stop])
            else:
                blocks[first:last, g.start : g.stop] = products
    return strays


@lru_cache(maxsize=1)
def _half_window() -> np.ndarray:
    """The right half of resampy 0.2's ``kaiser_best`` table, built as its ``filters.sinc_window`` did.

    scipy's Kaiser window and ``np.sinc`` have changed in their last bits since resampy's table was saved:
    49 of the 32,769 entries now differ by one float64 unit, which no float32 output can show.
    """
    n = ZERO_CROSSINGS * TABLE_SIZE
    taper = scipy.signal.get_window(("kaiser", KAISER_BETA), 2 * n + 1, fftbins=False)[n:]
    return taper * (ROLLOFF * np.sinc(ROLLOFF * np.linspace(0, ZERO_CROSSINGS, num=n + 1, endpoint=True)))


class _Wings(NamedTuple):
    """The filter table regrouped by table offset: row ``o`` holds the taps an output at offset ``o`` uses.

    ``right_taps[o, k]`` is entry ``o + k * step`` of the table (resampy's ``interp_win``, scaled by the
    ratio when downsampling) and ``right_slopes[o, k]`` the difference to the next entry (``interp_delta``),
    zero past the table's end; ``left_*`` are the same rows reversed, so that a wing is a forward dot
    product with the input.
    """

    step: int
    n_taps: int
    right_taps: np.ndarray
    right_slopes: np.ndarray
    left_taps: np.ndarray
    left_slopes: np.ndarray


@lru_cache(maxsize=16)
def _wings(ratio: float) -> _Wings:
    table = _half_window() * ratio if ratio < 1 else _half_window()
    slopes = np.zeros_like(table)
    slopes[:-1] = np.diff(table)
    step = int(min(1.0, ratio) * TABLE_SIZE)
    n_taps = len(table) // step
    # Offsets run from 0 to ``step``: resampy's offset is int(frac * TABLE_SIZE) with frac <= min(1, ratio).
    index = np.arange(step + 1)[:, None] + step * np.arange(n_taps)
    # resampy takes (len(table) - offset) // step taps, so never an entry within ``step`` of the end.
    inside = index + step <= len(table)
    index = np.where(inside, index, 0)
    right_taps, right_slopes = np.where(inside, table[index], 0.0), np.where(inside, slopes[index], 0.0)
    return _Wings(
        step,
        n_taps,
        right_taps,
        right_slopes,
        np.ascontiguousarray(right_taps[:, ::-1]),
        np.ascontiguousarray(right_slopes[:, ::-1]),
    )


class _Group(NamedTuple):
    """Neighbouring phases ``start:stop`` as one matrix product, and where their taps go in the matrix.

    Row ``j`` of the matrix multiplies input sample ``first + j`` of the period (``n_rows`` rows); column
    ``i`` holds phase ``start + i``'s taps, at ``row_index[i]`` (``column_index`` is ``i``), and column
    ``stop - start + i`` their slopes.
    """

    start: int
    stop: int
    first: int
    n_rows: int
    row_index: np.ndarray
    column_index: np.ndarray


class _Plan(NamedTuple):
    """A rational ratio's phases: ``phases`` output samples per ``period`` input samples.

    ``base[p]`` is the input sample output ``p`` starts from (resampy's ``n``); output ``p + m * phases``
    starts ``m * period`` samples later, unless the running sum's drift moved it.
    """

    phases: int
    period: int
    base: np.ndarray
    groups: tuple[_Group, ...]


def _plan_for(ratio: float, *, orig_sr: float, target_sr: float, n_out: int) -> _Plan | None:
    """The polyphase plan for these rates, or None when the per-sample path is the better one."""
    fraction = (Fraction(target_sr) / Fraction(orig_sr)).limit_denominator(1_000_000)
    wings = _wings(ratio)
    # Few phases (48 kHz -> 16 kHz has one) make periods shorter than a filter: take several at once.
    repeat = max(1, -(-int(_WINDOW_SPAN * 2 * wings.n_taps) // fraction.denominator))
    phases = repeat * fraction.numerator
    if phases > MAX_PHASES or n_out < 4 * phases:
        return None
    return _plan(ratio, phases, repeat * fraction.denominator)


@lru_cache(maxsize=16)
def _plan(ratio: float, phases: int, period: int) -> _Plan:
    length = 2 * _wings(ratio).n_taps
    base = _positions(phases, ratio, TABLE_SIZE)[0]
    span = min(period, int(_WINDOW_SPAN * length))  # a window within one period keeps rows BLAS-readable
    groups, start = [], 0
    while start < phases:
        stop = start + 1
        while stop < phases and base[stop] - base[start] + length <= span:
            stop += 1
        rows = (base[start:stop] - base[start])[:, None] + np.arange(length)
        columns = np.arange(stop - start)[:, None]
        n_rows = int(base[stop - 1] - base[start]) + length
        groups.append(_Group(start, stop, int(base[start]) - length // 2 + 1, n_rows, rows, columns))
        start = stop
    return _Plan(phases, period, base, tuple(groups))


@numba.njit(cache=True, nogil=True)
def _locate(time_register: float, scale: float, table_size: int) -> tuple[int, int, float, int, float]:
    """resampy 0.2's bookkeeping of one output at ``time_register`` (``interpn.resample_f``), verbatim.

    The input sample at or before the position, then for the left and the right wing the table offset
    and the linear interpolation factor. Compiled without fast-math, so every value is resampy's.
    """
    n = int(time_register)
    frac = scale * (time_register - n)
    index_frac = frac * table_size
    offset_left = int(index_frac)
    eta_left = index_frac - offset_left
    frac = scale - frac
    index_frac = frac * table_size
    offset_right = int(index_frac)
    return n, offset_left, eta_left, offset_right, index_frac - offset_right


@numba.njit(cache=True, nogil=True)
def _positions(n_out: int, ratio: float, table_size: int) -> tuple[np.ndarray, ...]:
    """:func:`_locate` for outputs ``0 .. n_out - 1``, as arrays.

    The position is resampy's running float64 sum of ``1 / ratio``, whose rounding is part of the result.
    """
    scale = min(1.0, ratio)
    time_increment = 1.0 / ratio
    base = np.empty(n_out, np.int64)
    off_left = np.empty(n_out, np.int64)
    off_right = np.empty(n_out, np.int64)
    eta_left = np.empty(n_out)
    eta_right = np.empty(n_out)
    time_register = 0.0
    for t in range(n_out):
        base[t], off_left[t], eta_left[t], off_right[t], eta_right[t] = _locate(
            time_register, scale, table_size
        )
        time_register += time_increment
    return base, off_left, eta_left, off_right, eta_right


@numba.njit(cache=True, nogil=True)
def _track(n_out, ratio, table_size, layout, period, n_blocks, segment_blocks):
    """Every output's bookkeeping (:func:`_locate`), against its phase's anchor in its segment.

    Output ``t`` is phase ``t % phases`` of period ``t // phases``. In the first period of a segment it
    anchors its phase: its table offsets and interpolation factors are the segment's taps, provided it
    starts where the plan's ``layout`` puts it (else the previous segment's anchor stays). Later outputs
    of the phase that start ``period`` samples per period later with the same table offsets need only
    their left factor's deviation from the anchor (the right one moves by the opposite, checked to
    1e-9); the rest, which the drift carried to another offset or input sample, are returned with their
    own bookkeeping, to be computed one by one. Writing every output's bookkeeping to arrays instead
    would touch four times as much memory.

    Returns the anchors (left offsets, left factors, right offsets, right factors; segments x phases),
    the deviations (periods x phases, flat, zero where not used), whether each segment has a deviation
    that is not zero, and the other outputs (output index, input sample, offsets and factors).
    """
    phases = layout.shape[0]
    n_segments = -(-n_blocks // segment_blocks)
    scale = min(1.0, ratio)
    time_increment = 1.0 / ratio
    anchor_off_left = np.empty((n_segments, phases), np.int64)
    anchor_eta_left = np.empty((n_segments, phases))
    anchor_off_right = np.empty((n_segments, phases), np.int64)
    anchor_eta_right = np.empty((n_segments, phases))
    deviation = np.zeros(n_blocks * phases)
    moved = np.zeros(n_segments, np.bool_)
    # As long as the output, but only the pages written to are ever touched.
    strays = np.empty(n_out, np.int64)
    base = np.empty(n_out, np.int64)
    off_left = np.empty(n_out, np.int64)
    off_right = np.empty(n_out, np.int64)
    eta_left = np.empty(n_out)
    eta_right = np.empty(n_out)
    n_strays = 0
    time_register = 0.0
    # Counters rather than t // phases and t % phases: two integer divisions cost more than _locate.
    block, phase, segment, anchoring = 0, -1, 0, True
    for t in range(n_out):
        phase += 1
        if phase == phases:
            block, phase = block + 1, 0
            anchoring = block % segment_blocks == 0
            if anchoring:
                segment += 1
        n, offset_left, eta, offset_right, eta_r = _locate(time_register, scale, table_size)
        time_register += time_increment
        in_place = n == layout[phase] + block * period
        if anchoring:
            if in_place:
                anchor_off_left[segment, phase], anchor_eta_left[segment, phase] = offset_left, eta
                anchor_off_right[segment, phase], anchor_eta_right[segment, phase] = offset_right, eta_r
                continue
            # Never in the first segment: the layout is where the first period's outputs start.
            anchor_off_left[segment, phase] = anchor_off_left[segment - 1, phase]
            anchor_eta_left[segment, phase] = anchor_eta_left[segment - 1, phase]
            anchor_off_right[segment, phase] = anchor_off_right[segment - 1, phase]
            anchor_eta_right[segment, phase] = anchor_eta_right[segment - 1, phase]
        shift = eta - anchor_eta_left[segment, phase]
        if (
            in_place
            and offset_left == anchor_off_left[segment, phase]
            and offset_right == anchor_off_right[segment, phase]
            and abs(eta_r - anchor_eta_right[segment, phase] + shift) < 1e-9
        ):
            deviation[t] = shift
            if shift != 0.0:
                moved[segment] = True
        else:
            strays[n_strays] = t
            base[n_strays], off_left[n_strays], eta_left[n_strays] = n, offset_left, eta
            off_right[n_strays], eta_right[n_strays] = offset_right, eta_r
            n_strays += 1
    k = n_strays
    anchors = (anchor_off_left, anchor_eta_left, anchor_off_right, anchor_eta_right)
    others = (
        strays[:k].copy(), base[:k].copy(), off_left[:k].copy(), eta_left[:k].copy(),
        off_right[:k].copy(), eta_right[:k].copy(),
    )  # fmt: skip
    return anchors, deviation, moved, others


def _direct(
    x: np.ndarray,
    pad: int,
    outputs: np.ndarray,
    base: np.ndarray,
    off_left: np.ndarray,
    eta_left: np.ndarray,
    off_right: np.ndarray,
    eta_right: np.ndarray,
    wings: _Wings,
    out: np.ndarray,
) -> None:
    """``out[outputs[k]]`` from its own input sample ``base[k]``, offsets and factors (``x`` has ``pad``
    zeros first)."""
    if len(outputs):
        _direct_kernel(
            x, pad, outputs, base, off_left, eta_left, off_right, eta_right,
            wings.left_taps, wings.left_slopes, wings.right_taps, wings.right_slopes, out,
        )  # fmt: skip


# Reassociation lets the dot products vectorise; they are float64 sums, rounded to float32 afterwards.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _direct_kernel(
    x, pad, outputs, base, off_left, eta_left, off_right, eta_right,
    left_taps, left_slopes, right_taps, right_slopes, out,
):  # fmt: skip
    """resampy's two wings for each listed output, as ``sum(taps * x) + eta * sum(slopes * x)``.

    Zeros around ``x`` stand for resampy's truncated wings at the signal's ends (and the table's rows
    are zero past its end), so every output runs the full ``n_taps`` on each side.
    """
    n_taps = right_taps.shape[1]
    for k in range(outputs.shape[0]):
        first = base[k] + pad - n_taps + 1
        row = off_left[k]
        total = 0.0
        slope = 0.0
        for i in range(n_taps):
            total += left_taps[row, i] * x[first + i]
            slope += left_slopes[row, i] * x[first + i]
        value = total + eta_left[k] * slope
        first += n_taps
        row = off_right[k]
        total = 0.0
        slope = 0.0
        for i in range(n_taps):
            total += right_taps[row, i] * x[first + i]
            slope += right_slopes[row, i] * x[first + i]
        out[outputs[k]] = value + total + eta_right[k] * slope
