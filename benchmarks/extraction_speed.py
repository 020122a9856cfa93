"""How much faster genre.features is than the per-feature librosa recipe, on one core, and at what cost.

Usage::

    python benchmarks/extraction_speed.py [--clips N] [--repeats R] [--json OUT]

On the real GTZAN clips (``$GENRE_SHARED_DIR`` or ``../shared`` beside the repository; synthetic clips
if they are absent, which the output says) and restricted to one thread, it measures:

1. cold start, each in a fresh subprocess: the whole process, loading the first clip (librosa compiles
   or loads some numba kernels when first imported) and the first and second ``extract_features``
   calls; with numba's on-disk cache as it is, with an empty one (a new environment: everything
   compiles), and after ``warm_up()``; plus the naive recipe's first calls, for comparison;
2. the naive recipe below (one librosa call per feature, as a typical notebook writes it, with the
   settings that reproduce Kaggle's CSV) per clip;
3. ``genre.features.extract_features`` per clip, interleaved with (2) so both see the same machine load;
4. the speed ratio, and per feature the largest difference between the two (and against Kaggle's CSV
   for real clips).

Wall-clock and process CPU times are both reported: on a shared machine the CPU time of a
single-threaded process is the steadier measure. Prints a JSON blob, then markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One thread everywhere; numba reads this when first imported (librosa imports it).
os.environ["NUMBA_NUM_THREADS"] = "1"

import librosa
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from genre import features
from genre.data.schema import FEATURE_COLUMNS, HOP_LENGTH, N_FFT, SAMPLE_RATE

SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
GTZAN_DIR = SHARED_DIR / "data" / "gtzan"
#: Length of a GTZAN clip, for the synthetic stand-ins.
CLIP_SAMPLES = 661_794


def naive_features(y: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """The 57 features the way Kaggle's notebook computed them: one librosa call (and one STFT) each.

    librosa 0.11 defaults to constant padding, so ``pad_mode="reflect"`` (the pre-0.10 default) is
    passed wherever frames are padded. HPSS is written out as ``librosa.effects.hpss`` was before 0.10,
    which did not pass ``length=`` to the inverse STFT and zero-padded its result instead; the tempo is
    ``beat_track``'s, whose onset strength takes the median over mel bands.
    """
    reflect = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "pad_mode": "reflect"}
    stft = librosa.stft(y, **reflect)
    stft_harmonic, stft_percussive = librosa.decompose.hpss(stft)
    onset_envelope = librosa.onset.onset_strength(y=y, sr=sr, aggregate=np.median, **reflect)
    tempo, _ = librosa.beat.beat_track(onset_envelope=onset_envelope, sr=sr, hop_length=HOP_LENGTH)
    series = {
        "chroma_stft": librosa.feature.chroma_stft(y=y, sr=sr, **reflect),
        "rms": librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP_LENGTH, pad_mode="reflect"),
        "spectral_centroid": librosa.feature.spectral_centroid(y=y, sr=sr, **reflect),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=sr, **reflect),
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr, **reflect),
        "zero_crossing_rate": librosa.feature.zero_crossing_rate(
            y, frame_length=N_FFT, hop_length=HOP_LENGTH
        ),
        "harmony": librosa.util.fix_length(librosa.istft(stft_harmonic, dtype=y.dtype), size=len(y)),
        "perceptr": librosa.util.fix_length(librosa.istft(stft_percussive, dtype=y.dtype), size=len(y)),
    }
    out = {}
    for name, values in series.items():
        out[f"{name}_mean"] = float(np.mean(values))
        out[f"{name}_var"] = float(np.var(values))
    out["tempo"] = float(np.atleast_1d(tempo)[0])
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, **reflect)
    for i, coefficient in enumerate(mfcc, start=1):
        out[f"mfcc{i}_mean"] = float(np.mean(coefficient))
        out[f"mfcc{i}_var"] = float(np.var(coefficient))
    return {name: out[name] for name in FEATURE_COLUMNS}


def load_clips(n: int) -> tuple[str, list[tuple[str, np.ndarray]]]:
    """Up to ``n`` real GTZAN clips, or ``n`` synthetic 30-s clips when the real ones are absent."""
    paths = sorted((GTZAN_DIR / "audio").glob("*/*.wav"))[:n]
    if paths:
        return "gtzan", [(path.name, features.load_audio(path)) for path in paths]
    rng = np.random.default_rng(0)
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    clips = []
    for i in range(n):
        bpm = rng.uniform(70, 160)
        beats = librosa.clicks(times=np.arange(0, 30, 60 / bpm), sr=SAMPLE_RATE, length=CLIP_SAMPLES)
        chord = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(110, 880, size=3)) / 3
        noise = 0.05 * rng.standard_normal(CLIP_SAMPLES)
        clips.append((f"synthetic.{i:05d}", (0.3 * chord + 0.5 * beats + noise).astype(np.float32)))
    return "synthetic", clips


def timed(function, *args) -> tuple[object, float, float]:
    """``function(*args)`` with its wall-clock and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def cold_start(clip_path: Path | None) -> dict[str, dict[str, float]]:
    """Run each cold-start scenario in a fresh interpreter (see ``_child``) and collect its timings."""
    scenarios = {
        "ours_first_call": ("first", False),
        "ours_first_call_empty_numba_cache": ("first", True),
        "ours_warm_up_then_first_call": ("warm_up", False),
        "naive_first_call": ("naive", False),
    }
    results = {}
    for name, (mode, empty_cache) in scenarios.items():
        env = dict(os.environ)
        with tempfile.TemporaryDirectory() as cache:
            if empty_cache:
                env["NUMBA_CACHE_DIR"] = cache
            command = [sys.executable, __file__, "--child", mode]
            if clip_path is not None:
                command += ["--child-clip", str(clip_path)]
            start = time.perf_counter()
            completed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            process_wall_s = time.perf_counter() - start
        results[name] = {"process_wall_s": process_wall_s, **json.loads(completed.stdout.splitlines()[-1])}
    return results


def _child(mode: str, clip_path: str | None) -> None:
    """One cold-start scenario in this fresh process; prints its timings as one JSON line.

    Loading the clip is timed too: librosa compiles (or loads from numba's cache) some of its kernels
    when its modules are first imported, which the first file read triggers.
    """
    with threadpool_limits(1):
        out = {}
        if mode == "warm_up":
            out["warm_up_s"] = features.warm_up()
        start = time.perf_counter()
        y = features.load_audio(clip_path) if clip_path else load_clips(1)[1][0][1]
        out["load_s"] = time.perf_counter() - start
        extract = naive_features if mode == "naive" else features.extract_features
        _, out["first_call_wall_s"], out["first_call_cpu_s"] = timed(extract, y)
        _, out["second_call_wall_s"], out["second_call_cpu_s"] = timed(extract, y)
    print(json.dumps(out))


def compare(clips, repeats: int) -> dict:
    """Time both extractors on every clip (best of ``repeats``, interleaved) and diff their values."""
    kaggle = (
        pd.read_csv(GTZAN_DIR / "features_30_sec.csv").set_index("filename")
        if (GTZAN_DIR / "features_30_sec.csv").exists()
        else None
    )
    per_clip = []
    differences = {
        name: {"vs_naive_rel": 0.0, "vs_naive_abs": 0.0, "vs_kaggle_rel": 0.0} for name in FEATURE_COLUMNS
    }
    for name, y in clips:
        runs = {"naive": [], "ours": []}
        for _ in range(repeats):
            naive, *naive_times = timed(naive_features, y)
            ours, *our_times = timed(features.extract_features, y)
            runs["naive"].append(naive_times)
            runs["ours"].append(our_times)
        row = {"clip": name}
        for who, times in runs.items():
            row[f"{who}_wall_s"] = min(wall for wall, _ in times)
            row[f"{who}_cpu_s"] = min(cpu for _, cpu in times)
        per_clip.append(row)
        for feature in FEATURE_COLUMNS:
            gap = abs(ours[feature] - naive[feature])
            worst = differences[feature]
            worst["vs_naive_abs"] = max(worst["vs_naive_abs"], gap)
            worst["vs_naive_rel"] = max(
                worst["vs_naive_rel"], gap / abs(naive[feature]) if naive[feature] else gap
            )
            if kaggle is not None and name in kaggle.index:
                expected = float(kaggle.loc[name, feature])
                gap = abs(ours[feature] - expected)
                worst["vs_kaggle_rel"] = max(worst["vs_kaggle_rel"], gap / abs(expected) if expected else gap)
    summary = {}
    for clock in ("wall", "cpu"):
        naive_median = statistics.median(row[f"naive_{clock}_s"] for row in per_clip)
        ours_median = statistics.median(row[f"ours_{clock}_s"] for row in per_clip)
        summary[clock] = {
            "naive_median_s": naive_median,
            "ours_median_s": ours_median,
            "ratio": naive_median / ours_median,
        }
    return {
        "per_clip": per_clip,
        "summary": summary,
        "feature_differences": differences,
        "kaggle_checked": kaggle is not None,
    }


def markdown(report: dict) -> str:
    """The report as markdown tables: cold start, per-clip speed, per-feature differences."""
    lines = [
        f"Clips: {report['n_clips']} ({report['source']}), one thread, best of {report['repeats']} per clip.",
        "",
    ]
    lines += [
        "| cold start (fresh process) | whole process s | warm_up() s | load clip s "
        "| 1st call s (wall / cpu) | 2nd call s (wall / cpu) |",
        "|---|---|---|---|---|---|",
    ]
    for name, cold in report["cold_start"].items():
        warm = f"{cold['warm_up_s']:.2f}" if "warm_up_s" in cold else ""
        lines.append(
            f"| {name} | {cold['process_wall_s']:.2f} | {warm} | {cold['load_s']:.2f} "
            f"| {cold['first_call_wall_s']:.2f} / {cold['first_call_cpu_s']:.2f} "
            f"| {cold['second_call_wall_s']:.3f} / {cold['second_call_cpu_s']:.3f} |"
        )
    lines += ["", "| per clip (median) | naive s | ours s | ratio |", "|---|---|---|---|"]
    for clock, summary in report["speed"]["summary"].items():
        naive, ours, ratio = summary["naive_median_s"], summary["ours_median_s"], summary["ratio"]
        lines.append(f"| {clock} | {naive:.3f} | {ours:.3f} | {ratio:.1f}x |")
    lines += [
        "",
        "| feature | max rel diff vs naive | max abs diff vs naive | max rel diff vs Kaggle |",
        "|---|---|---|---|",
    ]
    for name, worst in report["speed"]["feature_differences"].items():
        kaggle = f"{worst['vs_kaggle_rel']:.2e}" if report["speed"]["kaggle_checked"] else "n/a"
        lines.append(f"| {name} | {worst['vs_naive_rel']:.2e} | {worst['vs_naive_abs']:.2e} | {kaggle} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clips", type=int, default=11, help="number of clips to time (default: 11, all local ones)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="timings per clip and extractor; the best counts"
    )
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--child", choices=["first", "warm_up", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--child-clip", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.child_clip)
        return 0

    source, clips = load_clips(args.clips)
    if source == "synthetic":
        print(
            f"No GTZAN audio under {GTZAN_DIR / 'audio'}: timing {len(clips)} synthetic 30-s clips instead."
        )
    first_clip = next(iter(sorted((GTZAN_DIR / "audio").glob("*/*.wav"))), None)
    report = {
        "source": source,
        "n_clips": len(clips),
        "repeats": args.repeats,
        "cold_start": cold_start(first_clip),
    }
    with threadpool_limits(1):
        features.warm_up()
        naive_features(clips[0][1][:SAMPLE_RATE])  # the naive recipe's numba kernels load outside timing too
        report["speed"] = compare(clips, args.repeats)
    blob = json.dumps(report, indent=2)
    print(blob)
    print()
    print(markdown(report))
    if args.json:
        args.json.write_text(blob + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
