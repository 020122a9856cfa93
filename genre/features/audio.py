"""Reading audio: files and in-memory bytes decoded to mono float32, and the rule for a usable clip.

Decoding goes through libsndfile (WAV, AIFF, FLAC, OGG Vorbis and Opus, MP3, AU; no ffmpeg): librosa's
fallback to audioread is never taken, because it turns a bad file into a slow, warning-laden failure (or
a hang on some backends) instead of an error naming the file. What libsndfile refuses is tried with PyAV,
whose wheel carries FFmpeg's decoders, but only for M4A/MP4 and ADTS AAC, recognised by their first bytes
and opened as that format alone: FFmpeg's own format guessing would also open playlists and other formats
that read further files or URLs named inside the bytes, which a served model must never do. Every failure
is an ``AudioError`` whose ``code`` says what went wrong, so batch reports, the served model and the web
page need not read messages.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO

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

#: File types the extractor reads: libsndfile decodes all but the last two (Opus in Ogg and AIFF included;
#: libsndfile 1.2.2 lists both in ``soundfile.available_formats()`` and ``available_subtypes("OGG")``),
#: PyAV M4A and AAC. The same list as the library's walk (genre.library.walk.LIBRARY_EXTENSIONS).
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".aiff", ".aif", ".au", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac",
)  # fmt: skip

#: A clip whose peak amplitude stays below this (-80 dBFS) is silent: its features would be finite but
#: meaningless.
SILENCE_PEAK = 1e-4

#: Float files (WAV, AU) can hold any sample value. Beyond this peak (120 dB over full scale) a file is no
#: recording, and its spectra overflow float32 (from peaks near 1e16).
MAX_PEAK = 1e6

_READABLE = "WAV, AIFF, FLAC, OGG Vorbis or Opus, MP3, AU or M4A/AAC"
#: Samples (frames x channels) decoded per read: memory grows with the audio decoded, never with what a
#: header claims (its length, its channels).
_BLOCK_SAMPLES = 2**21
#: libsndfile's frame count of a file whose header gives no length (SF_COUNT_MAX).
_UNKNOWN_FRAMES = 2**63 - 1


def load_audio(path: str | os.PathLike[str], *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr``, like ``librosa.load(path, sr=sr)``.

    Channels are averaged and other sample rates resampled (librosa's ``soxr_hq``), which is what
    Kaggle's extraction did. Decoding goes through libsndfile, and PyAV for M4A and AAC (see the
    module's docstring): librosa's fallback to audioread is never taken.

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
        missing file, one neither decoder reads, or samples that are not numbers (NaN, infinite).
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
        try:
            with open(path, "rb") as source:
                decoded = _read_mono_av(source, name=str(path), max_seconds=None)
        except OSError:
            decoded = None
        if decoded is not None:
            y, native_sr = decoded
        else:
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
        The whole file: WAV, AIFF, FLAC, OGG Vorbis or Opus, MP3, AU, or M4A/AAC (through PyAV).
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
        decoded = _read_mono_av(io.BytesIO(data), name=name, max_seconds=max_seconds)
        if decoded is None:
            raise AudioError(
                f"{len(data)} bytes that are not audio libsndfile can decode (expected a {_READABLE} file)",
                kind="unreadable",
                subject=name,
            ) from exc
        y, native_sr = decoded
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
        _check_block(block, decoded=decoded, limit=limit, max_seconds=max_seconds, name=name)
        # Stereo, most music, averaged by hand: (left + right) / 2 is the bits of librosa.to_mono, whose
        # mean over the short, strided channel axis is many times slower and was half of an MP3's decoding.
        stereo = audio.channels == 2
        blocks.append((block[:, 0] + block[:, 1]) / np.float32(2) if stereo else librosa.to_mono(block.T))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks or [np.zeros(0, np.float32)])


def _check_block(
    block: np.ndarray, *, decoded: int, limit: int | None, max_seconds: float | None, name: str
) -> None:
    """Refuse a decoded block that takes the file past ``limit`` samples (``max_seconds``), or that holds
    samples that are not numbers: both decoders' one rule."""
    if limit is not None and decoded > limit:
        raise AudioError(
            f"more than {max_seconds:g} s of audio (beyond what its header says), longer than the "
            f"limit of {max_seconds:g} s",
            kind="too_long",
            subject=name,
        )
    if not np.isfinite(block).all():
        raise AudioError(
            "the file holds samples that are not numbers (NaN or infinite)", kind="unreadable", subject=name
        )


def _container(head: bytes) -> str | None:
    """The FFmpeg demuxer for a file starting with ``head``: ``mov`` for M4A/MP4 (an ``ftyp`` box
    first), ``aac`` for ADTS AAC (a sync word with MPEG layer 0); None for anything else."""
    if head[4:8] == b"ftyp":
        return "mov"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"
    return None


def _read_mono_av(source: BinaryIO, *, name: str, max_seconds: float | None) -> tuple[np.ndarray, int] | None:
    """Decode an M4A/MP4 or ADTS AAC file with PyAV to mono float32 at its own rate, as ``_read_mono``
    does (channels averaged by ``librosa.to_mono``, integer samples scaled as libsndfile scales them);
    None when the file is neither format, an ``AudioError`` when it is one but cannot be decoded.

    The format is forced (``_container``), never guessed, and MP4 data references to other files stay
    off (FFmpeg's default), so nothing but ``source`` is read. The length is checked from the header
    first, and decoding stops one frame past ``max_seconds`` whatever the header says.
    """
    fmt = _container(source.read(12))
    if fmt is None:
        return None
    source.seek(0)
    import av  # imported here: only files libsndfile refuses pay for FFmpeg's libraries

    try:
        with av.open(source, format=fmt, options={"enable_drefs": "0"}) as container:
            if not container.streams.audio:
                raise AudioError(
                    f"an {fmt.upper()} file with no audio stream", kind="unreadable", subject=name
                )
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            seconds = container.duration / av.time_base if container.duration else None
            if max_seconds is not None and seconds is not None and seconds > max_seconds:
                raise AudioError(
                    f"{seconds:.1f} s of audio is longer than the limit of {max_seconds:g} s",
                    kind="too_long",
                    subject=name,
                )
            limit = None if max_seconds is None else int(max_seconds * rate)
            blocks: list[np.ndarray] = []
            decoded = 0
            for frame in container.decode(stream):
                block = _float_channels(frame)
                decoded += block.shape[1]
                _check_block(block, decoded=decoded, limit=limit, max_seconds=max_seconds, name=name)
                blocks.append(librosa.to_mono(block))
    except (av.FFmpegError, OSError, ValueError) as exc:
        if isinstance(exc, AudioError):
            raise
        raise AudioError(
            f"an {fmt.upper()} file that FFmpeg cannot decode ({str(exc).splitlines()[0][:120]})",
            kind="unreadable",
            subject=name,
        ) from None
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), int(rate)


def _float_channels(frame: Any) -> np.ndarray:
    """A decoded frame as float32 of shape (channels, samples); integer samples over 2^(bits-1), as
    libsndfile reads PCM as float."""
    values = frame.to_ndarray()
    if not frame.format.is_planar:
        values = values.reshape(-1, len(frame.layout.channels)).T
    if values.dtype == np.uint8:
        return (values.astype(np.float32) - 128) / 128
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float32) / np.float32(2 ** (8 * values.dtype.itemsize - 1))
    return values.astype(np.float32, copy=False)


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
