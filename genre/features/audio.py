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
    "MAX_PEAK",
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

#: Float files (WAV, AU) can hold any sample value. Beyond this peak (120 dB over full scale) a file is no
#: recording, and its spectra overflow float32 (from peaks near 1e16).
MAX_PEAK = 1e6

_READABLE = "WAV, FLAC, OGG/Vorbis, MP3 or AU"
#: Samples (frames x channels) decoded per read: memory grows with the audio decoded, never with what a
#: header claims (its length, its channels).
_BLOCK_SAMPLES = 2**21
#: libsndfile's frame count of a file whose header gives no length (SF_COUNT_MAX).
_UNKNOWN_FRAMES = 2**63 - 1


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
        missing file, one libsndfile cannot decode, or samples that are not numbers (NaN, infinite).
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
            # Read through the open SoundFile: librosa's fallback to audioread is never taken.
            y = _read_mono(audio, name=str(path), max_seconds=None)
            native_sr = audio.samplerate
    except (sf.SoundFileError, OSError) as exc:
        raise AudioError(
            f"cannot decode as audio (expected a {_READABLE} file that libsndfile can read; "
            f"got a {path.suffix or 'suffix-less'} file of {size} bytes)",
            kind="unreadable",
            subject=str(path),
        ) from exc
    if y.size == 0:
        raise AudioError("the file decodes to 0 samples", kind="empty", subject=str(path))
    return librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")


def load_audio_bytes(
    data: bytes, *, sr: int = SAMPLE_RATE, name: str = "audio", max_seconds: float | None = None
) -> np.ndarray:
    """Decode an audio file held in memory, as ``load_audio`` reads one from disk.

    The served model receives files as request bytes and must never touch a path on the server's disk,
    so decoding goes through libsndfile's in-memory reader, with the same mono downmix and resampling as
    ``load_audio``. The length is checked from the header before any sample is decoded, so an hour of
    audio is refused in microseconds rather than after decoding it; a header that lies or gives no length
    is caught while decoding, which never goes more than one frame past ``max_seconds``.

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
        decode or samples that are not numbers (NaN, infinite), ``kind="too_long"`` beyond ``max_seconds``.
    """
    if not data:
        raise AudioError("no bytes (an empty file)", kind="empty", subject=name)
    try:
        with sf.SoundFile(io.BytesIO(data)) as audio:
            y = _read_mono(audio, name=name, max_seconds=max_seconds)
            native_sr = audio.samplerate
    except (sf.SoundFileError, OSError, RuntimeError) as exc:
        raise AudioError(
            f"{len(data)} bytes that are not audio libsndfile can decode (expected a {_READABLE} file)",
            kind="unreadable",
            subject=name,
        ) from exc
    if y.size == 0:
        raise AudioError("the audio decodes to 0 samples", kind="empty", subject=name)
    return librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")


def _read_mono(audio: sf.SoundFile, *, name: str, max_seconds: float | None) -> np.ndarray:
    """Decode an open file to mono float32 at its own rate, as ``librosa.load`` does before resampling,
    but a block at a time and never past ``max_seconds``: the one decoder of ``load_audio`` and
    ``load_audio_bytes``, so a file gives the same bits from disk and from a request (libsndfile's MP3
    decoder rounds differently after a block boundary).

    The header's frame count is checked before any sample is decoded. A header can lie (a FLAC that
    gives no length, a WAV whose data size is wrong), so memory grows with the samples actually
    decoded, never with what the header claims, and decoding stops one frame past the limit.
    """
    limit = None if max_seconds is None else int(max_seconds * audio.samplerate)
    if limit is not None and limit < audio.frames != _UNKNOWN_FRAMES:
        raise AudioError(
            f"{audio.frames / audio.samplerate:.1f} s of audio is longer than the limit of {max_seconds:g} s",
            kind="too_long",
            subject=name,
        )
    block_frames = max(1, _BLOCK_SAMPLES // audio.channels)
    blocks: list[np.ndarray] = []
    decoded = 0
    while True:
        wanted = block_frames if limit is None else min(block_frames, limit + 1 - decoded)
        block = audio.read(frames=wanted, dtype="float32", always_2d=True)
        if not len(block):
            break
        decoded += len(block)
        if limit is not None and decoded > limit:
            raise AudioError(
                f"more than {max_seconds:g} s of audio (beyond what its header says), longer than the "
                f"limit of {max_seconds:g} s",
                kind="too_long",
                subject=name,
            )
        if not np.isfinite(block).all():
            raise AudioError(
                "the file holds samples that are not numbers (NaN or infinite)",
                kind="unreadable",
                subject=name,
            )
        blocks.append(librosa.to_mono(block.T))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks or [np.zeros(0, np.float32)])


def check_clip(y: np.ndarray, *, min_samples: int, name: str, sr: int = SAMPLE_RATE) -> None:
    """Refuse a decoded clip that cannot be classified: shorter than ``min_samples``, silent, or with
    samples beyond ``MAX_PEAK`` (or not numbers).

    The one rule for batch extraction and for the served model, so a file refused by one is refused by
    the other with the same ``code`` (``too_short``, ``silent`` or ``unreadable``). ``name`` starts the
    message.
    """
    if len(y) < min_samples:
        raise AudioError(
            f"{len(y) / sr:.2f} s of audio is shorter than one {min_samples / sr:.2f} s window",
            kind="too_short",
            subject=name,
        )
    peak = float(np.max(np.abs(y)))
    if not peak <= MAX_PEAK:  # NaN included
        raise AudioError(
            f"samples reach {peak:g}, beyond {MAX_PEAK:g} times full scale: not a recording",
            kind="unreadable",
            subject=name,
        )
    if peak < SILENCE_PEAK:
        raise AudioError(
            f"the audio is silent (peak amplitude below {SILENCE_PEAK:g})", kind="silent", subject=name
        )
