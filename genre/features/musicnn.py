"""musicnn (Pons & Serra 2019), model MSD_musicnn: the 50 MSD tags of 3-second patches, without TF1.

The numbers of ``musicnn.extractor.extractor(file, model="MSD_musicnn", input_length=3,
input_overlap=1)``: the same log-mel patches (:func:`log_mel`, :func:`log_mel_patches`), and the same
network run in NumPy from the installed wheel's weights (:mod:`genre.features.musicnn_weights`), from a
signal resampled to 16 kHz as musicnn resampled it (:mod:`genre.features.resample`), so that models
trained on musicnn's published taggrams see features made the same way. A clip gives one row of tag
probabilities per patch, its taggram (:func:`taggram`); :func:`extract_musicnn` reduces it to the mean
and standard deviation of every tag over the clip. Those 100 features put an SVM at 0.80 accuracy on
GTZAN's filtered test split, against 0.52 for Kaggle's 57 features (../shared/data/gtzan/SOURCES.md).
A 30-s clip takes a little over half a second of one core, nearly all of it the forward pass (0.03 s
resampling; ``benchmarks/musicnn_speed.py``); the first call in a process reads the weights (and, the
first time ever, converts them, which imports TensorFlow once).
"""

# ``S`` for a spectrogram argument is librosa's API, which these functions mirror on purpose.
# ruff: noqa: N803, N806

from __future__ import annotations

import time

import librosa
import numpy as np

# The tags and the 100 column names live in the schema, which feature tables and served signatures share.
from genre.data.schema import MSD_TAGS, MUSICNN_COLUMNS
from genre.data.schema import MUSICNN_TAGS as TAG_NAMES
from genre.errors import AudioError
from genre.features.musicnn_weights import N_MELS, PATCH_FRAMES, forward, get_model
from genre.features.resample import resample_musicnn
from genre.threads import single_threaded

__all__ = [
    "MSD_TAGS",
    "MUSICNN_COLUMNS",
    "MUSICNN_SAMPLE_RATE",
    "N_MELS",
    "PATCH_FRAMES",
    "PATCH_HOP",
    "TAG_NAMES",
    "extract_musicnn",
    "log_mel",
    "log_mel_patches",
    "patch_starts",
    "taggram",
    "warm_up",
]

#: musicnn's sample rate, and its mel spectrogram's FFT and hop (``musicnn/configuration.py``; 96 bands).
MUSICNN_SAMPLE_RATE = 16_000
N_FFT, HOP_LENGTH = 512, 256
#: Frames between patch starts, ``librosa.time_to_frames(1, ...)``: 61, not 62, because librosa
#: subtracts half a window first (``PATCH_FRAMES``, 187, is ``time_to_frames(3, ...) + 1``).
PATCH_HOP = 61
#: Smallest signal at 16 kHz that holds one patch: centred frames are ``1 + n // HOP_LENGTH``.
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH


def _check(y: np.ndarray) -> np.ndarray:
    """``y`` as contiguous float32, or an ``AudioError`` saying what is wrong with it."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"expected a mono signal of shape (n,), got shape {y.shape}", kind="unreadable")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError(f"signal has {int(np.count_nonzero(~np.isfinite(y)))} NaN or infinite samples")
    return y


@single_threaded()
def log_mel(*, y: np.ndarray, sr: int) -> np.ndarray:
    """musicnn's input representation of a signal: log-compressed mel spectrogram, one row per frame.

    As ``musicnn.extractor.batch_data``: the signal at 16 kHz, ``librosa.feature.melspectrogram`` with
    ``n_fft=512, hop_length=256, n_mels=96`` (centred frames, reflect padding: musicnn ran librosa 0.7,
    before constant padding became the default), cast to float16, then ``log10(10000 * x + 1)``. The
    float16 rounding is kept, as the model saw it. The logarithm is taken in float32: under numpy < 1.17
    ``10000 * float16_array`` was promoted to float32; numpy 2 keeps it float16, where it overflows to
    infinity above 6.55 (1,426 mel bins of blues.00000 do, and the taggram becomes NaN).

    A signal at another rate is resampled as musicnn's ``librosa.load(file, sr=16000)`` did, with
    resampy 0.2's ``"kaiser_best"`` (:func:`genre.features.resample.resample_musicnn`, to float32
    rounding). Models are trained on musicnn's published taggrams and applied to features computed here
    from users' audio, so both must come from the same inputs: librosa's default today, soxr, has another
    anti-aliasing roll-off, and with it the top 4 mel bands (7.3-8 kHz) differ by up to 0.46 in log10
    units and tag probabilities by up to 0.056 on GTZAN clips. With musicnn's resampling the original
    taggrams are reproduced to 8.1e-6 (``tests/features/test_musicnn.py``).

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono signal.
    sr : int
        Sample rate of ``y``.

    Returns
    -------
    numpy.ndarray of float32, shape (1 + n16 // HOP_LENGTH, N_MELS)
        ``n16`` is the length at 16 kHz.

    Raises
    ------
    AudioError
        ``kind="too_short"`` below one 512-sample frame at 16 kHz; ``kind="unreadable"`` for a non-1-D
        or non-finite signal.
    """
    y = _check(y)
    if np.ceil(len(y) * MUSICNN_SAMPLE_RATE / sr) < N_FFT:
        raise AudioError(
            f"signal of {len(y)} samples at {sr} Hz is shorter than one {N_FFT}-sample frame at 16 kHz",
            kind="too_short",
        )
    if sr != MUSICNN_SAMPLE_RATE:
        y = resample_musicnn(y, orig_sr=sr, target_sr=MUSICNN_SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(
        y=y, sr=MUSICNN_SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, pad_mode="reflect"
    )
    return np.log10(np.float32(10_000) * mel.T.astype(np.float16).astype(np.float32) + np.float32(1))


def patch_starts(n_frames: int) -> np.ndarray:
    """First frame of each patch of a ``n_frames``-frame representation: every ``PATCH_HOP`` while one fits.

    Raises
    ------
    AudioError
        ``kind="too_short"`` below ``PATCH_FRAMES`` frames (2.98 s).
    """
    if n_frames < PATCH_FRAMES:
        raise AudioError(
            f"signal of {n_frames} musicnn frames ({(n_frames - 1) * HOP_LENGTH / MUSICNN_SAMPLE_RATE:.2f} s)"
            f" is shorter than one {PATCH_FRAMES}-frame patch ({MIN_SAMPLES / MUSICNN_SAMPLE_RATE:.2f} s)",
            kind="too_short",
        )
    return np.arange(0, n_frames - PATCH_FRAMES + 1, PATCH_HOP)


def log_mel_patches(
    *, y: np.ndarray | None = None, sr: int | None = None, S: np.ndarray | None = None
) -> np.ndarray:
    """musicnn's input patches: 3-s windows of :func:`log_mel` every second, as ``input_overlap=1`` cuts them.

    Parameters
    ----------
    y : numpy.ndarray, optional
        Mono signal; used when ``S`` is not given.
    sr : int, optional
        Sample rate of ``y`` (required with ``y``).
    S : numpy.ndarray, shape (t, N_MELS), optional
        A :func:`log_mel` representation.

    Returns
    -------
    numpy.ndarray of float32, shape (n_patches, PATCH_FRAMES, N_MELS)

    Raises
    ------
    AudioError
        ``kind="too_short"`` when not one patch fits.
    """
    S = _representation(y=y, sr=sr, S=S)
    starts = patch_starts(len(S))
    return S[starts[:, None] + np.arange(PATCH_FRAMES)]


def _representation(*, y: np.ndarray | None, sr: int | None, S: np.ndarray | None) -> np.ndarray:
    if S is not None:
        S = np.asarray(S, dtype=np.float32)
        if S.ndim != 2 or S.shape[1] != N_MELS:
            raise ValueError(f"S must be a (frames, {N_MELS}) musicnn log-mel representation, got {S.shape}")
        return S
    if y is None or sr is None:
        raise TypeError("pass the signal y= with its sample rate sr=, or a log-mel representation S=")
    return log_mel(y=y, sr=sr)


@single_threaded()
def taggram(
    y: np.ndarray | None = None,
    *,
    sr: int | None = None,
    S: np.ndarray | None = None,
    patches: np.ndarray | None = None,
    return_penultimate: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """MSD_musicnn's tag probabilities for each 3-s patch of a signal: musicnn's taggram.

    From a signal or its :func:`log_mel` representation, the patches are windows of one spectrogram and
    their overlap is exploited; given ``patches`` (any windows, e.g. from :func:`log_mel_patches`), each
    is evaluated on its own. Both give the same values. Runs on one thread (``genre.threads``).

    Parameters
    ----------
    y : numpy.ndarray, shape (n,), optional
        Mono signal, at any rate (resampled to 16 kHz, see :func:`log_mel`).
    sr : int, optional
        Sample rate of ``y`` (required with ``y``).
    S : numpy.ndarray, shape (t, N_MELS), optional
        A :func:`log_mel` representation, instead of ``y``.
    patches : numpy.ndarray, shape (n_patches, PATCH_FRAMES, N_MELS), optional
        Log-mel patches, instead of ``y`` or ``S``.
    return_penultimate : bool, default False
        Also return the 200-unit penultimate layer (after its batch norm: musicnn's ``penultimate``).

    Returns
    -------
    numpy.ndarray of float32, shape (n_patches, 50)
        Sigmoid probabilities, columns in ``MSD_TAGS`` order; with ``return_penultimate``, a tuple of it
        and the (n_patches, 200) penultimate activations.

    Raises
    ------
    AudioError
        ``kind="too_short"`` for a signal shorter than one patch (2.98 s).
    """
    if patches is not None:
        patches = np.asarray(patches, dtype=np.float32)
        if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS) or not len(patches):
            raise ValueError(f"patches must have shape (n, {PATCH_FRAMES}, {N_MELS}), got {patches.shape}")
        rep, starts = patches.reshape(-1, N_MELS), np.arange(len(patches)) * PATCH_FRAMES
    else:
        rep = _representation(y=y, sr=sr, S=S)
        starts = patch_starts(len(rep))
    probabilities, penultimate = forward(get_model(), rep, starts)
    return (probabilities, penultimate) if return_penultimate else probabilities


def extract_musicnn(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """The 100 musicnn features of a clip: mean and standard deviation of each tag over its patches.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono signal of at least 2.98 s, at any rate (genre decodes at 22,050 Hz).
    sr : int
        Sample rate of ``y``.

    Returns
    -------
    dict of str to float
        Keys are ``MUSICNN_COLUMNS``, in that order; standard deviations are population ones (ddof=0).

    Raises
    ------
    AudioError
        ``kind="too_short"`` below one patch; ``kind="unreadable"`` for a non-1-D or non-finite signal.
    """
    tags = taggram(y, sr=sr).astype(np.float64)
    stats = np.stack([tags.mean(axis=0), tags.std(axis=0)], axis=1).ravel()
    return dict(zip(MUSICNN_COLUMNS, stats.tolist(), strict=True))


def warm_up() -> float:
    """Load the weights (converting the checkpoint on first use ever) and run one patch; returns seconds."""
    start = time.perf_counter()
    t = np.arange(MIN_SAMPLES, dtype=np.float32) / MUSICNN_SAMPLE_RATE
    taggram(0.3 * np.sin(2 * np.pi * 440.0 * t), sr=MUSICNN_SAMPLE_RATE)
    return time.perf_counter() - start
