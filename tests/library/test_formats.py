"""Opus (in Ogg) and AIFF: decoded by libsndfile wherever genre reads audio (genre predict's folder scan,
the served model's bytes, the catalog), and their genre tags (ID3v2 ``TCON`` in AIFF, Vorbis ``GENRE`` in
Opus) kept, replaced and restored exactly. Writing each format's tag with its samples unchanged bit for
bit is in test_tags.py, with the other formats."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from mutagen.aiff import AIFF
from mutagen.id3 import TCON
from mutagen.oggopus import OggOpus

from genre.features import AUDIO_EXTENSIONS, load_audio, load_audio_bytes
from genre.features.extraction import scan_audio
from genre.library.tags import read_tag, restore, snapshot, write_genre
from genre.library.walk import LIBRARY_EXTENSIONS
from tests.library.audio_files import decoded, music, write_audio

SR = 22050
#: suffix -> the sample rate written (Opus takes 48 kHz, not 44.1).
RATES = {".opus": 48000, ".aiff": 44100, ".aif": 44100}


def _tone(seconds: float, sr: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.4 * np.sin(2 * np.pi * hz * t)
    return np.stack([y, 0.5 * y], axis=1).astype(np.float32)


def test_libsndfile_here_reads_opus_in_ogg_and_aiff():
    assert "AIFF" in sf.available_formats() and "OPUS" in sf.available_subtypes("OGG")


@pytest.mark.parametrize("suffix", sorted(RATES))
def test_opus_and_aiff_decode_from_disk_and_from_bytes_to_the_same_samples(tmp_path, suffix):
    path = write_audio(tmp_path / f"tone{suffix}", _tone(3.0, RATES[suffix]), RATES[suffix])
    y = load_audio(path, sr=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / SR - 3.0) < 0.05
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.fft.rfftfreq(len(y), 1 / SR)[spectrum.argmax()] - 440.0) < 2.0
    assert 0.12 < np.sqrt(np.mean(y[SR:-SR] ** 2)) < 0.3  # the mean of 0.4 and 0.2 peaks: RMS 0.21
    assert np.array_equal(load_audio_bytes(path.read_bytes(), sr=SR), y)


def test_folder_scans_take_opus_and_aiff_like_the_library_walk(tmp_path):
    for name in ("a.opus", "b.aiff", "c.AIF", "d.oga"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "cover.jpg").write_bytes(b"")
    found, skipped = scan_audio([tmp_path])
    assert [p.name for p in found] == ["a.opus", "b.aiff", "c.AIF", "d.oga"]
    assert [p.name for p in skipped] == ["cover.jpg"]
    assert set(AUDIO_EXTENSIONS) == set(LIBRARY_EXTENSIONS)


def test_existing_genres_in_aiff_and_opus_are_kept_replaced_and_restored_exactly(tmp_path):
    roots = [str(tmp_path)]
    aiff = write_audio(tmp_path / "song.aiff", music(3.0, sr=44100), 44100)
    opus = write_audio(tmp_path / "song.opus", music(3.0, sr=48000, seed=1), 48000)
    tagged = AIFF(aiff)
    tagged.add_tags()
    tagged.tags.add(TCON(encoding=0, text=["Blues"]))  # Latin-1, ID3v2.3
    tagged.save(v2_version=3)
    comments = OggOpus(opus)
    comments["genre"] = ["Jazz", "Swing"]
    comments.save()
    assert read_tag(aiff) == ("aiff", ("Blues",)) and read_tag(opus) == ("opus", ("Jazz", "Swing"))

    for path in (aiff, opus):
        before, samples = snapshot(path), decoded(path)
        assert write_genre(path, "Rock", roots=roots).action == "keep" and snapshot(path) == before
        assert write_genre(path, "Rock", roots=roots, overwrite=True).action == "write"
        assert read_tag(path)[1] == ("Rock",) and np.array_equal(decoded(path), samples)
        restore(path, before, roots=roots)
        assert snapshot(path) == before and np.array_equal(decoded(path), samples)
    assert AIFF(aiff).tags.version == (2, 3, 0) and AIFF(aiff).tags["TCON"].encoding == 0
