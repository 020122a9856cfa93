"""Sound synthesis for the embedded dataset: ten class recipes and the clip synthesiser.

Each class is a ``Recipe`` of tempo, rhythm, timbre, harmony and noise, drawn from ranges per clip (tempo,
key, detune, loudness, envelope, filter, noise), and neighbouring classes share part of their ranges, so
classifiers on the 57 GTZAN features do well but not perfectly and model comparisons stay meaningful.
``genre.data.synthetic`` writes clips made here to disk as the embedded dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
from scipy import signal

from genre.errors import ConfigError

__all__ = ["CLASSES", "RECIPES", "Recipe", "require_int", "synthesize_clip"]

Range = tuple[float, float]

_STEPS_PER_BAR = 16  # sixteenth notes in a 4/4 bar: every rhythm below is a set of step indices
_PEAK_DBFS: Range = (-16.0, -1.0)  # clip loudness, drawn per clip; the top stays clear of full scale


@dataclass(frozen=True)
class Recipe:
    """How one synthetic class sounds. Every ``(lo, hi)`` pair is a range drawn from uniformly per clip.

    A clip mixes three layers, each scaled to unit RMS and then by its ``*_db`` gain: a tonal voice
    (oscillators of one of the ``waves`` started on ``note_steps``, enveloped, low-pass filtered, optionally
    driven into ``tanh`` saturation), a drum kit (kick, snare and hi-hat on their steps, plus random
    clicks), and background noise (a blend of dark and bright noise, optionally swept by a slow LFO).

    Attributes
    ----------
    summary : str
        The recipe in one line of prose.
    tempo_bpm : (float, float)
        Beats per minute; one beat is four steps.
    note_steps : tuple of int
        Steps of the bar (0-15) on which the tonal voice starts notes; empty for no tonal voice.
    voicing : {"chord", "arpeggio", "walk"}
        Play every chord tone at once, cycle through them one note at a time, or pick one at random.
    chord : tuple of int
        Semitones above the bar's root that make up the chord.
    progression : tuple of int
        Semitone offset of the root in successive bars, cycled.
    root_midi : (float, float)
        MIDI pitch of the key's root; drawn per clip as a whole semitone plus a detune.
    waves : tuple of {"sine", "triangle", "saw", "square"}
        Oscillator shapes, one picked per clip: the main timbre control, with ``cutoff_hz``.
    cutoff_hz : (float, float)
        Corner of the 2nd-order low-pass applied to the tonal voice.
    attack_s, decay_s : (float, float)
        Linear attack and exponential decay time constant of each note.
    drive : (float, float)
        Gain into ``tanh`` saturation of the tonal voice scaled to unit RMS; 0 for a clean voice.
    kick_steps, snare_steps, hat_steps : tuple of int
        Steps of the bar on which each drum plays.
    swing : (float, float)
        Fraction of a step by which off-beat eighths (steps 2, 6, 10, 14) are delayed.
    clicks_per_s : (float, float)
        Rate of clicks at random times, off any grid.
    tonal_db, drums_db, noise_db : (float, float)
        Gain of each layer after it is scaled to unit RMS.
    noise_tilt : (float, float)
        Blend of the noise from dark (0) to bright (1).
    noise_sweep_hz : (float, float)
        Rate of the LFO that sweeps the noise between dark and bright; 0 for a fixed blend.
    """

    summary: str
    tempo_bpm: Range = (100.0, 120.0)
    note_steps: tuple[int, ...] = ()
    voicing: Literal["chord", "arpeggio", "walk"] = "chord"
    chord: tuple[int, ...] = (0,)
    progression: tuple[int, ...] = (0,)
    root_midi: Range = (48.0, 60.0)
    waves: tuple[Literal["sine", "triangle", "saw", "square"], ...] = ("sine",)
    cutoff_hz: Range = (2000.0, 4000.0)
    attack_s: Range = (0.005, 0.01)
    decay_s: Range = (0.2, 0.4)
    drive: Range = (0.0, 0.0)
    kick_steps: tuple[int, ...] = ()
    snare_steps: tuple[int, ...] = ()
    hat_steps: tuple[int, ...] = ()
    swing: Range = (0.0, 0.0)
    clicks_per_s: Range = (0.0, 0.0)
    tonal_db: Range = (0.0, 0.0)
    drums_db: Range = (0.0, 0.0)
    noise_db: Range = (-30.0, -20.0)
    noise_tilt: Range = (0.2, 0.5)
    noise_sweep_hz: Range = (0.0, 0.0)


_EIGHTHS = (0, 2, 4, 6, 8, 10, 12, 14)
_OFFBEATS = (2, 6, 10, 14)
_BEATS = (0, 4, 8, 12)

#: The classes in label order. Neighbours in this order share part of their ranges on purpose.
RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {
        "drone": Recipe(
            "one low sine or triangle chord held for the whole clip, swelling each bar, over dark noise",
            tempo_bpm=(40.0, 80.0),
            note_steps=(0,),
            chord=(0, 7, 12),
            root_midi=(36.0, 50.0),
            waves=("sine", "triangle"),
            cutoff_hz=(600.0, 2500.0),
            attack_s=(0.3, 1.5),
            decay_s=(4.0, 12.0),
            noise_db=(-28.0, -4.0),
            noise_tilt=(0.0, 0.4),
        ),
        "bowed_pad": Recipe(
            "slow-attack filtered saw or triangle seventh chords changing every bar, no drums",
            tempo_bpm=(50.0, 100.0),
            note_steps=(0,),
            chord=(0, 4, 7, 11),
            progression=(0, 5, 9, 7),
            root_midi=(43.0, 57.0),
            waves=("saw", "triangle"),
            cutoff_hz=(600.0, 3000.0),
            attack_s=(0.1, 0.8),
            decay_s=(1.5, 8.0),
            noise_db=(-28.0, -4.0),
            noise_tilt=(0.1, 0.5),
        ),
        "plucked_arpeggio": Recipe(
            "short decaying notes cycling up a minor-seventh chord on every eighth, sometimes a soft hat",
            tempo_bpm=(75.0, 140.0),
            note_steps=_EIGHTHS,
            voicing="arpeggio",
            chord=(0, 3, 7, 10, 12),
            progression=(0, 8, 3, 10),
            root_midi=(50.0, 67.0),
            waves=("triangle", "saw", "sine"),
            cutoff_hz=(1500.0, 5000.0),
            attack_s=(0.002, 0.01),
            decay_s=(0.08, 0.5),
            hat_steps=_BEATS,
            drums_db=(-40.0, -12.0),
            noise_db=(-28.0, -4.0),
            noise_tilt=(0.2, 0.6),
        ),
        "offbeat_chords": Recipe(
            "bright chord stabs on the off-beats with a one-drop kick and rim on beat three",
            tempo_bpm=(65.0, 115.0),
            note_steps=_OFFBEATS,
            chord=(0, 4, 7),
            progression=(0, 0, 5, 7),
            root_midi=(52.0, 67.0),
            waves=("square", "saw", "triangle"),
            cutoff_hz=(1500.0, 5000.0),
            attack_s=(0.002, 0.01),
            decay_s=(0.05, 0.3),
            kick_steps=(8,),
            snare_steps=(8,),
            drums_db=(-12.0, 0.0),
            noise_db=(-28.0, -4.0),
        ),
        "swing_bass": Recipe(
            "walking low bass on every beat under a swung ride pattern",
            tempo_bpm=(100.0, 170.0),
            note_steps=_BEATS,
            voicing="walk",
            chord=(0, 2, 3, 5, 7, 9, 10),
            progression=(0, 5, 7, 0),
            root_midi=(36.0, 48.0),
            waves=("triangle", "sine", "saw"),
            cutoff_hz=(500.0, 2000.0),
            attack_s=(0.004, 0.01),
            decay_s=(0.2, 0.6),
            hat_steps=(0, 4, 6, 8, 12, 14),
            swing=(0.2, 0.6),
            drums_db=(-12.0, 0.0),
            noise_db=(-28.0, -4.0),
        ),
        "four_on_the_floor": Recipe(
            "kick on every beat, clap on two and four, off-beat hats and an off-beat bass",
            tempo_bpm=(105.0, 135.0),
            note_steps=_OFFBEATS,
            chord=(0,),
            progression=(0, 0, 3, 5),
            root_midi=(33.0, 48.0),
            waves=("saw", "square", "triangle"),
            cutoff_hz=(400.0, 2000.0),
            attack_s=(0.003, 0.01),
            decay_s=(0.08, 0.3),
            kick_steps=_BEATS,
            snare_steps=(4, 12),
            hat_steps=_OFFBEATS,
            drums_db=(-8.0, 6.0),
            noise_db=(-28.0, -4.0),
        ),
        "breakbeat": Recipe(
            "syncopated kick and snare with sixteenth hats over a low bass",
            tempo_bpm=(85.0, 125.0),
            note_steps=(0, 7, 10),
            chord=(0,),
            progression=(0, 0, 5, 3),
            root_midi=(31.0, 45.0),
            waves=("sine", "triangle"),
            cutoff_hz=(300.0, 1200.0),
            attack_s=(0.003, 0.01),
            decay_s=(0.15, 0.4),
            kick_steps=(0, 7, 10),
            snare_steps=(4, 12),
            hat_steps=tuple(range(16)),
            swing=(0.0, 0.2),
            drums_db=(-8.0, 6.0),
            noise_db=(-28.0, -4.0),
        ),
        "distorted_power": Recipe(
            "saturated power chords on every eighth with a rock beat",
            tempo_bpm=(95.0, 165.0),
            note_steps=_EIGHTHS,
            chord=(0, 7, 12),
            progression=(0, 0, 5, 3),
            root_midi=(40.0, 52.0),
            waves=("saw", "square"),
            cutoff_hz=(1500.0, 6000.0),
            attack_s=(0.002, 0.008),
            decay_s=(0.2, 0.8),
            drive=(0.5, 4.0),
            kick_steps=(0, 6, 8),
            snare_steps=(4, 12),
            hat_steps=_EIGHTHS,
            drums_db=(-14.0, 0.0),
            noise_db=(-28.0, -4.0),
            noise_tilt=(0.3, 0.8),
        ),
        "noise_wash": Recipe(
            "loud noise swept slowly between dark and bright, over a faint sine drone",
            tempo_bpm=(40.0, 80.0),
            note_steps=(0,),
            chord=(0, 7),
            root_midi=(38.0, 55.0),
            cutoff_hz=(800.0, 3000.0),
            attack_s=(0.3, 1.5),
            decay_s=(4.0, 10.0),
            tonal_db=(-30.0, -4.0),
            noise_db=(0.0, 0.0),
            noise_tilt=(0.1, 0.9),
            noise_sweep_hz=(0.05, 0.5),
        ),
        "sparse_clicks": Recipe(
            "sparse clicks at random times over bright hiss, nothing tonal",
            clicks_per_s=(1.0, 8.0),
            noise_db=(-24.0, 0.0),
            noise_tilt=(0.4, 1.0),
        ),
    }
)

#: The class names, in label order.
CLASSES: tuple[str, ...] = tuple(RECIPES)


def synthesize_clip(class_name: str, *, rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Synthesize one clip of a class, drawing its tempo, key, loudness and the rest from ``rng``.

    Parameters
    ----------
    class_name : str
        One of ``CLASSES``.
    rng : numpy.random.Generator
        The clip's own generator: everything random about the clip comes from it, so the same state
        gives the same samples.
    n_samples : int
        Length of the clip in samples.
    sr : int
        Sample rate in Hz; filter corners above 45 % of it are lowered to stay below Nyquist.

    Returns
    -------
    numpy.ndarray
        float32 samples of shape ``(n_samples,)``, peaking between -16 and -1 dBFS, so never clipped.

    Raises
    ------
    ConfigError
        If the class is unknown, or ``n_samples`` or ``sr`` is not a positive integer.

    Examples
    --------
    >>> y = synthesize_clip("drone", rng=np.random.default_rng(0), n_samples=22050, sr=22050)
    >>> y.shape, y.dtype, bool(np.abs(y).max() < 1.0)
    ((22050,), dtype('float32'), True)
    """
    if class_name not in RECIPES:
        raise ConfigError(f"unknown synthetic class {class_name!r}; expected one of {', '.join(CLASSES)}")
    require_int("n_samples", n_samples, minimum=1)
    require_int("sr", sr, minimum=1)
    recipe = RECIPES[class_name]
    step_s = 60.0 / _draw(rng, recipe.tempo_bpm) / 4
    grid = _Grid(rng, n_samples=n_samples, sr=sr, step_s=step_s, swing=_draw(rng, recipe.swing))
    layers = (
        (_tonal(recipe, grid, rng), recipe.tonal_db),
        (_drums(recipe, grid, rng), recipe.drums_db),
        (_noise(recipe, rng, n_samples=n_samples, sr=sr), recipe.noise_db),
    )
    mix = sum(_unit_rms(layer) * _gain(_draw(rng, db)) for layer, db in layers)
    peak = np.max(np.abs(mix))
    mix = mix * (_gain(_draw(rng, _PEAK_DBFS)) / peak if peak > 0 else 0.0)
    return mix.astype(np.float32)


class _Grid:
    """The clip's rhythmic grid: the time of every sixteenth step, swung and humanised, as samples.

    The grid starts a bar before the clip and at a random phase, so notes already sounding at sample 0
    have an onset and clips do not all begin on the downbeat.
    """

    def __init__(self, rng: np.random.Generator, *, n_samples: int, sr: int, step_s: float, swing: float):
        n_steps = int(np.ceil(n_samples / sr / step_s)) + 2 * _STEPS_PER_BAR
        step = np.arange(n_steps) - _STEPS_PER_BAR
        times = step * step_s - rng.uniform(0.0, _STEPS_PER_BAR * step_s)
        times += np.where(step % 4 == 2, swing * step_s, 0.0) + rng.normal(0.0, 0.004, n_steps)
        self.position = step % _STEPS_PER_BAR
        self.bar = step // _STEPS_PER_BAR
        # Humanising never reorders steps in practice; the running maximum makes that a guarantee.
        self.onset = np.maximum.accumulate(np.round(times * sr).astype(np.int64))
        self.n_samples = n_samples
        self.sr = sr

    def hits(self, steps: tuple[int, ...]) -> np.ndarray:
        """Indices into the grid of the steps whose bar position is in ``steps``."""
        return np.flatnonzero(np.isin(self.position, steps))


def _tonal(recipe: Recipe, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """The tonal voice: one oscillator per chord tone (or one for arpeggio/walk), enveloped per note."""
    events = grid.hits(recipe.note_steps)
    if events.size == 0:
        return np.zeros(grid.n_samples)
    n, sr = grid.n_samples, grid.sr
    onsets = grid.onset[events]
    # Each sample belongs to the latest note started at or before it; the grid starts a bar before
    # sample 0, so the first note is already sounding there.
    starts = np.clip(onsets, 0, n)
    starts[0] = 0
    note = np.repeat(np.arange(events.size), np.diff(starts, append=n))
    elapsed = (np.arange(n) - onsets[note]) / sr
    attack, decay = _draw(rng, recipe.attack_s), _draw(rng, recipe.decay_s)
    envelope = rng.uniform(0.7, 1.0, events.size)[note] * np.minimum(1.0, elapsed / attack)
    envelope *= np.exp(-elapsed / decay)
    # A 3 ms one-pole smoother removes the click where a sustained note is cut by the next one.
    pole = np.exp(-1.0 / (0.003 * sr))
    envelope = signal.lfilter([1.0 - pole], [1.0, -pole], envelope)

    root = np.floor(_draw(rng, recipe.root_midi)) + rng.uniform(-0.3, 0.3)
    bar_root = root + np.asarray(recipe.progression)[grid.bar[events] % len(recipe.progression)]
    chord = np.asarray(recipe.chord)
    if recipe.voicing == "chord":
        pitches = bar_root[:, None] + chord[None, :]
    elif recipe.voicing == "arpeggio":
        pitches = (bar_root + chord[np.arange(events.size) % chord.size])[:, None]
    else:
        pitches = (bar_root + rng.choice(chord, events.size))[:, None]

    wave = _WAVES[recipe.waves[rng.integers(len(recipe.waves))]]
    voice = np.zeros(n)
    for midi in pitches.T:
        hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
        phase = np.cumsum(hz[note]) / sr + rng.uniform()
        voice += wave(phase - np.floor(phase))
    voice = _lowpass(voice * envelope, _draw(rng, recipe.cutoff_hz), sr)
    drive = _draw(rng, recipe.drive)
    return np.tanh(drive * _unit_rms(voice)) if drive > 0 else voice


_WAVES = {
    "sine": lambda frac: np.sin(2 * np.pi * frac),
    "triangle": lambda frac: 4.0 * np.abs(frac - 0.5) - 1.0,
    "saw": lambda frac: 2.0 * frac - 1.0,
    "square": lambda frac: np.where(frac < 0.5, 1.0, -1.0),
}


def _drums(recipe: Recipe, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """The drum kit: each drum is a one-shot sample made for this clip, added at its onsets."""
    n, sr = grid.n_samples, grid.sr
    n_clicks = rng.poisson(_draw(rng, recipe.clicks_per_s) * n / sr)
    hits = (
        (grid.onset[grid.hits(recipe.kick_steps)], _kick),
        (grid.onset[grid.hits(recipe.snare_steps)], _snare),
        (grid.onset[grid.hits(recipe.hat_steps)], _hat),
        (rng.integers(0, n, n_clicks), _click),
    )
    out = np.zeros(n)
    for onsets, make_sample in hits:
        onsets = onsets[(onsets >= 0) & (onsets < n)]
        sample = make_sample(rng, sr)
        for onset, velocity in zip(onsets, rng.uniform(0.6, 1.0, onsets.size), strict=True):
            length = min(sample.size, n - onset)
            out[onset : onset + length] += velocity * sample[:length]
    return out


def _kick(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.3 * sr)) / sr
    hz = rng.uniform(40.0, 55.0) + rng.uniform(60.0, 120.0) * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(hz) / sr) * np.exp(-t / rng.uniform(0.08, 0.15))


def _snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    body = np.sin(2 * np.pi * rng.uniform(160.0, 220.0) * t) * np.exp(-t / 0.08)
    rattle = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / rng.uniform(0.03, 0.08))
    return 0.5 * body + 0.5 * rattle


def _hat(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.08 * sr)) / sr
    return 0.5 * np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / rng.uniform(0.01, 0.03))


def _click(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.01 * sr)) / sr
    return np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / rng.uniform(0.0005, 0.002))


def _noise(recipe: Recipe, rng: np.random.Generator, *, n_samples: int, sr: int) -> np.ndarray:
    """Background noise: dark and bright noise blended by ``noise_tilt``, swept by a slow LFO if any."""
    white = rng.standard_normal(n_samples)
    dark = _unit_rms(_lowpass(white, 400.0, sr))
    bright = _unit_rms(white - _lowpass(white, 3000.0, sr))
    blend = _draw(rng, recipe.noise_tilt)
    if recipe.noise_sweep_hz[1] > 0:
        lfo_phase = 2 * np.pi * _draw(rng, recipe.noise_sweep_hz) * np.arange(n_samples) / sr
        blend = np.clip(blend + 0.5 * np.sin(lfo_phase + rng.uniform(0, 2 * np.pi)), 0.0, 1.0)
    return np.sqrt(1.0 - blend) * dark + np.sqrt(blend) * bright


def _lowpass(x: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    sos = signal.butter(2, min(cutoff_hz, 0.45 * sr), fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x**2))
    return x / rms if rms > 0 else x


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds))


def _gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def require_int(name: str, value: object, *, minimum: int) -> None:
    """Raise ``ConfigError`` unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
