"""Tests of genre.features.musicnn: names, patching, the shipped weights, a TensorFlow reference, musicnn's
resampling (genre.features.resample against a transcription of resampy 0.2's loop), and parity with the
original musicnn's taggrams of real GTZAN clips.

Tests on real clips need ../shared and carry the ``gtzan`` marker.
"""

# ``S`` for a spectrogram is librosa's name, which genre.features mirrors; ``X`` the taggram file's.
# ruff: noqa: N806

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal

from genre.errors import AudioError, ConfigError
from genre.features import musicnn, musicnn_weights, resample
from genre.features.audio import load_audio
from genre.features.resample import resample_musicnn
from tests.conftest import GTZAN_AUDIO, GTZAN_DIR, require
from tests.rounding import roundoff

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
def weights() -> dict[str, np.ndarray]:
    """The shipped MSD_musicnn weights."""
    return musicnn_weights.load_weights()


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
    S64 = S.astype(np.float64)
    mel = (10**S64 - 1) / 10_000  # x, which musicnn rounded to float16
    # S = log10(10000 x + 1) in float32 rounds twice by u (the product, the sum 1 + z) and log10 is within
    # two ulps (4 u) of S: S is off by at most 2 u / ln(10) + 4 u S, which 10^S - 1 turns into an error of
    # ln(10) (1 + z) times that on z = 10000 x (float64 adds nothing that matters). Far below float16's
    # spacing (2^-11 relative), so the nearest float16 is x's own.
    u = roundoff(np.float32)
    bound = (2 * u + 4 * u * np.log(10) * S64) * 10**S64 / 10_000
    assert (np.abs(mel - mel.astype(np.float16).astype(np.float64)) <= bound).all()
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


def test_shipped_weights_are_the_converted_checkpoint():
    """The package's weights file is the one ``scripts/convert_musicnn_weights.py`` writes (its SHA-256 is
    pinned in the code and checked on every load), holding every variable of the forward pass in float32."""
    data = musicnn_weights.SHIPPED_WEIGHTS.read_bytes()
    assert hashlib.sha256(data).hexdigest() == musicnn_weights.WEIGHTS_SHA256
    notice = (musicnn_weights.SHIPPED_WEIGHTS.parent / "LICENSE").read_text()
    assert "ISC License" in notice and musicnn_weights.WEIGHTS_SHA256 in notice
    with np.load(musicnn_weights.SHIPPED_WEIGHTS) as stored:
        assert stored.files == list(musicnn_weights.WEIGHT_SHAPES)
        for name, shape in musicnn_weights.WEIGHT_SHAPES.items():
            assert stored[name].shape == shape and stored[name].dtype == np.float32


def test_damaged_or_missing_weights_are_named(tmp_path, monkeypatch):
    damaged = tmp_path / "MSD_musicnn.npz"
    data = bytearray(musicnn_weights.SHIPPED_WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 1  # one bit inside an array: np.load alone would not notice
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(musicnn_weights, "_weights_file", damaged)
    with pytest.raises(ConfigError, match=r"MSD_musicnn.npz are damaged .*reinstall genre"):
        musicnn_weights.load_weights()
    monkeypatch.setattr(musicnn_weights, "_weights_file", tmp_path / "absent.npz")
    with pytest.raises(ConfigError, match=r"absent.npz cannot be read"):
        musicnn_weights.load_weights()


def test_conversion_script_reproduces_the_shipped_file():
    """Where the musicnn wheel and TensorFlow are installed (a maintainer's environment), converting the
    checkpoint again gives the shipped file byte for byte."""
    if importlib.util.find_spec("musicnn") is None:
        pytest.skip("the musicnn wheel is not installed: only maintainers regenerate the shipped weights")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "convert_musicnn_weights.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "same as" in done.stdout


def test_taggram_and_features(weights):
    y = _signal(30.0)
    tags, penultimate = musicnn.taggram(y, sr=SR, return_penultimate=True)
    assert tags.shape == (28, 50) and penultimate.shape == (28, 200)
    assert tags.dtype == np.float32 and ((tags > 0) & (tags < 1)).all()
    features = musicnn.extract_musicnn(y, sr=SR)
    assert tuple(features) == musicnn.MUSICNN_COLUMNS
    values = np.array(list(features.values())).reshape(50, 2)
    # Equal bits: the same taggram (this process, one thread per pool: taggram pins it), averaged in
    # float64 by the same NumPy reductions.
    tags = tags.astype(np.float64)
    np.testing.assert_array_equal(values[:, 0], tags.mean(axis=0))
    np.testing.assert_array_equal(values[:, 1], tags.std(axis=0))  # ddof=0


def test_signal_representation_and_patches_agree(weights):
    """``y=``, ``S=`` and ``patches=`` give the same taggram (the first two bit for bit).

    From ``y`` or ``S`` the overlapping patches share the computation of their common frames; given
    ``patches`` each is computed alone, so sums run in another order: observed 1.4e-7. The first two are
    equal bits on any CPU (the same code on the same log-mel rows, in this process, one thread per
    pool). The third is held to a measured tolerance, seven times the difference seen: the network is
    convolutions, batch norms and max-pools in float32, for which a worst-case bound over every
    summation order is useless. Under each of OpenBLAS's x86-64 kernels here (OPENBLAS_CORETYPE=Prescott,
    Nehalem, Sandybridge, Haswell, SkylakeX) it was 0 to 9e-8.
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
    about 9 (6e-7 relative), so 1e-5 leaves room for other BLAS builds. Measured, not derived (as for
    the patches above; TensorFlow's kernels also differ by CPU): twenty times the difference on
    probabilities, twice on the penultimate activations relative to their scale.
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


def test_shipped_weights_are_used_without_tensorflow_or_the_wheel(weights):
    """A fresh process computes musicnn features without importing TensorFlow or the musicnn wheel, and gets
    the same bits as this one: same machine, same weights file, and one thread per native pool in both
    (``extract_musicnn`` pins it, so BLAS sums in the same order)."""
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from genre.features import musicnn\n"
        "t = np.arange(5 * 22050) / 22050\n"
        "y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t)))\n"
        "features = musicnn.extract_musicnn(y.astype(np.float32), sr=22050)\n"
        "imported = {name: name in sys.modules for name in ('tensorflow', 'musicnn')}\n"
        "print(json.dumps({'imported': imported, 'features': features}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout.splitlines()[-1])
    assert child["imported"] == {"tensorflow": False, "musicnn": False}
    t = np.arange(5 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    assert child["features"] == musicnn.extract_musicnn(y.astype(np.float32), sr=SR)


def _kaiser_best_2019(
    y: np.ndarray, orig_sr: int, target_sr: int, accumulate: type[np.floating] = np.float32
) -> np.ndarray:
    """``librosa.load(..., sr=target_sr)``'s resampling as musicnn ran it in 2019: resampy < 0.3, kaiser_best.

    The slow reference that ``genre.features.resample.resample_musicnn`` is checked against. That filter
    (64 zero crossings, a 512-entry table per crossing, Kaiser window beta 14.7697, roll-off 0.94759) is
    rebuilt from its published definition; resampy 0.3 replaced it with a longer one (roll-off 0.917), so
    resampy's current ``kaiser_best`` does not reproduce musicnn's inputs. The interpolation loop is
    resampy 0.2's, vectorised over output samples, with its float32 accumulation in the same order: it
    gives resampy 0.2.1's output bit for bit (its own numba loop and shipped table, run on the 11 clips of
    ../shared/data/gtzan/audio when genre.features.resample was written). With
    ``accumulate=np.float64`` the same products are summed in float64 and rounded once at the end, which
    is what genre computes. The result is padded to ``ceil(n * target_sr / orig_sr)`` as librosa 0.7 did.
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
    out = np.zeros(n_out, accumulate)
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
            out = np.where(live, (out + (filt[k] + eta * delta[k]) * y[source]).astype(accumulate), out)
    return librosa.util.fix_length(out.astype(np.float32), size=int(np.ceil(len(y) * ratio)))


def _chirp(seconds: float, sr: int) -> np.ndarray:
    """A logarithmic chirp from 20 Hz to the Nyquist frequency at 0.9 of full scale: the whole of the
    filter's response, transition band and stop band included, and large sums to round."""
    t = np.arange(int(seconds * sr)) / sr
    return (0.9 * scipy.signal.chirp(t, f0=20, t1=t[-1], f1=sr / 2, method="logarithmic")).astype(np.float32)


#: Largest difference allowed from resampy's own float32 accumulation, by input rate (see below).
RESAMPY_ROUNDING = {22_050: 1e-6, 44_100: 2e-6, 48_000: 2e-6}


def _assert_resampy_kaiser_best(y: np.ndarray, sr: int) -> None:
    """``resample_musicnn`` is resampy 0.2.1's sum rounded once to float32, and so within resampy's rounding.

    Against the float64 sum the bound is derived: genre's float64 sums (BLAS products, in the kernel's
    order) and the reference's differ by about 1e-13, so their roundings to float32 are at most one float32
    step apart (2^-23 relative), or about 1e-13 apart near zero.

    resampy added each of the 176 products of an output (22,050 Hz; 354 from 44,100 Hz, 385 from 48,000
    Hz) to a float32 accumulator, rounding every time; genre sums in float64 and rounds once. Against
    the float64 sum, genre is one rounding away: measured identical on every sample of the chirps and
    GTZAN clips here, and one float32 step is allowed. Against resampy's float32 sums the difference is
    their accumulated rounding, which grows with the number of products and the signal's level:
    measured at most 8.3e-7 on the 11 GTZAN clips at 22,050 Hz (30 s each), 1.0e-6 and 1.1e-6 on these
    4 s of rock.00000 at 44,100 and 48,000 Hz, 9.5e-7 to 1.4e-6 on these chirps (``RESAMPY_ROUNDING``).
    That difference holds on every CPU: the reference accumulates with elementwise NumPy operations in a
    fixed order (no BLAS, no reduction), and genre's result is within one float32 step (6e-8 below 1.0)
    of the float64 sum whatever the kernel, inside each tolerance's margin over its measurement.
    """
    ours = resample_musicnn(y, orig_sr=sr)
    assert ours.dtype == np.float32 and ours.shape == (int(np.ceil(len(y) * 16_000 / sr)),)
    exact = _kaiser_best_2019(y, sr, 16_000, accumulate=np.float64)
    np.testing.assert_allclose(ours, exact, rtol=2.0**-23, atol=1e-12)
    np.testing.assert_allclose(ours, _kaiser_best_2019(y, sr, 16_000), rtol=0, atol=RESAMPY_ROUNDING[sr])


@pytest.mark.parametrize("sr", [22_050, 44_100, 48_000])
def test_resampler_is_resampys_kaiser_best_on_a_chirp(sr):
    _assert_resampy_kaiser_best(_chirp(4.0, sr), sr)


@pytest.mark.gtzan
@pytest.mark.parametrize("sr", [22_050, 44_100, 48_000])
def test_resampler_is_resampys_kaiser_best_on_a_real_clip(sr):
    """4 s of rock.00000 (one of the loudest clips); at 44.1 and 48 kHz upsampled with soxr first."""
    y = load_audio(require(GTZAN_AUDIO / "rock" / "rock.00000.wav"))[: 4 * SR]
    if sr != SR:
        y = librosa.resample(y, orig_sr=SR, target_sr=sr, res_type="soxr_hq")
    _assert_resampy_kaiser_best(y, sr)


@pytest.mark.parametrize(
    ("samples", "sr", "length"),
    [
        (661_794, SR, 480_214),  # a GTZAN clip: resampy gives 480,213 samples, librosa 0.7 padded one zero
        (441, SR, 320),  # a whole period of 320/441: no padding
        (2, SR, 2),  # one sample from resampy, one zero
        (1_000, 44_100, 363),
        (4, 48_000, 2),
        (3, 8_000, 6),  # upsampling
    ],
)
def test_resampled_length_is_librosa_07s(samples, sr, length):
    """``ceil(n * 16000 / sr)`` samples, zeros after the first ``int(n * 16000 / sr)``: librosa 0.7's
    ``fix_length`` of resampy's output."""
    y = (0.5 * np.random.default_rng(3).standard_normal(samples)).astype(np.float32)
    out = resample_musicnn(y, orig_sr=sr)
    assert out.shape == (length,) and out.dtype == np.float32
    from_resampy = int(samples * 16_000 / sr)
    assert (out[from_resampy:] == 0).all() and np.count_nonzero(out[:from_resampy]) == from_resampy


def test_resampler_paths_agree_over_minutes():
    """The polyphase path (matrix products per group of phases) against the per-sample path, over 90 s.

    resampy's running position drifts from the exact ``t * 441 / 320``: by 3e-6 samples over 30 s, 5e-5
    over 90 s (3 segments), which moves interpolation factors by up to 0.008 from their segment's anchor
    and carries 9,337 of the 1.44 million outputs to another table offset or input sample. The
    polyphase path tracks every output's own factors and computes those outputs one by one, so both
    paths give the same float64 sums, up to summation order: one float32 step at most.
    """
    y = (0.5 * np.random.default_rng(4).standard_normal(90 * SR)).astype(np.float32)
    fast = resample_musicnn(y, orig_sr=SR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resample, "_plan_for", lambda *args, **kwargs: None)
        per_sample = resample_musicnn(y, orig_sr=SR)
    np.testing.assert_allclose(fast, per_sample, rtol=2.0**-23, atol=1e-12)


def test_resampler_leaves_16khz_alone_and_returns_float32():
    y = _signal(1.0, sr=16_000)
    assert resample_musicnn(y, orig_sr=16_000) is y  # as librosa 0.7, which returned its input
    as_float64 = resample_musicnn(y.astype(np.float64), orig_sr=16_000)
    assert as_float64.dtype == np.float32 and np.array_equal(as_float64, y)
    y = _signal(1.0)
    np.testing.assert_array_equal(
        resample_musicnn(y.astype(np.float64), orig_sr=SR), resample_musicnn(y, orig_sr=SR)
    )  # float64 input is rounded to float32 first, as librosa.load returned float32


def test_resampler_refuses_what_resampy_refused():
    for samples in (0, 1):  # int(1 * 16000 / 22050) is 0: resampy raised a ValueError
        with pytest.raises(AudioError) as raised:
            resample_musicnn(np.ones(samples, np.float32), orig_sr=SR)
        assert raised.value.kind == "too_short"
    with pytest.raises(AudioError) as raised:
        resample_musicnn(np.zeros((2, 1_000), np.float32), orig_sr=SR)
    assert raised.value.kind == "unreadable"
    with pytest.raises(AudioError) as raised:
        resample_musicnn(np.array([0.1, np.nan, 0.2] * 100, np.float32), orig_sr=SR)
    assert raised.value.kind == "unreadable"
    with pytest.raises(ValueError, match="positive"):
        resample_musicnn(np.ones(100, np.float32), orig_sr=0)


class TestOriginalParity:
    """Our taggrams of 4 real GTZAN clips against the original musicnn's (TF1, librosa 0.7, resampy 0.2).

    Measured on the 4 clips (28 patches each; probabilities in [0, 1]):

    - from the signal ``_kaiser_best_2019`` resamples (resampy 0.2.1's output bit for bit), passed at
      16 kHz, the taggrams agree to 4.3e-6 at most (3.5e-5 relative where p >= 0.05). What is left is
      float32 arithmetic in another order: numpy 2's single-precision FFT (numpy 1.16 computed in
      double), BLAS products against TF's convolutions. It matters only where it moves a mel value
      across a float16 rounding boundary: about 15 of 180,096 values per clip move by one float16 step
      (4e-4 in log10 units) between a float32 and a float64 STFT, which moves probabilities by 4e-6 to
      6e-6;
    - by default (genre's ``resample_musicnn``, which differs from resampy's output by resampy's float32
      rounding, at most 8.3e-7) they agree to 8.1e-6 (jazz.00001; 4.0e-6 to 5.4e-6 on the other three),
      4.6e-5 relative where p >= 0.05. The same mechanism: those last-bit differences put 85 to 322 of
      the 180,096 mel values per clip on the other side of a float16 rounding boundary, one float16 step
      away, which moves probabilities by up to 6.9e-6 against the taggrams of resampy's exact output.

    Both must hold to 5e-5: six times the largest difference seen, and still 1,000 times below what
    another resampler gives: soxr (librosa's default, which genre used before) differs by up to 0.056
    (rock.00000; jazz.00001 4.9e-3), 33 % relative, because its anti-aliasing roll-off is not
    kaiser_best's and the top 4 of the 96 mel bands (7.3-8 kHz) differ by up to 0.46 in log10 units
    (resampy 0.4's kaiser_best is as far off, 0.069).
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

    @pytest.mark.parametrize("clip", PARITY_CLIPS)
    def test_same_patches_as_musicnn_by_default(self, weights, original, clip):
        """What users' audio goes through: the signal at 22,050 Hz, resampled by genre."""
        ours = musicnn.taggram(load_audio(require(GTZAN_AUDIO / f"{clip}.wav")), sr=SR)
        assert ours.shape == original[clip].shape == (28, 50)
        np.testing.assert_allclose(ours, original[clip], rtol=0, atol=5e-5)

    def test_another_resampler_is_not_close(self, weights, original):
        """Why the resampler matters: soxr's signal, passed at 16 kHz, is 0.056 away on rock.00000."""
        y = load_audio(require(GTZAN_AUDIO / "rock" / "rock.00000.wav"))
        soxr = librosa.resample(y, orig_sr=SR, target_sr=16_000, res_type="soxr_hq")
        assert np.abs(musicnn.taggram(soxr, sr=16_000) - original["rock/rock.00000"]).max() > 0.02
