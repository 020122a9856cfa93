"""Small audio files in every format a library holds, and their decoded samples, for the library tests.

MP3, FLAC, OGG Vorbis, Opus, WAV and AIFF are written by soundfile (libsndfile), M4A (AAC) by PyAV, whose
wheel carries FFmpeg's encoder.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf

from genre.data.synthesis import CLASSES, synthesize_clip

#: suffix -> (soundfile format, subtype); M4A is written by PyAV.
SOUNDFILE_FORMATS = {
    ".mp3": ("MP3", None),
    ".flac": ("FLAC", None),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".wav": ("WAV", None),
    ".aiff": ("AIFF", None),
    ".aif": ("AIFF", None),
    ".au": ("AU", None),
}
SUFFIXES = (".mp3", ".flac", ".ogg", ".opus", ".wav", ".aiff", ".m4a")


def music(seconds: float, *, sr: int = 22050, seed: int = 0, style: str = "breakbeat") -> np.ndarray:
    """Stereo float32 of the package's synthetic music (channels differ, so a downmix is exercised)."""
    y = synthesize_clip(style, rng=np.random.default_rng(seed), n_samples=int(seconds * sr), sr=sr)
    y = 0.5 * y / max(float(np.max(np.abs(y))), 1e-9)
    return np.stack([y, 0.8 * y], axis=1).astype(np.float32)


def write_audio(path: Path, y: np.ndarray, sr: int) -> Path:
    """Write ``y`` (frames x channels) as ``path``'s suffix says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".m4a":
        _write_m4a(path, y, sr)
    else:
        fmt, subtype = SOUNDFILE_FORMATS[path.suffix]
        if subtype == "OPUS" and sr not in (8000, 12000, 16000, 24000, 48000):
            raise ValueError(f"Opus takes 8, 12, 16, 24 or 48 kHz, not {sr} Hz")
        # In blocks: libsndfile 1.2.2 segfaults writing about a minute or more of OGG Vorbis in one call.
        with sf.SoundFile(path, "w", sr, y.shape[1], format=fmt, subtype=subtype) as out:
            for start in range(0, len(y), 2**16):
                out.write(y[start : start + 2**16])
    return path


def _write_m4a(path: Path, y: np.ndarray, sr: int) -> None:
    layout = {1: "mono", 2: "stereo"}[y.shape[1]]
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        for start in range(0, len(y), 2**16):
            block = np.ascontiguousarray(y[start : start + 2**16].T)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def decoded(path: Path) -> np.ndarray:
    """Every decoded sample of every channel, as the decoder gives them (no downmix, no resampling)."""
    if path.suffix == ".m4a":
        with av.open(str(path)) as container:
            return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    return sf.read(path, dtype="float32", always_2d=True)[0]


def library(root: Path, *, seconds: float = 4.0, sr: int = 22050) -> dict[str, Path]:
    """One file of each format under ``root``, each a different piece of synthetic music."""
    files = {}
    for i, suffix in enumerate(SUFFIXES):
        rate = 48000 if suffix == ".opus" else sr
        files[suffix] = write_audio(
            root / f"song{suffix}", music(seconds, sr=rate, seed=i, style=CLASSES[i]), rate
        )
    return files
