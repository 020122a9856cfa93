"""Batch extraction over folders: every good file lands, every bad one is reported, reruns hit the cache."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from genre.data import from_frame
from genre.data.schema import FEATURE_COLUMNS, SAMPLE_RATE, WINDOW_SAMPLES
from genre.errors import DataError
from genre.features import extract_paths, find_audio_files, gtzan57


def _tone(seconds: float, *, sr: int = SAMPLE_RATE, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq))
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


@pytest.fixture
def library(tmp_path):
    """A labelled folder with good files of several formats and rates, and one of each kind of bad file."""
    root = tmp_path / "library"
    for label in ("tones", "broken"):
        (root / label).mkdir(parents=True)
    sf.write(root / "tones" / "a440.wav", _tone(6.5), SAMPLE_RATE, subtype="PCM_16")
    sf.write(root / "tones" / "stereo44k.flac", _tone(3.2, sr=44100, freq=660, channels=2), 44100)
    sf.write(root / "tones" / "low.ogg", _tone(3.5, freq=220), SAMPLE_RATE)
    sf.write(root / "tones" / "high.mp3", _tone(3.4, freq=880), SAMPLE_RATE)
    sf.write(root / "tones" / "mid.au", _tone(3.3, freq=550), SAMPLE_RATE)
    (root / "broken" / "empty.wav").write_bytes(b"")
    (root / "broken" / "garbage.wav").write_bytes(os.urandom(4096))
    (root / "broken" / "text.mp3").write_text("this is not audio\n" * 50)
    sf.write(root / "broken" / "silent.wav", np.zeros(4 * SAMPLE_RATE), SAMPLE_RATE)
    sf.write(root / "broken" / "short.wav", _tone(1.0), SAMPLE_RATE)
    (root / "broken" / "notes.txt").write_text("ignored: not an audio extension")
    return root


def test_good_files_land_and_each_bad_file_is_reported(library):
    result = extract_paths([library], cache_dir=None)
    assert sorted(result.features["filename"]) == [
        "a440.wav",
        "high.mp3",
        "low.ogg",
        "mid.au",
        "stereo44k.flac",
    ]
    assert result.files_done == 5
    kinds = dict(
        zip(result.failures["path"].map(lambda p: p.rsplit("/", 1)[-1]), result.failures["kind"], strict=True)
    )
    assert kinds == {
        "empty.wav": "empty",
        "garbage.wav": "unreadable",
        "text.mp3": "unreadable",
        "silent.wav": "silent",
        "short.wav": "too_short",
    }
    for row in result.failures.itertuples():
        assert row.path.rsplit("/", 1)[-1] in row.message  # every message names its file
    table = result.features
    assert list(table.columns) == ["filename", "length", *FEATURE_COLUMNS, "label"]
    assert set(table["label"]) == {"tones"}
    assert np.isfinite(table[list(FEATURE_COLUMNS)].to_numpy()).all()
    # Resampled and downmixed: 3.2 s at 44.1 kHz stereo becomes 3.2 s at 22050 Hz mono.
    lengths = table.set_index("filename")["length"]
    assert lengths["stereo44k.flac"] == pytest.approx(3.2 * SAMPLE_RATE, abs=2)
    assert lengths["a440.wav"] == int(6.5 * SAMPLE_RATE)


def test_windows_give_one_row_per_complete_window(library):
    result = extract_paths([library / "tones"], windows=True, cache_dir=None)
    names = sorted(result.features["filename"])
    assert names == ["a440.0.wav", "a440.1.wav", "high.0.mp3", "low.0.ogg", "mid.0.au", "stereo44k.0.flac"]
    assert (result.features["length"] == WINDOW_SAMPLES).all()
    dataset = from_frame(
        result.features.assign(label=["a", "a", "b", "b", "c", "c"]), source="windows", windowed=True
    )
    assert dataset.frame["track"].tolist()[:2] == ["a440", "a440"]


def test_rerun_uses_the_cache_and_redoes_changed_files(library, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = extract_paths([library / "tones"], cache_dir=cache)

    def fail(*args, **kwargs):
        raise AssertionError("extractor called for a cached file")

    monkeypatch.setattr(gtzan57, "extract_features", fail)
    second = extract_paths([library / "tones"], cache_dir=cache)
    assert second.features.equals(first.features)  # the cached floats themselves, pickled and read back

    sf.write(library / "tones" / "a440.wav", _tone(5.0), SAMPLE_RATE)  # changed: must be re-extracted
    third = extract_paths([library / "tones"], cache_dir=cache)
    assert third.failures["message"].str.contains("extractor called for a cached file").any()
    assert third.files_done == 4


def test_parallel_matches_serial(library):
    """Equal bits on any CPU: the worker processes run on this machine's BLAS kernels, and every
    extraction runs with one thread per native pool (``extract_features`` is ``single_threaded``, in
    this process and in each worker), so every sum runs in the same order whatever ``n_jobs`` is."""
    serial = extract_paths([library / "tones"], cache_dir=None, n_jobs=1)
    parallel = extract_paths([library / "tones"], cache_dir=None, n_jobs=2)
    assert parallel.features.equals(serial.features)


def test_duplicate_base_names_are_refused(library, tmp_path):
    other = tmp_path / "other" / "tones"
    other.mkdir(parents=True)
    shutil.copy(library / "tones" / "a440.wav", other / "a440.wav")
    with pytest.raises(DataError, match=r"two files are both named 'a440\.wav'"):
        extract_paths([library / "tones", other], cache_dir=None)


def test_missing_path_and_no_audio_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        find_audio_files([tmp_path / "nope"])
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no audio files"):
        find_audio_files([tmp_path])


def test_all_files_failing_is_an_error_only_when_asked(library):
    result = extract_paths([library / "broken"], cache_dir=None)
    assert result.files_done == 0 and len(result.features) == 0
    with pytest.raises(DataError, match=r"no audio could be extracted \(5 failed\)"):
        result.raise_if_empty()
