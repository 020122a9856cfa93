"""Serving speed: the genre pyfunc, in both answer layouts, against the same fitted stack in the plain
mlflow.sklearn flavor and against a model-free ceiling.

Usage::

    python benchmarks/serving_speed.py [--data embedded|PATH.csv] [--requests 300] [--batches 30] [--json OUT]

Fits the default stacking ensemble once on ``--data`` (no cross-validation; a GTZAN feature CSV for the
figures of a model trained on real tracks), logs it in a temporary tracking store as ``GenrePyfunc``
(``genre.serving``) and with ``mlflow.sklearn``, and serves them with ``mlflow models serve --env-manager
local`` side by side, requests alternating between servers so all see the same machine load. The genre
pyfunc is served twice: with its default, labelled answer (``records``: a ``probabilities`` map per row),
and started as a batch server with ``SERVING_MODEL_CONFIG='{"layout": "columns"}'`` (how CSV and Parquet
bodies, which carry no ``params``, get the compact layout).

Measured per server: start to first answer, p50/p95 of a 1-row feature request (``dataframe_split``, one
kept-alive connection), rows/s for 1000-row batches (JSON ``dataframe_split``, ``text/csv`` and a Parquet
body), and for the labelled pyfunc the p50 of a 30-s audio request (a real GTZAN clip when ``../shared``
is there, else a synthetic one). A genre server answers feature rows while it warms its audio extractor
on a thread of its own; before the next server starts, the benchmark waits for its first audio answer
(reported as start to first audio answer), so no server starts beside another's warm-up.

In process, on one core (one thread per native pool): the fitted stack's ``GenreClassifier.predict_proba``
(its compiled form, ``genre.serving.compiled``) for one row and for 1000 rows, ``GenreClassifier.predict``
of one row (the request's checks and answer included), and the same model through scikit-learn's
``predict_proba``: median and fastest of repeated calls (the targets are judged on the median).

Prints a JSON blob, then a markdown table with the targets, each a ratio to the ceiling measured in the
same run (1-row p50 at most 1.15x the ceiling's in the same layout; CSV and Parquet batches of the
columns server at least 75 % of the columns ceiling; start to first answer at most 1.5x the ceiling's)
or an in-process time (one row under 1 ms, 1000 rows under 5 ms).

The ceiling is ``ConstantAnswer``, a pyfunc with the genre pyfunc's signature that runs no model and
answers every row with one fixed row of the genre pyfunc's answer, in the layout its server is set to.
What it costs is MLflow's alone (HTTP, parsing, schema enforcement, encoding an answer of the same shape),
so its rows/s bound what any model answering in that layout can reach behind ``mlflow models serve``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from genre.data.schema import FEATURE_COLUMNS, SAMPLE_RATE
from genre.evaluation import fit_model
from genre.features import load_data
from genre.models import make_model
from genre.serving import GenreClassifier, encode_audio, log_serving_model, signature
from genre.settings import MODEL_REQUIREMENTS as PIP_REQUIREMENTS
from genre.settings import SERVING_REQUIREMENTS
from genre.threads import single_threaded

SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
BIN = Path(sys.executable).parent
PARQUET = "application/vnd.apache.parquet"  # the scoring server's content type for a Parquet body


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One ``mlflow models serve`` process and a kept-alive connection to it."""

    def __init__(self, model_uri: str, tracking_uri: str, log: Path, layout: str | None) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": tracking_uri,
        }
        if layout is not None:  # the pyfuncs' answer layout; the sklearn flavor takes no model config
            env["SERVING_MODEL_CONFIG"] = json.dumps({"layout": layout})
        command = [shutil.which("mlflow", path=str(BIN)), "models", "serve", "-m", model_uri]
        command += ["--env-manager", "local", "-p", str(self.port), "--host", "127.0.0.1"]
        self.started = time.perf_counter()
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log = log
        self.connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """POST to /invocations on the kept-alive connection; reconnect once if the server closed it idle."""
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.connection.request("POST", "/invocations", body, {"Content-Type": content_type})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def wait_for_first_answer(self, body: bytes, timeout: float = 300) -> float:
        """Seconds from launch to the first 200 to ``body``."""
        while True:
            try:
                if self.post(body)[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                self.connection = None
            if self.process.poll() is not None or time.perf_counter() - self.started > timeout:
                raise RuntimeError(f"server did not answer:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def timed(self, body: bytes, content_type: str = "application/json") -> float:
        start = time.perf_counter()
        status, answer = self.post(body, content_type)
        elapsed = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(answer[:500])
        return elapsed

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


class ConstantAnswer(mlflow.pyfunc.PythonModel):
    """Answers every row with the same answer row and runs no model: MLflow's own cost, the ceiling.

    Laid out as the genre pyfunc lays out its answer: the served model's ``layout`` setting, or the
    request's ``layout`` parameter.
    """

    def __init__(self, row: dict) -> None:
        self.row = row

    def load_context(self, context) -> None:
        self.layout = (context.model_config or {}).get("layout") or "records"

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """``len(model_input)`` copies of the fixed row, as a frame or as columns."""
        n = len(model_input)
        if ((params or {}).get("layout") or self.layout) == "columns":
            return {
                "genre": [self.row["genre"]] * n,
                "probabilities": {genre: [p] * n for genre, p in self.row["probabilities"].items()},
            }
        return pd.DataFrame({key: [value] * n for key, value in self.row.items()})


def _features_body(rows) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": list(FEATURE_COLUMNS), "data": rows.to_numpy().tolist()}}
    ).encode()


def _clip() -> tuple[bytes, str]:
    clips = sorted((SHARED_DIR / "data" / "gtzan" / "audio").glob("*/*.wav"))
    if clips:
        return clips[0].read_bytes(), f"GTZAN {clips[0].name}"
    import io

    import soundfile as sf

    from genre.data.synthesis import synthesize_clip

    y = synthesize_clip("breakbeat", rng=np.random.default_rng(0), n_samples=30 * SAMPLE_RATE, sr=SAMPLE_RATE)
    buffer = io.BytesIO()
    sf.write(buffer, y, SAMPLE_RATE, format="WAV")
    return buffer.getvalue(), "synthetic 30-s WAV"


def _quantiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}


def _milliseconds(call, repeats: int) -> dict[str, float]:
    """Median and fastest wall time of ``call`` in milliseconds over ``repeats`` calls, after three
    warm-up calls. On a shared machine the fastest says what the code costs, the median what it got."""
    for _ in range(3):
        call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return {"median_ms": statistics.median(seconds) * 1000, "min_ms": min(seconds) * 1000}


def _in_process(fitted, rows: pd.DataFrame) -> dict:
    """Milliseconds per call of the served classifier and of scikit-learn with one thread per native
    pool (one core). ``rows``: 1000 rows of the served columns."""
    classifier = GenreClassifier(fitted)
    one, many = rows.head(1), rows
    one_array, many_array = one.to_numpy(dtype=np.float64), many.to_numpy(dtype=np.float64)
    with single_threaded():
        return {
            "compiled": classifier.compiled is not None,
            "predict_proba_1_row": _milliseconds(lambda: classifier.predict_proba(one_array), 2000),
            "predict_proba_1000_rows": _milliseconds(lambda: classifier.predict_proba(many_array), 50),
            "predict_1_row": _milliseconds(lambda: classifier.predict(one), 2000),
            "sklearn_1_row": _milliseconds(lambda: fitted.predict_proba(one), 300),
            "sklearn_1000_rows": _milliseconds(lambda: fitted.predict_proba(many), 20),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--requests", type=int, default=300, help="1-row requests per server")
    parser.add_argument("--batches", type=int, default=30, help="1000-row requests per server")
    parser.add_argument("--audio", type=int, default=20, help="30-s audio requests")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    dataset = load_data(args.data)
    started = time.perf_counter()
    fitted = fit_model(make_model("stacking"), dataset)
    fit_seconds = time.perf_counter() - started

    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    # Artifacts in the temporary folder too, not in ./mlruns of wherever the benchmark was started.
    experiment = mlflow.create_experiment("serving-bench", artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run():
        log_serving_model(
            fitted,
            windowed=dataset.windowed,
            input_example=dataset.X.head(2),
            registered_model_name="bench-pyfunc",
        )
        mlflow.sklearn.log_model(
            fitted,
            name="plain",
            serialization_format="cloudpickle",
            input_example=dataset.X.head(2),
            pip_requirements=PIP_REQUIREMENTS,
            code_paths=[str(Path(make_model.__code__.co_filename).parent)],
            registered_model_name="bench-sklearn",
        )
        answer_row = GenreClassifier(fitted).predict(dataset.X.head(1)).iloc[0].to_dict()
        mlflow.pyfunc.log_model(
            name="constant",
            python_model=ConstantAnswer(answer_row),
            pip_requirements=SERVING_REQUIREMENTS,
            signature=signature(),
            model_config={"layout": "records"},
            registered_model_name="bench-constant",
        )

    rng = np.random.default_rng(0)
    one_row = [_features_body(dataset.X.iloc[[i % len(dataset.X)]]) for i in range(args.requests)]
    # 1000 distinct rows: resampled rows moved by a millionth, so no body format gains from repeats.
    big = dataset.X.iloc[rng.integers(0, len(dataset.X), 1000)].reset_index(drop=True)
    big = big * (1 + rng.normal(0, 1e-6, big.shape))
    batch = _features_body(big)
    batch_csv = big.to_csv(index=False).encode()
    batch_parquet = big.to_parquet(index=False)
    clip, clip_name = _clip()
    audio = json.dumps({"dataframe_records": [{"audio": encode_audio(clip)}]}).encode()
    in_process = _in_process(fitted, big)

    # name: (model, layout the server is started with)
    models = {
        "genre pyfunc": ("models:/bench-pyfunc/1", "records"),
        "genre pyfunc, columns": ("models:/bench-pyfunc/1", "columns"),
        "plain mlflow.sklearn": ("models:/bench-sklearn/1", None),
        "constant answer": ("models:/bench-constant/1", "records"),
        "constant answer, columns": ("models:/bench-constant/1", "columns"),
    }
    servers: dict[str, Server] = {}
    results: dict[str, dict] = {}
    try:
        # Started one after the other: two servers loading TensorFlow at once on 2 cores would each look slow.
        for name, (uri, layout) in models.items():
            log = tmp / f"{name.replace(' ', '_').replace(',', '')}.log"
            servers[name] = Server(uri, tracking_uri, log, layout)
            results[name] = {"start_to_first_answer_s": servers[name].wait_for_first_answer(one_row[0])}
            if name.startswith("genre"):  # its warm-up done before the next server starts
                servers[name].timed(audio)
                results[name]["start_to_first_audio_answer_s"] = time.perf_counter() - servers[name].started
        for server in servers.values():  # warm-up
            for body in one_row[:20]:
                server.timed(body)
            server.timed(batch)
        single: dict[str, list[float]] = {name: [] for name in servers}
        for body in one_row:
            for name, server in servers.items():
                single[name].append(server.timed(body))
        bodies = {
            "json": (batch, "application/json"),
            "csv": (batch_csv, "text/csv"),
            "parquet": (batch_parquet, PARQUET),
        }
        batches = {(name, kind): [] for name in servers for kind in bodies}
        for _ in range(args.batches):
            for name, server in servers.items():
                for kind, (body, content_type) in bodies.items():
                    batches[name, kind].append(server.timed(body, content_type))
        pyfunc = servers["genre pyfunc"]
        pyfunc.timed(audio)
        audio_seconds = [pyfunc.timed(audio) for _ in range(args.audio)]
    finally:
        for server in servers.values():
            server.stop()
    for name in servers:
        results[name]["layout"] = models[name][1]
        results[name]["one_row"] = _quantiles(single[name])
        for kind in bodies:
            results[name][f"batch_1000_{kind}_rows_per_s"] = 1000 / statistics.median(batches[name, kind])
    results["genre pyfunc"]["audio_30s"] = {**_quantiles(audio_seconds), "clip": clip_name}

    report = {
        "data": dataset.name,
        "rows": len(dataset.frame),
        "windowed": dataset.windowed,
        "fit_seconds": fit_seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu": _cpu_name(),
        "results": results,
        "in_process": in_process,
        "ratios": _ratios(results),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(results, in_process))
    shutil.rmtree(tmp, ignore_errors=True)


#: Each genre server's ceiling: the constant answer in the same layout.
CEILING = {
    "genre pyfunc": "constant answer",
    "genre pyfunc, columns": "constant answer, columns",
    "plain mlflow.sklearn": "constant answer",
}


def _ratios(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Each server's figures over its ceiling's (same layout): 1-row p50 and start-up (x), batches (share)."""
    ratios = {}
    for name, ceiling in CEILING.items():
        ours, floor = results[name], results[ceiling]
        ratios[name] = {
            "one_row_p50": ours["one_row"]["p50_ms"] / floor["one_row"]["p50_ms"],
            "start_to_first_answer": ours["start_to_first_answer_s"] / floor["start_to_first_answer_s"],
            **{
                f"batch_1000_{kind}": ours[f"batch_1000_{kind}_rows_per_s"]
                / floor[f"batch_1000_{kind}_rows_per_s"]
                for kind in ("json", "csv", "parquet")
            },
        }
    return ratios


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    return f"{os.cpu_count()} CPUs"


def _table(results: dict[str, dict], in_process: dict[str, float]) -> str:
    """The servers' figures, one column per server, with each target (a ratio to the ceiling in the same
    layout, judged on both genre servers); then the in-process times."""
    names = list(results)
    ratios = _ratios(results)
    genre = ("genre pyfunc", "genre pyfunc, columns")

    def each(measure) -> list[str]:
        return [measure(results[name]) for name in names]

    def ratio(key: str, style: str) -> list[str]:
        return [
            (f"{ratios[name][key]:.2f}x" if style == "x" else f"{ratios[name][key]:.0%}")
            if name in ratios
            else "-"
            for name in names
        ]

    def rate(kind: str):
        return lambda r: f"{r[f'batch_1000_{kind}_rows_per_s']:,.0f} rows/s"

    rows = [
        ("1-row p50", each(lambda r: f"{r['one_row']['p50_ms']:.1f} ms"), "-", None),
        (
            "  over the ceiling (same layout)",
            ratio("one_row_p50", "x"),
            "<= 1.15x",
            all(ratios[name]["one_row_p50"] <= 1.15 for name in genre),
        ),
        ("1-row p95", each(lambda r: f"{r['one_row']['p95_ms']:.1f} ms"), "-", None),
        ("1000-row JSON batches", each(rate("json")), "-", None),
        ("  as a share of the ceiling (same layout)", ratio("batch_1000_json", "%"), "-", None),
    ]
    for kind in ("csv", "parquet"):
        rows.append(
            (f"1000-row {kind.upper() if kind == 'csv' else 'Parquet'} batches", each(rate(kind)), "-", None)
        )
        rows.append(
            (
                "  as a share of the ceiling (same layout)",
                ratio(f"batch_1000_{kind}", "%"),
                ">= 75 % (columns)",
                ratios["genre pyfunc, columns"][f"batch_1000_{kind}"] >= 0.75,
            )
        )
    rows += [
        (
            "30-s audio p50",
            [f"{results['genre pyfunc']['audio_30s']['p50_ms']:.0f} ms"] + ["-"] * (len(names) - 1),
            "-",
            None,
        ),
        ("start to first answer", each(lambda r: f"{r['start_to_first_answer_s']:.1f} s"), "-", None),
        (
            "  over the ceiling's (same layout)",
            ratio("start_to_first_answer", "x"),
            "<= 1.5x",
            all(ratios[name]["start_to_first_answer"] <= 1.5 for name in genre),
        ),
        (
            "start to first audio answer",
            each(
                lambda r: (
                    f"{r['start_to_first_audio_answer_s']:.1f} s"
                    if "start_to_first_audio_answer_s" in r
                    else "-"
                )
            ),
            "-",
            None,
        ),
    ]
    lines = [f"| measure | {' | '.join(names)} | target | met |", "|---" * (len(names) + 3) + "|"]
    for label, cells, target, met in rows:
        lines.append(f"| {label} | {' | '.join(cells)} | {target} | {_verdict(met)} |")
    compiled = "compiled" if in_process["compiled"] else "**not compiled**: scikit-learn"
    lines += [
        "",
        f"| in process, one thread per pool: median (fastest) | GenreClassifier ({compiled}) | scikit-learn "
        "| target | met |",
        "|---|---|---|---|---|",
    ]

    def timed(key: str) -> str:
        return f"{in_process[key]['median_ms']:.2f} ms ({in_process[key]['min_ms']:.2f})"

    for label, ours, theirs, limit in (
        ("1 row, predict_proba", "predict_proba_1_row", "sklearn_1_row", 1.0),
        ("1000 rows, predict_proba", "predict_proba_1000_rows", "sklearn_1000_rows", 5.0),
    ):
        met = in_process[ours]["median_ms"] < limit
        lines.append(f"| {label} | {timed(ours)} | {timed(theirs)} | < {limit:g} ms | {_verdict(met)} |")
    lines.append(f"| 1 row, predict (checks and answer too) | {timed('predict_1_row')} | - | - | - |")
    return "\n".join(lines)


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


if __name__ == "__main__":
    main()
