"""How fast genre's NumPy musicnn is on one core, against TensorFlow running the same weights, and how exact.

Usage::

    python benchmarks/musicnn_speed.py [--repeats R] [--cpu N] [--json OUT]

The script re-executes itself with one thread in every pool (``OMP_NUM_THREADS=1`` and the like) and,
where ``taskset`` exists, pinned to one CPU (``--cpu``, default the last one allowed). On the 11 GTZAN
clips in ``$GENRE_SHARED_DIR/data/gtzan/audio`` (or ``../shared`` beside the repository) it measures per
30-s clip, best of ``R``:

(a) ``ours``: the 100 musicnn features as a user gets them: decode (22,050 Hz), resample to 16 kHz
    (resampy 0.2's kaiser_best, as musicnn did: ``genre.features.resample``), mel spectrogram, forward
    pass, mean/std pooling (``genre.features.musicnn.extract_musicnn``); the resampling alone; and the
    forward pass alone (from the log-mel representation);
(b) ``tensorflow``: the straightforward evaluation of the same patches with TensorFlow ops built from
    the same weights (:func:`tf_taggram`: ``tf.nn.conv2d`` and friends, following musicnn's
    ``models.py`` line by line), all patches in one batch, as a compiled ``tf.function``;
(c) ``both``: the 57 GTZAN features (``genre.features.gtzan57.extract_features``) and the musicnn
    features of one decoded signal;

plus the cold start, each in a fresh process: the first and second ``extract_musicnn`` calls (the
shipped weights read and checked), and the first call of both extractors (numba kernels). For the 4 clips that
``musicnn/training_data_GTZAN_MSDmusicnn_taggram.npz`` holds, it reports how far (a)'s taggram is from
the original musicnn's, and for every clip how far it is from (b). Prints a JSON blob, then markdown.
"""

# ``S`` for a spectrogram is librosa's name, which genre.features mirrors.
# ruff: noqa: N806

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
GTZAN_DIR = SHARED_DIR / "data" / "gtzan"
TAGGRAMS = GTZAN_DIR / "musicnn" / "training_data_GTZAN_MSDmusicnn_taggram.npz"
#: Environment of the re-executed benchmark: one thread in every native pool.
ONE_THREAD = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    )
}
_PINNED = "GENRE_MUSICNN_BENCH_PINNED"


def tf_taggram(weights: dict[str, np.ndarray], patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSD_musicnn on ``patches`` (n, 187, 96) with plain TensorFlow ops: the reference forward pass.

    A transcription of ``musicnn/models.py`` (``build_musicnn`` with ``is_training=False``) into
    TensorFlow 2 ops on the checkpoint's variables, with nothing of genre's forward pass in it: input
    batch norm, timbral 7x38 and 7x67 convolutions on the input padded by 3 frames, temporal 128/64/32
    convolutions with "same" padding, each followed by ReLU, batch norm and a max-pool over all
    frequencies; three 7-frame mid-end convolutions with residual connections; max and mean over time,
    flattened; batch norm, dense 200 + ReLU, batch norm (the penultimate layer), dense 50, sigmoid.
    Batch norms use the moving statistics and epsilon 1e-3 (``tf.compat.v1.layers``' default).

    Returns the tag probabilities (n, 50) and the penultimate layer (n, 200).
    """
    return _tf_model(weights)(np.asarray(patches, np.float32))


def _tf_model(weights: dict[str, np.ndarray]):
    """A compiled ``tf.function`` of :func:`tf_taggram`'s network (traced on its first call)."""
    import tensorflow as tf

    from genre.threads import configure_tensorflow

    configure_tensorflow(tf)
    w = {name: tf.constant(value) for name, value in weights.items()}

    def norm(x, name):
        return tf.nn.batch_normalization(
            x,
            w[f"{name}/moving_mean"],
            w[f"{name}/moving_variance"],
            w[f"{name}/beta"],
            w[f"{name}/gamma"],
            1e-3,
        )

    def conv(x, name, padding):
        return tf.nn.relu(
            tf.nn.conv2d(x, w[f"{name}/kernel"], strides=1, padding=padding) + w[f"{name}/bias"]
        )

    def pool_frequency(x):
        return tf.squeeze(tf.nn.max_pool2d(x, [1, x.shape[2]], [1, x.shape[2]], "VALID"), 2)

    def pad_time(x):
        return tf.pad(x, [[0, 0], [3, 3], [0, 0], [0, 0]])

    @tf.function(reduce_retracing=True)
    def forward(patches):
        x = norm(patches[..., None], "batch_normalization")
        front = [
            pool_frequency(norm(conv(pad_time(x), "conv2d", "VALID"), "batch_normalization_1")),
            pool_frequency(norm(conv(pad_time(x), "conv2d_1", "VALID"), "batch_normalization_2")),
        ]
        front += [
            pool_frequency(norm(conv(x, f"conv2d_{i}", "SAME"), f"batch_normalization_{i + 1}"))
            for i in (2, 3, 4)
        ]
        front = tf.concat(front, 2)[..., None]  # (n, 187, 561, 1)
        mid = [front]
        for i in (5, 6, 7):
            h = norm(conv(pad_time(mid[-1]), f"conv2d_{i}", "VALID"), f"batch_normalization_{i + 1}")
            h = tf.transpose(h, [0, 1, 3, 2])
            mid.append(h if i == 5 else h + mid[-1])
        features = tf.concat(mid, 2)  # (n, 187, 753, 1)
        pooled = tf.concat([tf.reduce_max(features, 1), tf.reduce_mean(features, 1)], 2)
        flat = norm(tf.reshape(pooled, [tf.shape(pooled)[0], -1]), "batch_normalization_9")
        penultimate = norm(tf.nn.relu(flat @ w["dense/kernel"] + w["dense/bias"]), "batch_normalization_10")
        return tf.sigmoid(penultimate @ w["dense_1/kernel"] + w["dense_1/bias"]), penultimate

    def run(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, penultimate = forward(tf.constant(patches))
        return probabilities.numpy(), penultimate.numpy()

    return run


def timed(function, *args, **kwargs) -> tuple[Any, float, float]:
    """``function(*args, **kwargs)`` with its wall-clock and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats: int, function, *args, **kwargs) -> tuple[Any, float, float]:
    """The result and the smallest wall and CPU times of ``repeats`` calls."""
    runs = [timed(function, *args, **kwargs) for _ in range(repeats)]
    return runs[-1][0], min(run[1] for run in runs), min(run[2] for run in runs)


def cold_start(clip: Path) -> dict[str, dict[str, float]]:
    """Each scenario in a fresh interpreter (see ``_child``)."""
    results = {}
    for name, mode in {"musicnn_first_call": "musicnn", "both_first_call": "both"}.items():
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--child-clip", str(clip)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        process_wall_s = time.perf_counter() - start
        results[name] = {"process_wall_s": process_wall_s, **json.loads(done.stdout.splitlines()[-1])}
    return results


def _child(mode: str, clip: str) -> None:
    """One cold-start scenario in this fresh process; prints its timings as one JSON line."""
    start = time.perf_counter()
    from genre.features import gtzan57, load_audio, musicnn

    out = {"import_s": time.perf_counter() - start}
    y, out["load_s"], _ = timed(load_audio, clip)

    def extract():
        if mode == "both":
            gtzan57.extract_features(y)
        return musicnn.extract_musicnn(y, sr=22_050)

    _, out["first_call_wall_s"], out["first_call_cpu_s"] = timed(extract)
    _, out["second_call_wall_s"], out["second_call_cpu_s"] = timed(extract)
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(out))


def parity(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Differences between two taggrams of the same patches."""
    diff = np.abs(ours - reference)
    likely = reference >= 0.05  # relative differences of near-zero probabilities mean nothing
    return {
        "patches": len(ours),
        "max_abs": float(diff.max()),
        "p99_abs": float(np.quantile(diff, 0.99)),
        "max_rel_where_p_ge_0.05": float((diff[likely] / reference[likely]).max()),
        "argmax_agreement": float(np.mean(ours.argmax(1) == reference.argmax(1))),
        "corr_of_tag_means": float(np.corrcoef(ours.mean(0), reference.mean(0))[0, 1]),
        "max_abs_of_tag_means": float(np.abs(ours.mean(0) - reference.mean(0)).max()),
    }


def measure(paths: list[Path], repeats: int) -> dict:
    """Time (a), (b) and (c) on every clip and compare the taggrams."""
    from genre.features import gtzan57, load_audio, musicnn
    from genre.features.musicnn_weights import load_weights
    from genre.features.resample import resample_musicnn

    gtzan57.warm_up()
    musicnn.warm_up()
    tensorflow = _tf_model(load_weights())
    reference = np.load(TAGGRAMS) if TAGGRAMS.exists() else None
    rows, original, versus_tf = [], {}, {}
    for path in paths:
        row: dict[str, Any] = {"clip": path.name}

        def ours(path=path):
            return musicnn.extract_musicnn(load_audio(path), sr=22_050)

        def both(path=path):
            y = load_audio(path)
            return gtzan57.extract_features(y), musicnn.extract_musicnn(y, sr=22_050)

        _, row["ours_wall_s"], row["ours_cpu_s"] = best_of(repeats, ours)
        y = load_audio(path)
        _, row["resample_wall_s"], row["resample_cpu_s"] = best_of(
            repeats, resample_musicnn, y, orig_sr=22_050, target_sr=musicnn.MUSICNN_SAMPLE_RATE
        )
        S = musicnn.log_mel(y=y, sr=22_050)
        patches = musicnn.log_mel_patches(S=S)
        row["patches"] = len(patches)
        taggram, row["ours_forward_wall_s"], row["ours_forward_cpu_s"] = best_of(
            repeats, musicnn.taggram, S=S
        )
        tensorflow(patches)  # traces the tf.function for this batch size outside the timing
        (tf_tags, _), row["tf_forward_wall_s"], row["tf_forward_cpu_s"] = best_of(
            repeats, tensorflow, patches
        )
        _, row["both_wall_s"], row["both_cpu_s"] = best_of(repeats, both)
        rows.append(row)
        versus_tf[path.name] = parity(taggram, tf_tags)
        key = f"{path.parent.name}/{path.stem}.au"
        if reference is not None and key in set(reference["IDS"]):
            original[path.name] = parity(taggram, reference["X"][reference["IDS"] == key])
    summary = {
        column: statistics.median(row[column] for row in rows) for column in rows[0] if column.endswith("_s")
    }
    return {
        "per_clip": rows,
        "median": summary,
        "parity_vs_original": original,
        "parity_vs_tensorflow": versus_tf,
    }


def markdown(report: dict) -> str:
    """The report as markdown tables: per-clip medians, cold start, parity."""
    median = report["speed"]["median"]
    lines = [
        f"{report['n_clips']} GTZAN clips of 30 s (28 patches each), one thread on CPU {report['cpu']}, "
        f"best of {report['repeats']}; medians over clips.",
        "",
        "| per 30-s clip | wall s | CPU s |",
        "|---|---|---|",
        f"| (a) ours: decode + resample + mel + forward + pooling | {median['ours_wall_s']:.3f} "
        f"| {median['ours_cpu_s']:.3f} |",
        f"| ours: resampling alone (22,050 to 16,000 Hz, resampy 0.2's kaiser_best) "
        f"| {median['resample_wall_s']:.3f} | {median['resample_cpu_s']:.3f} |",
        f"| ours: forward pass alone (28 patches, NumPy) | {median['ours_forward_wall_s']:.3f} "
        f"| {median['ours_forward_cpu_s']:.3f} |",
        f"| (b) TensorFlow: forward pass alone (28 patches, one batch) | {median['tf_forward_wall_s']:.3f} "
        f"| {median['tf_forward_cpu_s']:.3f} |",
        f"| (c) both: decode + 57 GTZAN features + musicnn features | {median['both_wall_s']:.3f} "
        f"| {median['both_cpu_s']:.3f} |",
        "",
        "| cold start (fresh process) | whole process s | imports s | 1st call s (wall / CPU) "
        "| 2nd call s (wall / CPU) | TensorFlow imported |",
        "|---|---|---|---|---|---|",
    ]
    for name, cold in report["cold_start"].items():
        lines.append(
            f"| {name} | {cold['process_wall_s']:.2f} | {cold['import_s']:.2f} "
            f"| {cold['first_call_wall_s']:.2f} / {cold['first_call_cpu_s']:.2f} "
            f"| {cold['second_call_wall_s']:.3f} / {cold['second_call_cpu_s']:.3f} "
            f"| {cold['tensorflow_imported']} |"
        )
    lines += [
        "",
        "| taggram of (a) vs | clip | max abs | p99 abs | max rel (p >= 0.05) | argmax agreement "
        "| corr of tag means |",
        "|---|---|---|---|---|---|---|",
    ]
    for against in ("original", "tensorflow"):
        for clip, p in report["speed"][f"parity_vs_{against}"].items():
            lines.append(
                f"| {against} | {clip} | {p['max_abs']:.2e} | {p['p99_abs']:.1e} "
                f"| {p['max_rel_where_p_ge_0.05']:.1e} | {p['argmax_agreement']:.3f} "
                f"| {p['corr_of_tag_means']:.6f} |"
            )
    return "\n".join(lines)


def _pin(cpu: int | None) -> None:
    """Re-execute this script with one thread per pool, pinned to one CPU where ``taskset`` exists."""
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if cpu is None else cpu
    command = [sys.executable, *sys.argv]
    taskset = shutil.which("taskset")
    if taskset:
        command = [taskset, "-c", str(cpu), *command]
    os.execve(command[0], command, {**os.environ, **ONE_THREAD, _PINNED: str(cpu)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timings per clip and method; the best counts")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one allowed)")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--child", choices=["musicnn", "both"], help=argparse.SUPPRESS)
    parser.add_argument("--child-clip", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.child_clip)
        return 0
    if _PINNED not in os.environ:
        _pin(args.cpu)
    paths = sorted((GTZAN_DIR / "audio").glob("*/*.wav"))
    if not paths:
        print(f"No GTZAN audio under {GTZAN_DIR / 'audio'}: nothing to measure.", file=sys.stderr)
        return 1
    report = {
        "n_clips": len(paths),
        "repeats": args.repeats,
        "cpu": os.environ[_PINNED],
        "threads": ONE_THREAD,
        "cold_start": cold_start(paths[0]),
    }
    report["speed"] = measure(paths, args.repeats)
    blob = json.dumps(report, indent=2)
    print(blob)
    print()
    print(markdown(report))
    if args.json:
        args.json.write_text(blob + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
