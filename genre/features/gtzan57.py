"""The 57 GTZAN features of a signal, computed as Kaggle's ``features_30_sec.csv`` did, but fast.

Kaggle's values come from one librosa call per feature (librosa < 0.10: ``pad_mode="reflect"``), each
recomputing its own STFT, with ``librosa.effects.hpss`` taking most of the time. Here one reflect-padded
STFT feeds every spectral feature, one mel spectrogram feeds both the MFCCs and the tempo, and the HPSS
median filters run as an exact sliding median compiled with numba. The values stay those of the naive
recipe (``benchmarks/extraction_speed.py`` measures both), so features extracted here and the Kaggle CSVs
can be mixed in one table.

Feature functions follow librosa's conventions: keyword-only arguments, and each takes either the signal
``y=`` or a precomputed spectrogram ``S=`` (the spectrogram kind each one expects is in its docstring).
"""

# ``S`` for a spectrogram argument is librosa's API, which these functions mirror on purpose.
# ruff: noqa: N803, N806

from __future__ import annotations

import time
from functools import lru_cache

import librosa
import numpy as np
import scipy.sparse

from genre.data.schema import FEATURE_COLUMNS, HOP_LENGTH, N_FFT, N_MFCC, SAMPLE_RATE, WINDOW_SAMPLES
from genre.errors import AudioError
from genre.features.hpss import hpss
from genre.features.spectrum import check_signal, spectrogram
from genre.threads import single_threaded

__all__ = [
    "extract_features",
    "extract_windows",
    "warm_up",
    "chroma_stft",
    "spectral_centroid",
    "spectral_bandwidth",
    "spectral_rolloff",
    "zero_crossing_rate",
    "log_melspectrogram",
    "mfcc",
    "tempo",
]

#: Fraction of spectral energy below the roll-off frequency (librosa's default, Kaggle's value).
ROLL_PERCENT = 0.85
#: librosa's ``estimate_tuning`` defaults: pitches are tracked between these frequencies (Hz) ...
_TUNING_FMIN, _TUNING_FMAX = 150.0, 4000.0
#: ... at peaks above this fraction of the frame's maximum.
_TUNING_THRESHOLD = 0.1
#: librosa's ``zero_crossings`` treats samples this close to zero as zero.
_ZCR_THRESHOLD = 1e-10


@single_threaded()
def extract_features(y: np.ndarray, *, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """The 57 GTZAN features of one signal: mean and variance of each frame-wise feature, and the tempo.

    One reflect-padded STFT (``N_FFT``, ``HOP_LENGTH``, centred frames) is computed and every spectral
    feature derives from it; the mel spectrogram is shared by the MFCCs and the tempo. The matrix
    products run on one thread (``genre.threads``), so a file's features are the same bits in a batch's
    worker process, in the parent and in the served model.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono signal, ``n >= N_FFT``; converted to float32 (what ``librosa.load`` returns and Kaggle used).
    sr : int, default SAMPLE_RATE
        Sample rate of ``y``.

    Returns
    -------
    dict of str to float
        Keys are ``FEATURE_COLUMNS``, in that order. Variances are population variances (numpy's
        default), as in Kaggle's CSVs. Silence gives finite values (tempo 0).

    Raises
    ------
    AudioError
        ``kind="too_short"`` below ``N_FFT`` samples; ``kind="unreadable"`` for a non-1-D signal or
        non-finite samples.
    """
    y = check_signal(y)
    stft = spectrogram(y=y, S=None, power=None)
    magnitude = np.abs(stft)
    power = magnitude**2
    log_mel = log_melspectrogram(S=power, sr=sr)
    harmonic, percussive = hpss(y=y, S=stft)
    series = {
        "chroma_stft": chroma_stft(S=power, sr=sr),
        # Kaggle's RMS comes from the unwindowed time-domain frames, not from the STFT.
        "rms": librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP_LENGTH, pad_mode="reflect"),
        "spectral_centroid": spectral_centroid(S=magnitude, sr=sr),
        "spectral_bandwidth": spectral_bandwidth(S=magnitude, sr=sr),
        "rolloff": spectral_rolloff(S=magnitude, sr=sr),
        "zero_crossing_rate": zero_crossing_rate(y=y),
        "harmony": harmonic,
        "perceptr": percussive,
    }
    features = {}
    for name, values in series.items():
        features[f"{name}_mean"] = float(np.mean(values))
        features[f"{name}_var"] = float(np.var(values))
    features["tempo"] = tempo(S=log_mel, sr=sr)
    for i, coefficient in enumerate(mfcc(S=log_mel, n_mfcc=N_MFCC), start=1):
        features[f"mfcc{i}_mean"] = float(np.mean(coefficient))
        features[f"mfcc{i}_var"] = float(np.var(coefficient))
    return {name: features[name] for name in FEATURE_COLUMNS}


def extract_windows(
    y: np.ndarray, *, sr: int = SAMPLE_RATE, window: int = WINDOW_SAMPLES, step: int | None = None
) -> list[dict[str, float]]:
    """Features of each complete window ``y[i*step : i*step + window]``: Kaggle's 3-second rows.

    Kaggle's ``features_3_sec.csv`` cuts a clip every 3 s (66,150 samples) and keeps the first 66,149
    samples of each piece, so one sample between windows is dropped: row ``k`` of ``classical.00000``
    matches these features only for ``step = window + 1`` (the default), and a 661,794-sample clip gives
    10 rows. Each window is an independent signal, padded at its own edges, as Kaggle computed it; a
    trailing partial window is dropped.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono signal.
    sr : int, default SAMPLE_RATE
        Sample rate of ``y``.
    window : int, default WINDOW_SAMPLES
        Window length in samples, at least ``N_FFT``.
    step : int, optional
        Samples from one window's start to the next; default ``window + 1`` (Kaggle's layout). Pass
        ``window`` to tile the signal without gaps.

    Returns
    -------
    list of dict
        One ``extract_features`` result per window, in time order.

    Raises
    ------
    AudioError
        ``kind="too_short"`` when ``y`` holds no complete window.
    """
    step = window + 1 if step is None else step
    if window < N_FFT or step < 1:
        raise ValueError(f"need window >= N_FFT={N_FFT} and step >= 1, got window={window}, step={step}")
    y = check_signal(y)
    if len(y) < window:
        raise AudioError(
            f"signal of {len(y)} samples holds no complete window of {window} samples", kind="too_short"
        )
    starts = range(0, len(y) - window + 1, step)
    return [extract_features(y[start : start + window], sr=sr) for start in starts]


def warm_up() -> float:
    """Run the extractor once on a short synthetic signal, so numba compiles outside the hot path.

    The first call in a process loads (or, in a fresh environment, compiles) the numba kernels of this
    module and of librosa; call this before timing or serving.

    Returns
    -------
    float
        Seconds taken.
    """
    start = time.perf_counter()
    t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    extract_features(0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * noise, sr=SAMPLE_RATE)
    return time.perf_counter() - start


def chroma_stft(
    *, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Chromagram, as ``librosa.feature.chroma_stft`` with reflect padding.

    The tuning is estimated from the same power spectrogram, as librosa does when no tuning is given,
    but pitch tracking only visits the bins it can use (150-4000 Hz), which gives the same estimate.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (1 + N_FFT // 2, t), optional
        Power spectrogram.
    sr : int, default SAMPLE_RATE

    Returns
    -------
    numpy.ndarray, shape (12, t)
    """
    S = spectrogram(y=y, S=S, power=2.0)
    n_fft = 2 * (S.shape[0] - 1)
    filters = _chroma_filters(sr, n_fft, _estimate_tuning(S, sr=sr))
    return librosa.util.normalize(filters @ S, norm=np.inf, axis=0)


def spectral_centroid(
    *, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Spectral centroid of each frame (Hz), as ``librosa.feature.spectral_centroid``.

    Computed as a ratio of spectral moments in float64 (one matrix product) instead of normalising the
    spectrogram first; the values agree with librosa's to float rounding. A silent frame gives 0.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (1 + N_FFT // 2, t), optional
        Magnitude spectrogram.
    sr : int, default SAMPLE_RATE

    Returns
    -------
    numpy.ndarray, shape (t,)
    """
    total, first, _ = _spectral_moments(spectrogram(y=y, S=S, power=1.0), sr=sr)
    return first / total


def spectral_bandwidth(
    *, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Second-order spectral bandwidth of each frame (Hz), as ``librosa.feature.spectral_bandwidth``.

    The spread of the normalised spectrum around its centroid, from float64 spectral moments.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (1 + N_FFT // 2, t), optional
        Magnitude spectrogram.
    sr : int, default SAMPLE_RATE

    Returns
    -------
    numpy.ndarray, shape (t,)
    """
    total, first, second = _spectral_moments(spectrogram(y=y, S=S, power=1.0), sr=sr)
    centroid = first / total
    return np.sqrt(np.maximum(second / total - centroid**2, 0.0))


def spectral_rolloff(
    *, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Roll-off frequency of each frame (Hz), as ``librosa.feature.spectral_rolloff``.

    The centre frequency of the first bin where the cumulative magnitude reaches ``ROLL_PERCENT`` of the
    frame's total; the float32 cumulative sum is librosa's, so the chosen bins are identical.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (1 + N_FFT // 2, t), optional
        Magnitude spectrogram.
    sr : int, default SAMPLE_RATE

    Returns
    -------
    numpy.ndarray, shape (t,)
    """
    S = spectrogram(y=y, S=S, power=1.0)
    cumulative = np.cumsum(S, axis=0)
    reached = cumulative >= ROLL_PERCENT * cumulative[-1]
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2 * (S.shape[0] - 1))
    return freqs[np.argmax(reached, axis=0)]


def zero_crossing_rate(*, y: np.ndarray) -> np.ndarray:
    """Fraction of sign changes in each frame, as ``librosa.feature.zero_crossing_rate``.

    Frames are ``N_FFT`` samples, ``HOP_LENGTH`` apart, centred with edge padding; samples within
    1e-10 of zero count as positive. Sign changes are found once over the whole signal and counted per
    frame from a cumulative sum, instead of re-examining every sample in each of the overlapping frames;
    the counts are integers, so the result is exact.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Signal.

    Returns
    -------
    numpy.ndarray, shape (t,)
    """
    padded = np.pad(y, N_FFT // 2, mode="edge")
    negative = padded < -_ZCR_THRESHOLD
    crossings = np.concatenate(([0], np.cumsum(negative[1:] != negative[:-1])))
    starts = np.arange(0, len(padded) - N_FFT + 1, HOP_LENGTH)
    # A frame counts changes between its own consecutive samples: N_FFT - 1 pairs after its first sample.
    return (crossings[starts + N_FFT - 1] - crossings[starts]) / N_FFT


def log_melspectrogram(
    *, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Log-power (dB) mel spectrogram, as ``power_to_db(librosa.feature.melspectrogram(...))``.

    This is the representation both ``librosa.feature.mfcc`` and ``librosa.onset.onset_strength`` start
    from, so computing it once serves the MFCCs and the tempo. The mel filterbank (128 bands, Slaney) is
    sparse, and applied as a sparse matrix.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (1 + N_FFT // 2, t), optional
        Power spectrogram.
    sr : int, default SAMPLE_RATE

    Returns
    -------
    numpy.ndarray, shape (128, t)
    """
    S = spectrogram(y=y, S=S, power=2.0)
    return librosa.power_to_db(_mel_filters(sr, 2 * (S.shape[0] - 1)) @ S)


def mfcc(
    *, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE, n_mfcc: int = N_MFCC
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, as ``librosa.feature.mfcc`` with reflect padding.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (n_mels, t), optional
        Log-power mel spectrogram (``log_melspectrogram``), as librosa's ``mfcc`` takes it.
    sr : int, default SAMPLE_RATE
    n_mfcc : int, default N_MFCC

    Returns
    -------
    numpy.ndarray, shape (n_mfcc, t)
    """
    if S is None:
        S = log_melspectrogram(y=y, sr=sr)
    return librosa.feature.mfcc(S=S, n_mfcc=n_mfcc)


def tempo(*, y: np.ndarray | None = None, S: np.ndarray | None = None, sr: int = SAMPLE_RATE) -> float:
    """Global tempo (BPM) as ``librosa.beat.beat_track`` estimates it: Kaggle's ``tempo`` column.

    ``beat_track`` aggregates the onset strength over mel bands with the median (``librosa.feature.tempo``
    called on a signal uses the mean, and disagrees with Kaggle on some clips); the tempo is then the
    prior-weighted peak of the mean autocorrelation tempogram. As in ``beat_track``, a signal without
    onsets has tempo 0.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Signal; used when ``S`` is not given.
    S : numpy.ndarray, shape (n_mels, t), optional
        Log-power mel spectrogram (``log_melspectrogram``), as ``onset_strength`` takes it.
    sr : int, default SAMPLE_RATE

    Returns
    -------
    float
    """
    if S is None:
        S = log_melspectrogram(y=y, sr=sr)
    envelope = librosa.onset.onset_strength(S=S, sr=sr, hop_length=HOP_LENGTH, aggregate=np.median)
    if not envelope.any():
        return 0.0
    return float(librosa.feature.tempo(onset_envelope=envelope, sr=sr, hop_length=HOP_LENGTH)[0])


def _spectral_moments(S: np.ndarray, *, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: total magnitude and the first two frequency moments (float64); silent frames get 1, 0, 0.

    librosa leaves an all-zero column un-normalised, so its centroid and bandwidth are 0 there; giving
    such frames a total of 1 reproduces that without dividing by zero.
    """
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2 * (S.shape[0] - 1))
    total, first, second = np.stack([np.ones_like(freqs), freqs, freqs**2]) @ S.astype(np.float64)
    silent = total < np.finfo(np.float32).tiny
    return np.where(silent, 1.0, total), np.where(silent, 0.0, first), np.where(silent, 0.0, second)


def _estimate_tuning(S: np.ndarray, *, sr: int) -> float:
    """``librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=12)``, tracking pitches only where they count.

    ``piptrack`` finds local maxima above 0.1 x the frame's peak, refines them by parabolic interpolation,
    and keeps those between 150 Hz and 4 kHz; doing that on the bins of that band (and one neighbour each
    side, which the interpolation reads) rather than all 1025 gives the same pitches. The arithmetic
    follows librosa's numba stencil (float64 intermediates) so the tuning histogram sees identical values.
    """
    n_fft = 2 * (S.shape[0] - 1)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    band = np.flatnonzero((freqs >= _TUNING_FMIN) & (freqs < _TUNING_FMAX))
    lo, hi = band[0], band[-1] + 1
    ref = _TUNING_THRESHOLD * S.max(axis=0)
    band_S = S[lo - 1 : hi + 1]
    below, centre, above = band_S[:-2], band_S[1:-1], band_S[2:]
    thresholded = band_S * (band_S > ref)
    peak = (thresholded[1:-1] > thresholded[:-2]) & (thresholded[1:-1] >= thresholded[2:])
    curvature = (above + below).astype(np.float64) - 2.0 * centre.astype(np.float64)
    slope = (above - below).astype(np.float64) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(slope) >= np.abs(curvature), 0.0, -slope / curvature).astype(np.float32)
    bins, frames = np.nonzero(peak)
    if bins.size == 0:
        return 0.0
    shift = shift[bins, frames]
    pitches = ((bins + lo + shift) * float(sr) / n_fft).astype(np.float32)
    gradient = (above - below)[bins, frames] / 2.0
    mags = centre[bins, frames] + 0.5 * gradient * shift
    keep = mags >= np.median(mags)
    return float(librosa.pitch_tuning(pitches[keep], resolution=0.01, bins_per_octave=12))


@lru_cache(maxsize=128)
def _chroma_filters(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """librosa's chroma filterbank (cached: the tuning estimate takes only a hundred distinct values)."""
    return librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning)


@lru_cache(maxsize=8)
def _mel_filters(sr: int, n_fft: int) -> scipy.sparse.csr_array:
    """librosa's default mel filterbank as a sparse matrix: each band covers only a few FFT bins."""
    return scipy.sparse.csr_array(librosa.filters.mel(sr=sr, n_fft=n_fft))
