"""The same song as users hold it: re-encoded, resampled, in stereo, louder or quieter, or cut short.

A genre should not change with how a recording is stored. ``VARIANTS`` names each way a 30-s clip can be
stored and ``render`` writes it as file bytes, so the reliability tests and ``benchmarks/same_song.py``
send a model exactly what a user's file would hold. Level changes are written as 16-bit PCM, as most
files are: a +6 dB copy of a loud song clips, as it would.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import librosa
import numpy as np
import soundfile as sf

__all__ = ["VARIANTS", "Variant", "render"]


@dataclass(frozen=True)
class Variant:
    """One way of storing a clip: container and codec, sample rate, channels, gain, and which part."""

    format: str = "WAV"
    subtype: str = "PCM_16"
    rate: int | None = None  # None: the clip's own
    channels: int = 1
    gain_db: float = 0.0
    seconds: float | None = None  # None: all of it
    middle: bool = False  # the part taken from the middle rather than the start


#: The variants measured, by name.
VARIANTS: dict[str, Variant] = {
    "wav (original)": Variant(),
    "mp3 44.1 kHz stereo": Variant(format="MP3", subtype="MPEG_LAYER_III", rate=44_100, channels=2),
    "wav 44.1 kHz": Variant(rate=44_100),
    "flac 48 kHz": Variant(format="FLAC", rate=48_000),
    "wav stereo": Variant(channels=2),
    "+3 dB": Variant(gain_db=3.0),
    "-3 dB": Variant(gain_db=-3.0),
    "+6 dB": Variant(gain_db=6.0),
    "-6 dB": Variant(gain_db=-6.0),
    "flac 48 kHz -3 dB": Variant(format="FLAC", rate=48_000, gain_db=-3.0),
    "first 29.5 s": Variant(seconds=29.5),
    "middle 20 s": Variant(seconds=20.0, middle=True),
    "middle 10 s": Variant(seconds=10.0, middle=True),
}


def render(y: np.ndarray, sr: int, variant: Variant) -> bytes:
    """``y`` (mono float at ``sr``) stored as ``variant``: the bytes of the file."""
    if variant.seconds is not None:
        n = int(round(variant.seconds * sr))
        start = (len(y) - n) // 2 if variant.middle else 0
        y = y[start : start + n]
    y = y * 10 ** (variant.gain_db / 20)
    rate = variant.rate or sr
    if rate != sr:
        y = librosa.resample(y, orig_sr=sr, target_sr=rate)
    y = np.clip(y, -1.0, 1.0)  # what a 16-bit or compressed file can hold
    data = np.stack([y] * variant.channels, axis=1) if variant.channels > 1 else y
    buffer = io.BytesIO()
    sf.write(buffer, data.astype(np.float32), rate, format=variant.format, subtype=variant.subtype)
    return buffer.getvalue()
