"""Batch scoring speed: Spark local[2] (``genre.batch``) against in-process pandas ``pyfunc.predict``.

Usage::

    python benchmarks/batch_scoring.py [--sizes 10000 100000 1000000] [--copies 20] [--json OUT]

Fits the default stacking ensemble once on GTZAN's ``features_30_sec.csv`` (a whole-clip model, so a 30-s
clip is one window) and logs it as the served pyfunc in a temporary tracking store. Then, for each size,
feature rows drawn with replacement from the real 3-s rows (``features_3_sec_subset_classical_jazz_rock.csv``)
in a Parquet file, and for audio ``--copies`` copies of the real GTZAN clips, measures:

* **pandas**: read the input, ``pyfunc.predict`` in requests of at most ``MAX_ROWS`` rows (16 audio files),
  one probability column per genre, write Parquet -- one process, the model already loaded;
* **Spark, cold**: a new ``spark_session("local[2]")`` and its first ``score_batch``: JVM start, model
  download and check on the driver, Python workers importing TensorFlow and loading the model;
* **Spark, warm**: the same job again in that session (workers already started): the steady state of a
  long-running session. The model is still loaded once per task, as ``spark_udf`` does in local mode.

Prints a JSON blob, then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from genre.batch import PROBABILITY_PREFIX, score_batch, spark_session
from genre.data import load_csv
from genre.data.schema import FEATURE_COLUMNS
from genre.evaluation import fit_model
from genre.models import make_model
from genre.serving import MAX_ROWS, encode_audio, log_serving_model

SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
GTZAN = SHARED_DIR / "data" / "gtzan"
AUDIO_PER_REQUEST = 16  # files per in-process request: ~21 MB of 30-s WAVs, inside MAX_AUDIO_BYTES


def _pandas_features(model: mlflow.pyfunc.PyFuncModel, source: Path, out: Path) -> float:
    started = time.perf_counter()
    rows = pd.read_parquet(source)
    answers = pd.concat(
        [
            model.predict(rows.iloc[i : i + MAX_ROWS][list(FEATURE_COLUMNS)])
            for i in range(0, len(rows), MAX_ROWS)
        ],
        ignore_index=True,
    )
    _write(rows["filename"], answers, out)
    return time.perf_counter() - started


def _pandas_audio(model: mlflow.pyfunc.PyFuncModel, files: list[Path], out: Path) -> float:
    started = time.perf_counter()
    answers = []
    for i in range(0, len(files), AUDIO_PER_REQUEST):
        chunk = files[i : i + AUDIO_PER_REQUEST]
        answers.append(model.predict(pd.DataFrame({"audio": [encode_audio(p.read_bytes()) for p in chunk]})))
    _write(pd.Series(map(str, files)), pd.concat(answers, ignore_index=True), out)
    return time.perf_counter() - started


def _write(ids: pd.Series, answers: pd.DataFrame, out: Path) -> None:
    """The columns ``score_batch`` writes: id, genre, one probability column per genre."""
    probabilities = pd.DataFrame(answers["probabilities"].tolist()).add_prefix(PROBABILITY_PREFIX)
    table = pd.concat([ids.reset_index(drop=True).rename("id"), answers[["genre"]], probabilities], axis=1)
    table.to_parquet(out)


def _spark(model_uri: str, source: Path | list[Path], out: Path, *, audio: bool) -> dict[str, float]:
    """Session start, a cold job and a warm one, in seconds."""
    started = time.perf_counter()
    spark = spark_session("local[2]")
    startup = time.perf_counter() - started
    try:
        cold = score_batch(model_uri, source, out, audio=audio, spark=spark, overwrite=True)
        warm = score_batch(model_uri, source, out, audio=audio, spark=spark, overwrite=True)
    finally:
        spark.stop()
    if cold.failed or warm.failed:
        raise RuntimeError(f"rows failed: {cold.failures[:3]}")
    return {"startup_s": startup, "cold_s": cold.seconds, "warm_s": warm.seconds}


def _row(n: int, pandas_s: float, spark: dict[str, float]) -> dict[str, float]:
    with_startup = spark["startup_s"] + spark["cold_s"]
    return {
        "rows": n,
        "pandas_s": pandas_s,
        "pandas_rows_per_s": n / pandas_s,
        "spark_startup_s": spark["startup_s"],
        "spark_with_startup_s": with_startup,
        "spark_with_startup_rows_per_s": n / with_startup,
        "spark_warm_s": spark["warm_s"],
        "spark_warm_rows_per_s": n / spark["warm_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--copies", type=int, default=20, help="copies of each real clip for the audio run")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("batch-bench")
    dataset = load_csv(GTZAN / "features_30_sec.csv")
    started = time.perf_counter()
    fitted = fit_model(make_model("stacking"), dataset)
    fit_seconds = time.perf_counter() - started
    with mlflow.start_run():
        log_serving_model(
            fitted, windowed=False, input_example=dataset.X.head(2), registered_model_name="bench"
        )
    model_uri = "models:/bench/1"
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    load_seconds = time.perf_counter() - started

    windows = pd.read_csv(GTZAN / "features_3_sec_subset_classical_jazz_rock.csv")
    rng = np.random.default_rng(0)
    features = []
    for n in args.sizes:
        rows = windows.iloc[rng.integers(0, len(windows), n)].reset_index(drop=True)
        rows["filename"] = [f"row{i:07d}" for i in range(n)]
        source = tmp / f"rows_{n}.parquet"
        # Small row groups: Spark splits a Parquet file by row group, so one huge group is one task.
        rows[["filename", *FEATURE_COLUMNS]].to_parquet(source, row_group_size=5_000)
        pandas_s = _pandas_features(model, source, tmp / "pandas.parquet")
        features.append(_row(n, pandas_s, _spark(model_uri, source, tmp / "spark.parquet", audio=False)))
        print(json.dumps(features[-1]), flush=True)

    clips = sorted((GTZAN / "audio").glob("*/*.wav"))
    folder = tmp / "audio"
    folder.mkdir()
    files = []
    for copy in range(args.copies):
        for clip in clips:
            files.append(folder / f"{clip.stem}.copy{copy:03d}.wav")
            shutil.copyfile(clip, files[-1])
    pandas_s = _pandas_audio(model, files, tmp / "pandas_audio.parquet")
    audio = {
        "clips": len(clips),
        "copies": args.copies,
        **_row(len(files), pandas_s, _spark(model_uri, folder, tmp / "spark_audio.parquet", audio=True)),
    }
    report = {
        "model": "default stacking ensemble fitted on features_30_sec.csv (whole-clip model)",
        "fit_seconds": fit_seconds,
        "pandas_model_load_seconds": load_seconds,
        "cores": os.cpu_count(),
        "versions": {name: version(name) for name in ("pyspark", "mlflow", "pandas", "pyarrow")},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "features": features,
        "audio": audio,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    shutil.rmtree(tmp, ignore_errors=True)


def _table(report: dict) -> str:
    lines = [
        "| input | rows | pandas in-process | Spark local[2], warm session | Spark incl. start-up "
        "| warm vs pandas |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in [
        *(("feature rows", r) for r in report["features"]),
        ("30-s WAV files", report["audio"]),
    ]:
        lines.append(
            f"| {label} | {row['rows']:,} | {row['pandas_rows_per_s']:,.0f} rows/s ({row['pandas_s']:.1f} s) "
            f"| {row['spark_warm_rows_per_s']:,.0f} rows/s ({row['spark_warm_s']:.1f} s) "
            f"| {row['spark_with_startup_rows_per_s']:,.0f} rows/s ({row['spark_with_startup_s']:.1f} s) "
            f"| {row['spark_warm_rows_per_s'] / row['pandas_rows_per_s']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
