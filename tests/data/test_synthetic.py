"""The embedded synthetic dataset: determinism, layout, signal sanity, distinct classes, caching, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import time

import numpy as np
import pytest
import soundfile as sf

from genre import features
from genre.data import synthetic
from genre.data.schema import SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_STEP
from genre.data.synthesis import RECIPES, synthesize_clip
from genre.data.synthetic import (
    CLASSES,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    generate_dataset,
)
from genre.errors import ConfigError

SMALL = {"clips_per_class": 2, "windows_per_clip": 1}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("synthetic") / "seed0", seed=0, **SMALL)


def _contents(root) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.wav"))}


def test_layout_counts_and_format(small_root):
    assert small_root.name == "genres_original"
    assert sorted(p.name for p in small_root.iterdir()) == sorted(CLASSES)
    for name in CLASSES:
        files = sorted((small_root / name).iterdir())
        assert [f.name for f in files] == [f"{name}.00000.wav", f"{name}.00001.wav"]
        for path in files:
            info = sf.info(path)
            assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
            assert (info.samplerate, info.frames) == (SAMPLE_RATE, WINDOW_STEP)


def test_manifest_lists_parameters_and_hashes(small_root):
    manifest = json.loads((small_root.parent / MANIFEST_NAME).read_text())
    assert manifest["version"] == GENERATOR_VERSION
    assert (manifest["seed"], manifest["clips_per_class"], manifest["windows_per_clip"]) == (0, 2, 1)
    assert manifest["classes"] == list(CLASSES)
    assert len(manifest["files"]) == 2 * len(CLASSES)
    for entry in manifest["files"]:
        data = (small_root / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["path"].startswith(f"{entry['label']}/")


def test_same_seed_gives_identical_bytes_and_another_seed_differs(small_root, tmp_path):
    again = generate_dataset(tmp_path / "again", seed=0, **SMALL)
    other = generate_dataset(tmp_path / "other", seed=1, **SMALL)
    reference = _contents(small_root)
    assert _contents(again) == reference
    differing = _contents(other)
    assert differing.keys() == reference.keys()
    assert all(differing[key] != reference[key] for key in reference)


def test_a_clip_does_not_depend_on_how_many_are_generated(small_root, tmp_path):
    larger = _contents(generate_dataset(tmp_path, seed=0, clips_per_class=3, windows_per_clip=1))
    assert len(larger) == 3 * len(CLASSES)
    assert {key: larger[key] for key in _contents(small_root)} == _contents(small_root)


@pytest.mark.parametrize("name", CLASSES)
def test_clip_length_dtype_and_level(name):
    rng = np.random.default_rng([7, CLASSES.index(name)])
    y = synthesize_clip(name, rng=rng, n_samples=3 * WINDOW_SAMPLES, sr=SAMPLE_RATE)
    assert y.shape == (3 * WINDOW_SAMPLES,)
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    peak_db = 20 * np.log10(np.abs(y).max())
    assert -16.01 <= peak_db <= -0.99  # loud enough to be far from silent, never near full scale


def test_written_clips_never_touch_full_scale(small_root):
    for path in small_root.rglob("*.wav"):
        pcm, _ = sf.read(path, dtype="int16")
        assert np.abs(pcm.astype(np.int32)).max() < 32000, path.name


def test_multi_window_clips_are_whole_windows(tmp_path):
    root = generate_dataset(tmp_path, seed=3, clips_per_class=2, windows_per_clip=3)
    paths = sorted(root.rglob("*.wav"))
    assert {sf.info(path).frames for path in paths} == {3 * WINDOW_STEP}
    y = features.load_audio(paths[0])
    assert len(features.extract_windows(y)) == 3  # Kaggle's window layout fits exactly three


def _descriptors(y: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Plain-numpy descriptors a listener would notice: brightness, noisiness, bass, dynamics, onsets."""
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    energy = power.sum(axis=1)
    flux = np.maximum(np.diff(np.log(power), axis=0), 0).mean(axis=1)
    return np.array(
        [
            np.log((power * freqs).sum(axis=1) / energy).mean(),  # log spectral centroid
            (np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)).mean(),  # spectral flatness
            (power[:, freqs < 250].sum(axis=1) / energy).mean(),  # share of energy below 250 Hz
            np.log(energy).std(),  # loudness fluctuation: sustained vs percussive
            flux.mean(),  # onset strength
            flux.std() / flux.mean(),  # how peaky the onsets are
        ]
    )


DESCRIPTORS = ("log_centroid", "flatness", "low_ratio", "energy_spread", "flux", "flux_peakiness")


@pytest.fixture(scope="module")
def descriptors() -> dict[str, np.ndarray]:
    """Descriptors of six one-window clips per class, from fixed seeds."""

    def clip(k: int, i: int) -> np.ndarray:
        rng = np.random.default_rng([11, k, i])
        return synthesize_clip(CLASSES[k], rng=rng, n_samples=WINDOW_SAMPLES, sr=SAMPLE_RATE)

    return {name: np.array([_descriptors(clip(k, i)) for i in range(6)]) for k, name in enumerate(CLASSES)}


def test_every_pair_of_classes_differs_in_some_descriptor(descriptors):
    for a, b in itertools.combinations(CLASSES, 2):
        pooled = np.sqrt((descriptors[a].var(axis=0) + descriptors[b].var(axis=0)) / 2)
        effect = np.abs(descriptors[a].mean(axis=0) - descriptors[b].mean(axis=0)) / pooled
        detail = dict(zip(DESCRIPTORS, effect.round(2), strict=True))
        assert effect.max() > 1.2, f"{a} and {b} overlap in every descriptor: {detail}"


@pytest.mark.parametrize(
    ("descriptor", "lower", "higher"),
    [
        ("flatness", "drone", "noise_wash"),  # a held chord is tonal, a noise wash is not
        ("flatness", "bowed_pad", "sparse_clicks"),
        ("low_ratio", "plucked_arpeggio", "drone"),  # the drone sits in the bass, the arpeggio above it
        ("energy_spread", "distorted_power", "offbeat_chords"),  # a wall of chords vs stabs with gaps
        ("energy_spread", "noise_wash", "breakbeat"),
        ("log_centroid", "four_on_the_floor", "noise_wash"),
        ("flux_peakiness", "bowed_pad", "four_on_the_floor"),  # one chord per bar vs a kick per beat
    ],
)
def test_recipes_sound_like_their_names(descriptors, descriptor, lower, higher):
    column = DESCRIPTORS.index(descriptor)
    assert descriptors[lower][:, column].max() < descriptors[higher][:, column].min()


def test_recipes_are_documented_and_match_the_class_list():
    assert CLASSES == tuple(RECIPES) and len(CLASSES) == 10
    for name, recipe in RECIPES.items():
        assert name.isidentifier() and name == name.lower()
        assert recipe.summary and "\n" not in recipe.summary


def test_rerun_with_same_parameters_does_not_regenerate(tmp_path, monkeypatch):
    root = generate_dataset(tmp_path, seed=5, **SMALL)
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()}

    def fail(*args, **kwargs):
        raise AssertionError("synthesize_clip called on a cached rerun")

    monkeypatch.setattr(synthetic, "synthesize_clip", fail)
    assert generate_dataset(tmp_path, seed=5, **SMALL) == root
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()} == stamps


def test_rerun_repairs_a_damaged_file(tmp_path):
    root = generate_dataset(tmp_path, seed=5, **SMALL)
    original = _contents(root)
    damaged = root / "drone" / "drone.00001.wav"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    generate_dataset(tmp_path, seed=5, **SMALL)
    assert _contents(root) == original


def test_changed_parameters_replace_the_set_without_leftovers(tmp_path):
    generate_dataset(tmp_path, seed=5, clips_per_class=3, windows_per_clip=1)
    root = generate_dataset(tmp_path, seed=6, **SMALL)
    assert len(_contents(root)) == 2 * len(CLASSES)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert (manifest["seed"], manifest["clips_per_class"]) == (6, 2)
    assert _contents(root) == _contents(generate_dataset(tmp_path / "fresh", seed=6, **SMALL))


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"clips_per_class": 1}, "clips_per_class"),
        ({"clips_per_class": 2.5}, "clips_per_class"),
        ({"windows_per_clip": 0}, "windows_per_clip"),
        ({"windows_per_clip": True}, "windows_per_clip"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_raise_config_error(tmp_path, kwargs, parameter):
    with pytest.raises(ConfigError, match=parameter):
        generate_dataset(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_unknown_class_raises_config_error():
    with pytest.raises(ConfigError, match="unknown synthetic class 'polka'.*drone"):
        synthesize_clip("polka", rng=np.random.default_rng(0), n_samples=100, sr=SAMPLE_RATE)


def test_bad_clip_length_raises_config_error():
    with pytest.raises(ConfigError, match="n_samples"):
        synthesize_clip("drone", rng=np.random.default_rng(0), n_samples=0, sr=SAMPLE_RATE)


def test_real_features_give_a_good_but_imperfect_classifier(tmp_path):
    """The point of the recipes: on the 57 features, models do well but the task is not trivial."""
    features = pytest.importorskip("genre.features", reason="the feature extractor is not in this checkout")
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    root = generate_dataset(tmp_path, seed=0, clips_per_class=8, windows_per_clip=1)
    rows, labels, tracks = [], [], []
    for path in sorted(root.rglob("*.wav")):
        for window in features.extract_windows(features.load_audio(path)):
            rows.append(list(window.values()))
            labels.append(path.parent.name)
            tracks.append(path.stem)
    folds = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), SVC())
    accuracy = cross_val_score(model, np.array(rows), labels, groups=tracks, cv=folds).mean()
    assert 0.6 < accuracy < 1.0


def _generate_and_read(out: str, start: float) -> list[str]:
    """In a worker process: wait for the common start, generate, then read every clip back at once (as an
    extraction that starts right after ``generate_dataset`` returns does)."""
    time.sleep(max(0.0, start - time.time()))
    root = generate_dataset(out, clips_per_class=3, windows_per_clip=1)
    return sorted(
        f"{p.relative_to(root)}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in root.rglob("*.wav")
    )


def test_processes_generating_at_once_each_get_the_whole_dataset(tmp_path):
    """Three processes asked for the same set on an empty cache, at the same moment, as a study's
    workers are: each must find every clip intact when its call returns, none half written or deleted by
    another (an Optuna worker once read 2 of a class's 3 clips and stopped)."""
    expected = _generate_and_read(str(tmp_path / "alone"), 0.0)
    start = time.time() + 1.0  # after the workers have started
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        seen = pool.starmap(_generate_and_read, [(str(tmp_path / "shared"), start)] * 3)
    assert all(listing == expected for listing in seen)
