"""Tests of genre.features.musicnn: names, patching, the weights cache, a TensorFlow reference, and parity
with the original musicnn's taggrams of real GTZAN clips.

Tests that need the weights skip when the ``musicnn`` wheel is not installed
(``pip install --no-deps musicnn==0.1.0``); the parity tests need ../shared and carry the ``gtzan`` marker.
"""

# ``S`` for a spectrogram is librosa's name, which genre.features mirrors; ``X`` the taggram file's.
# ruff: noqa: N806

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal

from genre.errors import AudioError, ConfigError
from genre.features import musicnn, musicnn_weights
from genre.features.audio import load_audio
from tests.conftest import GTZAN_AUDIO, GTZAN_DIR, require

ROOT = Path(__file__).resolve().parents[2]
SR = 22_050
TAGGRAMS = GTZAN_DIR / "musicnn" / "training_data_GTZAN_MSDmusicnn_taggram.npz"
#: The clips of ../shared/data/gtzan/audio that the original musicnn's taggram file holds.
PARITY_CLIPS = ("jazz/jazz.00000", "jazz/jazz.00001", "rock/rock.00000", "rock/rock.00001")


def _signal(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A test signal with tonal, broadband and percussive parts, so every filter of the model has work."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    chirp = scipy.signal.chirp(t, f0=110, t1=t[-1], f1=3520, method="logarithmic")
    clicks = librosa.clicks(times=np.arange(0, seconds, 0.5), sr=sr, length=len(t))
    return (0.3 * chirp + 0.3 * clicks + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def weights(cache_dir) -> dict[str, np.ndarray]:
    """The converted weights in the session's cache (converting the checkpoint once), or a skip."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        try:
            return musicnn_weights.load_weights()
        except ConfigError as error:
            if error.kind != "missing_dependency":
                raise
            pytest.skip(str(error))


@pytest.fixture(scope="module")
def tf_taggram(weights):
    """``benchmarks/musicnn_speed.py``'s TensorFlow transcription of musicnn's models.py, same weights."""
    spec = importlib.util.spec_from_file_location("musicnn_speed", ROOT / "benchmarks" / "musicnn_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda patches: module.tf_taggram(weights, patches)


def test_tag_names_are_identifiers_in_msd_order():
    assert len(musicnn.MSD_TAGS) == len(musicnn.TAG_NAMES) == 50
    assert musicnn.MSD_TAGS[:3] == ("rock", "pop", "alternative") and musicnn.MSD_TAGS[-1] == "happy"
    named = dict(zip(musicnn.MSD_TAGS, musicnn.TAG_NAMES, strict=True))
    assert named["Hip-Hop"] == "hip_hop"
    assert named["female vocalists"] == "female_vocalists"
    assert named["female vocalist"] == "female_vocalist"
    assert named["00s"] == "00s"
    assert named["Progressive rock"] == "progressive_rock"
    assert named["Mellow"] == "mellow"
    assert all(re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", name) for name in musicnn.TAG_NAMES)
    assert len(set(musicnn.TAG_NAMES)) == 50


def test_columns_are_mean_then_std_per_tag():
    columns = musicnn.MUSICNN_COLUMNS
    assert len(columns) == len(set(columns)) == 100
    assert columns[:4] == ("musicnn_rock_mean", "musicnn_rock_std", "musicnn_pop_mean", "musicnn_pop_std")
    assert columns[-2:] == ("musicnn_happy_mean", "musicnn_happy_std")
    assert "musicnn_hip_hop_std" in columns


def test_patch_geometry_is_musicnn_extractors():
    """3-s patches every 1 s, in frames as musicnn's extractor converts them (librosa subtracts n_fft / 2)."""
    to_frames = {"sr": 16_000, "n_fft": 512, "hop_length": 256}
    assert musicnn.PATCH_FRAMES == librosa.time_to_frames(3, **to_frames) + 1 == 187
    assert musicnn.PATCH_HOP == librosa.time_to_frames(1, **to_frames) == 61
    assert musicnn.MUSICNN_SAMPLE_RATE == 16_000


@pytest.mark.parametrize(
    ("samples", "sr", "patches"),
    [
        (661_794, SR, 28),  # a GTZAN clip: 28 patches, as in musicnn's own GTZAN taggrams
        (31 * SR, SR, 29),  # 1938 frames at 16 kHz: starts 0, 61, ..., 1708
        (musicnn.MIN_SAMPLES, 16_000, 1),  # exactly 187 frames
    ],
)
def test_patch_count(samples, sr, patches):
    y = _signal(samples / sr, sr=sr)[:samples]
    assert len(y) == samples
    cut = musicnn.log_mel_patches(y=y, sr=sr)
    assert cut.shape == (patches, musicnn.PATCH_FRAMES, musicnn.N_MELS) and cut.dtype == np.float32


def test_log_mel_keeps_musicnns_float16_rounding():
    S = musicnn.log_mel(y=_signal(4.0), sr=SR)
    assert S.dtype == np.float32 and S.shape == (1 + 64_000 // 256, 96)
    mel = (10 ** S.astype(np.float64) - 1) / 10_000  # x, which musicnn rounded to float16
    np.testing.assert_allclose(mel, mel.astype(np.float16).astype(np.float64), rtol=1e-5, atol=1e-9)
    assert np.isfinite(S).all()  # in float16, 10000 * x overflows above 6.55; musicnn computed it in float32


@pytest.mark.parametrize(("samples", "sr"), [(musicnn.MIN_SAMPLES - 1, 16_000), (int(2.9 * SR), SR), (0, SR)])
def test_too_short_signal(samples, sr):
    with pytest.raises(AudioError) as raised:
        musicnn.taggram(np.zeros(samples, np.float32) + 0.1, sr=sr)
    assert raised.value.kind == "too_short"
    assert ("frame" if samples == 0 else "patch") in str(raised.value)


def test_bad_signal():
    with pytest.raises(AudioError) as raised:
        musicnn.extract_musicnn(np.zeros((2, 100_000), np.float32), sr=SR)
    assert raised.value.kind == "unreadable"
    with pytest.raises(TypeError, match="sr="):
        musicnn.taggram(_signal(4.0))


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(musicnn_weights.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as raised:
        musicnn_weights.checkpoint_dir()
    assert raised.value.kind == "missing_dependency"
    assert "pip install --no-deps musicnn==0.1.0" in str(raised.value)


def test_taggram_and_features(weights):
    y = _signal(30.0)
    tags, penultimate = musicnn.taggram(y, sr=SR, return_penultimate=True)
    assert tags.shape == (28, 50) and penultimate.shape == (28, 200)
    assert tags.dtype == np.float32 and ((tags > 0) & (tags < 1)).all()
    features = musicnn.extract_musicnn(y, sr=SR)
    assert tuple(features) == musicnn.MUSICNN_COLUMNS
    values = np.array(list(features.values())).reshape(50, 2)
    np.testing.assert_allclose(values[:, 0], tags.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(values[:, 1], tags.std(axis=0), rtol=1e-5, atol=1e-7)  # ddof=0


def test_signal_representation_and_patches_agree(weights):
    """``y=``, ``S=`` and ``patches=`` give the same taggram (the first two bit for bit).

    From ``y`` or ``S`` the overlapping patches share the computation of their common frames; given
    ``patches`` each is computed alone, so sums run in another order: observed 1.4e-7.
    """
    y = _signal(8.0, seed=1)
    S = musicnn.log_mel(y=y, sr=SR)
    from_signal = musicnn.taggram(y, sr=SR)
    np.testing.assert_array_equal(musicnn.taggram(S=S), from_signal)
    from_patches = musicnn.taggram(patches=musicnn.log_mel_patches(S=S))
    np.testing.assert_allclose(from_patches, from_signal, rtol=0, atol=1e-6)


def test_forward_pass_matches_tensorflow(weights, tf_taggram):
    """Our NumPy forward pass against musicnn's models.py transcribed to TensorFlow ops, on the same patches.

    Checks the convolution indexing, paddings, pooling and layer order independently of any audio
    processing. Random patches (float16 values, like real input) and real patches of a synthetic signal
    are used; the patches of a signal go through the shared-frames path. Both sides are float32 with
    differently ordered sums: observed 5e-7 on probabilities and 5e-6 on penultimate activations up to
    about 9 (6e-7 relative), so 1e-5 leaves room for other BLAS builds.
    """
    model = musicnn_weights.get_model()
    # Some channels' batch-norm scales are negative: their frequency max-pool becomes a min (exercised here).
    assert any((block.scale < 0).any() for block in model.timbral + model.temporal)
    rng = np.random.default_rng(0)
    random = (rng.random((5, musicnn.PATCH_FRAMES, musicnn.N_MELS)) * 4).astype(np.float16).astype(np.float32)
    ours, ours_penultimate = musicnn.taggram(patches=random, return_penultimate=True)
    reference, reference_penultimate = tf_taggram(random)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
    scale = np.abs(reference_penultimate).max()
    np.testing.assert_allclose(ours_penultimate, reference_penultimate, rtol=0, atol=1e-5 * scale)

    S = musicnn.log_mel(y=_signal(7.0, seed=2), sr=SR)
    reference, _ = tf_taggram(musicnn.log_mel_patches(S=S))
    np.testing.assert_allclose(musicnn.taggram(S=S), reference, rtol=0, atol=1e-5)


def test_cached_weights_are_used_without_tensorflow(weights, cache_dir):
    """Once converted, the weights come from the ``.npz`` alone: a fresh process never imports TensorFlow,
    and computes the same bits as this one (one thread per pool in both)."""
    cached = musicnn_weights.cache_path()
    assert cached.is_file() and cached.parent == cache_dir / "musicnn"
    assert musicnn_weights.checkpoint_digest(musicnn_weights.checkpoint_dir())[:20] in cached.name
    assert not list(cached.parent.glob("*.tmp"))  # written through a temporary file, then renamed
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from genre.features import musicnn\n"
        "t = np.arange(5 * 22050) / 22050\n"
        "y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t)))\n"
        "features = musicnn.extract_musicnn(y.astype(np.float32), sr=22050)\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules, 'features': features}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, env={**os.environ, "GENRE_CACHE_DIR": str(cache_dir)}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.splitlines()[-1])
    assert child["tensorflow"] is False
    t = np.arange(5 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    assert child["features"] == musicnn.extract_musicnn(y.astype(np.float32), sr=SR)


def test_conversion_reproduces_the_cache(weights, tmp_path):
    destination = tmp_path / "converted.npz"
    musicnn_weights.convert_checkpoint(musicnn_weights.checkpoint_dir(), destination)
    with np.load(destination) as converted:
        assert set(converted.files) == set(musicnn_weights.WEIGHT_SHAPES)
        for name, value in weights.items():
            np.testing.assert_array_equal(converted[name], value)
    assert [path.name for path in tmp_path.iterdir()] == ["converted.npz"]


def _kaiser_best_2019(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.load(..., sr=target_sr)``'s resampling as musicnn ran it in 2019: resampy < 0.3, kaiser_best.

    That filter (64 zero crossings, a 512-entry table per crossing, Kaiser window beta 14.7697, roll-off
    0.94759) is rebuilt from its published definition; resampy 0.3 replaced it with a longer one (roll-off
    0.917), so resampy's current ``kaiser_best`` does not reproduce musicnn's inputs. The interpolation
    loop is resampy 0.2's, vectorised over output samples, with its float32 accumulation in the same
    order: it gave resampy 0.2.1's output bit for bit on the parity clips when this test was written.
    The result is padded to ``ceil(n * target_sr / orig_sr)`` as librosa 0.7 did.
    """
    zeros, table, rolloff = 64, 512, 0.9475937167399596
    n = zeros * table
    window = scipy.signal.get_window(("kaiser", 14.769656459379492), 2 * n + 1, fftbins=False)[n:]
    ratio = target_sr / orig_sr
    filt = window * rolloff * np.sinc(rolloff * np.linspace(0, zeros, num=n + 1)) * min(ratio, 1.0)
    delta = np.append(np.diff(filt), 0.0)
    scale, n_out = min(1.0, ratio), int(len(y) * ratio)
    step = int(scale * table)
    position = np.concatenate([[0.0], np.cumsum(np.full(n_out - 1, 1.0 / ratio))])  # resampy 0.2 accumulated
    base = position.astype(np.int64)
    out = np.zeros(n_out, np.float32)
    for right in (False, True):
        fraction = scale * (position - base)
        index = (scale - fraction if right else fraction) * table
        offset = index.astype(np.int64)
        eta = index - offset
        taps = np.minimum(len(y) - base - 1 if right else base + 1, (len(filt) - offset) // step)
        for i in range(int(taps.max())):
            live = i < taps
            k = np.where(live, offset + i * step, 0)
            source = np.clip(base + i + 1 if right else base - i, 0, len(y) - 1)
            out = np.where(live, (out + (filt[k] + eta * delta[k]) * y[source]).astype(np.float32), out)
    return librosa.util.fix_length(out, size=int(np.ceil(len(y) * ratio)))


class TestOriginalParity:
    """Our taggrams of 4 real GTZAN clips against the original musicnn's (TF1, librosa 0.7, resampy 0.2).

    Measured on the 4 clips (28 patches each; probabilities in [0, 1]):

    - with musicnn's own resampling (``_kaiser_best_2019``) the taggrams agree to 4.3e-6 at most
      (3.5e-5 relative where p >= 0.05). What is left is float32 arithmetic in another order: numpy 2's
      single-precision FFT (numpy 1.16 computed in double), BLAS products against TF's convolutions. It
      matters only where it moves a mel value across a float16 rounding boundary: about 15 of 180,096
      values per clip move by one float16 step (4e-4 in log10 units) between a float32 and a float64
      STFT, which moves probabilities by 4e-6 to 6e-6. The tolerance, 5e-5, is ten times that and
      still 400 times below what any other resampler gives (below);
    - with genre's resampling (soxr_hq, librosa's default) they differ by up to 0.056 (rock.00000;
      jazz.00001 4.9e-3), 33 % relative. soxr and resampy's kaiser_best have different anti-aliasing
      roll-offs, so the top 4 of the 96 mel bands (7.3-8 kHz) differ by up to 0.46 in log10 units, and
      the model is that sensitive to them (resampy 0.4's kaiser_best is as far off, 0.069). Values there
      are only as close as two reasonable resamplers make them: max abs <= 0.1. What must hold is what a
      classifier reads: the most probable tag of every one of the 112 patches is the same (>= 97 %
      required, one flip in 28 would be a near tie), and per clip the tag means over patches correlate
      at 0.998 or more and the tag standard deviations at 0.996 or more (> 0.99 required), with means
      within 0.02 (<= 0.05 required).
    """

    pytestmark = pytest.mark.gtzan

    @pytest.fixture(scope="class")
    def original(self) -> dict[str, np.ndarray]:
        with np.load(require(TAGGRAMS)) as stored:
            X, ids = stored["X"], stored["IDS"]
        return {clip: X[ids == f"{clip}.au"] for clip in PARITY_CLIPS}

    @pytest.mark.parametrize("clip", PARITY_CLIPS)
    def test_same_patches_as_musicnn_with_its_resampler(self, weights, original, clip):
        y = load_audio(require(GTZAN_AUDIO / f"{clip}.wav"))
        ours = musicnn.taggram(_kaiser_best_2019(y, SR, 16_000), sr=16_000)
        assert ours.shape == original[clip].shape == (28, 50)
        np.testing.assert_allclose(ours, original[clip], rtol=0, atol=5e-5)

    def test_default_resampling(self, weights, original):
        agree = []
        for clip in PARITY_CLIPS:
            ours = musicnn.taggram(load_audio(require(GTZAN_AUDIO / f"{clip}.wav")), sr=SR)
            theirs = original[clip]
            assert ours.shape == theirs.shape
            assert np.abs(ours - theirs).max() <= 0.1, clip
            agree.append(ours.argmax(axis=1) == theirs.argmax(axis=1))
            assert np.corrcoef(ours.mean(axis=0), theirs.mean(axis=0))[0, 1] > 0.99, clip
            assert np.corrcoef(ours.std(axis=0), theirs.std(axis=0))[0, 1] > 0.99, clip
            assert np.abs(ours.mean(axis=0) - theirs.mean(axis=0)).max() <= 0.05, clip
        assert np.mean(np.concatenate(agree)) >= 0.97
