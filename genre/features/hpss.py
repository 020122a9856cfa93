"""Harmonic/percussive separation as librosa computed it before 0.10, with compiled median filters.

``librosa.effects.hpss`` is most of the naive extraction's time: two 31-wide median filters over the
magnitude spectrogram. Here they run as an exact sliding median compiled with numba, and the soft mask is
fused into its product with the STFT.
"""

# ``S`` for a spectrogram argument is librosa's API, which these functions mirror on purpose.
# ruff: noqa: N803

from __future__ import annotations

import librosa
import numba
import numpy as np

from genre.data.schema import HOP_LENGTH, N_FFT
from genre.features.spectrum import spectrogram

__all__ = ["HPSS_KERNEL", "hpss"]

#: Width (in frames and in bins) of librosa's default HPSS median filters.
HPSS_KERNEL = 31


def hpss(*, y: np.ndarray, S: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive signals, as ``librosa.effects.hpss`` computed them before librosa 0.10.

    Median filters of ``HPSS_KERNEL`` frames across time and bins across frequency (scipy's ``reflect``
    boundary, as ``librosa.decompose.hpss``) give the same medians as librosa, from an exact sliding
    median. The soft masks (power 2) sum to one, so the percussive signal is the input minus the
    harmonic one (librosa's to float32 rounding), which saves the second inverse STFT. Like
    librosa < 0.10, the inverse STFT is not extended to the input's length: its last
    ``len(y) - HOP_LENGTH * (t - 1)`` samples are zero in both outputs, which Kaggle's harmony/perceptr
    statistics include.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Signal (always needed: it is the sum of the two outputs).
    S : numpy.ndarray of complex, shape (1 + N_FFT // 2, t), optional
        Complex STFT of ``y``.

    Returns
    -------
    harmonic, percussive : numpy.ndarray, shape (n,)
    """
    stft = spectrogram(y=y, S=S, power=None)
    magnitude = np.abs(stft)
    # librosa stores an STFT frame by frame (Fortran order). Transposed, that is a frames x bins array
    # whose rows the time median slides along with bins as contiguous lanes; the frequency median needs
    # a bins x frames copy. The mask is applied in the frames x bins view.
    harmonic_median = _median_filter_rows(magnitude.T).T
    percussive_median = _median_filter_rows(magnitude)
    masked = _harmonic_part(stft.T, harmonic_median.T, percussive_median.T).T
    harmonic = librosa.istft(masked, n_fft=N_FFT, hop_length=HOP_LENGTH, dtype=y.dtype)
    n_valid = len(harmonic)
    harmonic = librosa.util.fix_length(harmonic, size=len(y))
    percussive = y - harmonic
    percussive[n_valid:] = 0.0
    return harmonic, percussive


@numba.njit(cache=True, nogil=True)
def _harmonic_part(stft: np.ndarray, harmonic: np.ndarray, percussive: np.ndarray) -> np.ndarray:
    """``stft * librosa.util.softmask(harmonic, percussive, power=2, split_zeros=True)``, in one pass.

    Both medians are rescaled by their maximum before squaring, as librosa does against underflow; where
    both are below float32's smallest normal number the mask is 0.5. Fusing the mask into the product
    avoids half a dozen temporary spectrograms. Arrays are frames x bins, bins contiguous.
    """
    tiny = np.float32(1.1754944e-38)  # np.finfo(np.float32).tiny
    out = np.empty_like(stft)
    for t in range(stft.shape[0]):
        for f in range(stft.shape[1]):
            h = harmonic[t, f]
            p = percussive[t, f]
            scale = h if h > p else p
            if scale < tiny:
                mask = np.float32(0.5)
            else:
                h = h / scale
                p = p / scale
                mask = h * h / (h * h + p * p)
            out[t, f] = stft[t, f] * mask
    return out


def _median_filter_rows(x: np.ndarray, width: int = HPSS_KERNEL) -> np.ndarray:
    """Median over ``width`` consecutive rows, each column independently; scipy's ``reflect`` boundary.

    Equals ``scipy.ndimage.median_filter(x, size=(width, 1), mode="reflect")`` exactly (a median is one
    of the inputs), which is numpy's ``symmetric`` padding.
    """
    half = width // 2
    padded = np.pad(np.ascontiguousarray(x), ((half, half), (0, 0)), mode="symmetric")
    return _sliding_median(padded, np.sort(padded[:width], axis=0))


@numba.njit(cache=True, nogil=True)
def _sliding_median(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Median of each run of ``width`` rows of ``x``, for every column at once.

    ``window`` starts as the first ``width`` rows of ``x`` sorted down each column and is updated in
    place, each column keeping its current window sorted. Sliding by one row removes the oldest value
    and inserts the newest with a branch-free merge, one pass over the ``width`` sorted positions: with
    ``c`` the window without the old value (position i holds ``window[i]`` below the old value, else
    ``window[i+1]``), the new position i is ``min(c[i], max(c[i-1], new))``. The inner loop runs across
    columns, so it vectorises; O(width) per output, but with no branches or heaps.
    """
    width, n_lanes = window.shape
    n_out = x.shape[0] - width + 1
    median = np.empty((n_out, n_lanes), dtype=x.dtype)
    previous = np.empty(n_lanes, dtype=x.dtype)
    median[0] = window[width // 2]
    for t in range(1, n_out):
        old = x[t - 1]
        new = x[t + width - 1]
        previous[:] = -np.inf
        for i in range(width - 1):
            here = window[i]
            after = window[i + 1]
            for lane in range(n_lanes):
                value = here[lane]
                kept = value if value < old[lane] else after[lane]
                bound = previous[lane] if previous[lane] > new[lane] else new[lane]
                here[lane] = kept if kept < bound else bound
                previous[lane] = kept
        last = window[width - 1]
        for lane in range(n_lanes):
            last[lane] = previous[lane] if previous[lane] > new[lane] else new[lane]
        median[t] = window[width // 2]
    return median
