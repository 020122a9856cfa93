"""Reading audio: files and in-memory bytes decoded to mono float32, and the rule for a usable clip.

Decoding goes through libsndfile only (WAV, FLAC, OGG/Vorbis, MP3, AU; no ffmpeg): librosa's fallback to
audioread is never taken, because it turns a bad file into a slow, warning-laden failure (or a hang on
some backends) instead of an error naming the file. Every failure is an ``AudioError`` whose ``code``
says what went wrong, so batch reports, the served model and the web page need not read messages.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from genre.data.schema import SAMPLE_RATE
from genre.errors import AudioError

__all__ = [
    "AUDIO_EXTENSIONS",
    "SILENCE_PEAK",
    "check_clip",
    "load_audio",
    "load_audio_bytes",
]

#: File types the extractor reads (libsndfile decodes all of them, MP3 included, without ffmpeg).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".au", ".flac", ".ogg", ".mp3")

#: A clip whose peak amplitude stays below this (-80 dBFS) is silent: its features would be finite but
#: meaningless.
SILENCE_PEAK = 1e-4

_READABLE = "WAV, FLAC, OGG/Vorbis, MP3 or AU"


def load_audio(path: str | os.PathLike[str], *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr``, like ``librosa.load(path, sr=sr)``.

    Channels are averaged and other sample rates resampled (librosa's ``soxr_hq``), which is what
    Kaggle's extraction did. Decoding goes through libsndfile only: librosa's fallback to audioread is
    never taken, because it turns a bad file into a slow, warning-laden failure (or a hang on some
    backends) instead of an error naming the file.

    Parameters
    ----------
    path : str or path-like
        The audio file.
    sr : int, default SAMPLE_RATE
        Sample rate of the returned signal.

    Returns
    -------
    numpy.ndarray of float32, shape (n,)

    Raises
    ------
    AudioError
        ``kind="empty"`` for a 0-byte file or one that decodes to no samples, ``kind="unreadable"`` for a
        missing file or one libsndfile cannot decode.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(
            f"cannot read the file ({exc.strerror})", kind="unreadable", subject=str(path)
        ) from exc
    if size == 0:
        raise AudioError("the file is empty (0 bytes)", kind="empty", subject=str(path))
    try:
        with sf.SoundFile(path) as audio:
            # Given an open SoundFile, librosa reads through it and never falls back to audioread.
            y, _ = librosa.load(audio, sr=sr, mono=True)
    except (sf.SoundFileError, OSError) as exc:
        raise AudioError(
            f"cannot decode as audio (expected a {_READABLE} file that libsndfile can read; "
            f"got a {path.suffix or 'suffix-less'} file of {size} bytes)",
            kind="unreadable",
            subject=str(path),
        ) from exc
    if y.size == 0:
        raise AudioError("the file decodes to 0 samples", kind="empty", subject=str(path))
    return y


def load_audio_bytes(
    data: bytes, *, sr: int = SAMPLE_RATE, name: str = "audio", max_seconds: float | None = None
) -> np.ndarray:
    """Decode an audio file held in memory, as ``load_audio`` reads one from disk.

    The served model receives files as request bytes and must never touch a path on the server's disk,
    so decoding goes through libsndfile's in-memory reader, with the same mono downmix and resampling as
    ``load_audio``. The length is checked from the header before any sample is decoded, so an hour of
    audio is refused in microseconds rather than after decoding it.

    Parameters
    ----------
    data : bytes
        The whole file: WAV, FLAC, OGG/Vorbis, MP3 or AU.
    sr : int, default SAMPLE_RATE
        Sample rate of the returned signal.
    name : str, default "audio"
        What error messages call the bytes (e.g. ``"row 3"``).
    max_seconds : float, optional
        Refuse longer audio (``kind="too_long"``).

    Returns
    -------
    numpy.ndarray of float32, shape (n,)

    Raises
    ------
    AudioError
        ``kind="empty"`` for no bytes or no samples, ``kind="unreadable"`` for bytes libsndfile cannot
        decode, ``kind="too_long"`` beyond ``max_seconds``.
    """
    if not data:
        raise AudioError("no bytes (an empty file)", kind="empty", subject=name)
    try:
        with sf.SoundFile(io.BytesIO(data)) as audio:
            seconds = audio.frames / audio.samplerate
            if max_seconds is not None and seconds > max_seconds:
                raise AudioError(
                    f"{seconds:.1f} s of audio is longer than the limit of {max_seconds:g} s",
                    kind="too_long",
                    subject=name,
                )
            y, _ = librosa.load(audio, sr=sr, mono=True)
    except (sf.SoundFileError, OSError, RuntimeError) as exc:
        raise AudioError(
            f"{len(data)} bytes that are not audio libsndfile can decode (expected a {_READABLE} file)",
            kind="unreadable",
            subject=name,
        ) from exc
    if y.size == 0:
        raise AudioError("the audio decodes to 0 samples", kind="empty", subject=name)
    return y


def check_clip(y: np.ndarray, *, min_samples: int, name: str, sr: int = SAMPLE_RATE) -> None:
    """Refuse a decoded clip that cannot be classified: shorter than ``min_samples``, or silent.

    The one rule for batch extraction and for the served model, so a file refused by one is refused by
    the other with the same ``code`` (``too_short`` or ``silent``). ``name`` starts the message.
    """
    if len(y) < min_samples:
        raise AudioError(
            f"{len(y) / sr:.2f} s of audio is shorter than one {min_samples / sr:.2f} s window",
            kind="too_short",
            subject=name,
        )
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(
            f"the audio is silent (peak amplitude below {SILENCE_PEAK:g})", kind="silent", subject=name
        )
