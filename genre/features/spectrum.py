"""The one short-time Fourier transform every spectral feature shares, and the signal checks before it.

``N_FFT``, ``HOP_LENGTH``, Hann window, centred frames and reflect padding: librosa's default before 0.10,
and what Kaggle's values were made with.
"""

# ``S`` for a spectrogram argument is librosa's API, which these functions mirror on purpose.
# ruff: noqa: N803

from __future__ import annotations

import librosa
import numpy as np

from genre.data.schema import HOP_LENGTH, N_FFT
from genre.errors import AudioError

__all__ = ["check_signal", "spectrogram"]


def check_signal(y: np.ndarray) -> np.ndarray:
    """``y`` as contiguous float32, or an ``AudioError`` saying what is wrong with it."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"expected a mono signal of shape (n,), got shape {y.shape}", kind="unreadable")
    if len(y) < N_FFT:
        raise AudioError(
            f"signal of {len(y)} samples is shorter than one {N_FFT}-sample frame", kind="too_short"
        )
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError(
            f"signal has {int(np.count_nonzero(~np.isfinite(y)))} NaN or infinite samples", kind="unreadable"
        )
    return y


def spectrogram(*, y: np.ndarray | None, S: np.ndarray | None, power: float | None) -> np.ndarray:
    """``S`` untouched when given, else ``|STFT(y)| ** power`` (the complex STFT when ``power`` is None).

    The one place an STFT is computed: ``N_FFT``, ``HOP_LENGTH``, Hann window, centred frames and
    reflect padding (librosa's default before 0.10, and what Kaggle's values were made with).
    """
    if S is not None:
        return S
    if y is None:
        raise TypeError("pass either the signal y= or a spectrogram S=")
    stft = librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True, pad_mode="reflect")
    return stft if power is None else np.abs(stft) ** power
