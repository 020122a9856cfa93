"""Serving under load: ``mlflow models serve`` (1 and 2 workers) and ``genre web`` answering concurrent
clients that mix good requests with every kind of bad one.

Usage::

    python benchmarks/serving_load.py [--data PATH.csv|embedded] [--stack default|small]
        [--seconds 60] [--clients 1,4,16] [--workers 1,2] [--no-web] [--json OUT]

Fits a stacking ensemble on ``--data`` (default GTZAN's ``features_30_sec.csv`` in ``../shared`` when it is
there, else the embedded data; ``--stack small``: the tests' one-layer network, 20 epochs), logs and
registers it as ``GenrePyfunc`` in a temporary tracking store, and serves it, one server at a time, with
``mlflow models serve --env-manager local`` at each ``--workers`` count and with ``genre web --model``.
Each server is warmed up (every request kind twice, one after the other, then the largest N for
``--warm-up`` seconds), then answers ``--clients`` N concurrent clients for ``--seconds`` each, N after
N. A client keeps one connection open and sends requests one after the other, drawn from the mix below
(``model_kinds``, ``web_kinds``), each client starting with a different share of the bad kinds so every
kind is sent in every run.

* model server: 1-row and 1000-row feature requests (JSON ``dataframe_split``; 1000 rows also as CSV),
  a 30-s audio file (a real GTZAN clip when ``../shared`` is there, else a synthetic one), and each bad
  request the model refuses with 400 (missing, text and NaN features, an empty batch, both forms, bad
  base64, bytes that are not audio, audio too short or silent, audio over 32 MiB, a body that is not
  JSON), a request without a Content-Type (415), and 100,001 rows as JSON, CSV and Parquet (400, refused
  by ``genre.serving.guard`` before MLflow parses them);
* ``genre web``: a 30-s upload, the page and ``/api/info``, and uploads that are not audio, empty, too
  short, silent (400) or over 32 MiB (413).

Reported per server and N: throughput and p50/p95/p99 latency per request kind (the over-limit kinds
also after their upload: the server's own share), every answer that was not what its kind expects
(goal: a 2xx for every good request, the right 4xx naming the problem for every bad one), that the
server answers a good request after each run, and the resident memory of the server process and its
children (``/proc/<pid>/status`` VmRSS; the ``mlflow`` launcher is not counted) at start, after the
warm-up, after each run and at the end (goal: under 10 % growth after the warm-up). The warm-up is as
long as a measured run at the largest N: a server's memory after warm-up is a high-water mark set by how
many large bodies (the 100,001-row requests: MLflow's server reads each whole before genre's guard
counts its rows) happened to be in flight at once, and a 10-s warm-up at 16 clients left it 600 MB
under what the next minute reached. Prints JSON, then markdown tables.

Bounded: every loop has a count and a time limit (a client stops at ``--seconds`` or 10,000 requests, a
request at 120 s, a server start at 300 s). The client threads share the machine with the server: on
2 cores they take some of its CPU, as real clients on the same host would. ``tests/reliability/
test_load.py`` runs the same machinery for a few seconds and asserts the goals.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre.data.schema import FEATURE_COLUMNS, SAMPLE_RATE

SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
GTZAN_DIR = SHARED_DIR / "data" / "gtzan"
BIN = Path(sys.executable).parent
PARQUET = "application/vnd.apache.parquet"
#: The tests' stack: trains in seconds.
SMALL_STACK = {"nn__hidden_layers": 1, "nn__units": 32, "nn__epochs": 20, "nn__patience": 5}
#: Bounds of every loop: requests per client per run, seconds per request, seconds to start a server.
MAX_REQUESTS = 10_000
REQUEST_TIMEOUT = 120.0
START_TIMEOUT = 300.0


# --- processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
            tree.setdefault(parent, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children, from ``/proc/<pid>/status`` (psutil is not needed)."""
    total = 0
    for each in descendants(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue  # gone meanwhile
    return total


class Service:
    """A server process on a free loopback port: ``mlflow models serve`` or ``genre web``.

    ``pid`` is the process that serves (for ``mlflow models serve``, the uvicorn that its launcher
    starts; its ``--workers`` are that process's children), which ``rss`` measures.
    """

    def __init__(self, name: str, command: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.name, self.log, self.port = name, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [part.replace("{port}", str(self.port)) for part in command]
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.ready_path = ready
        self.pid = self.process.pid

    @classmethod
    def mlflow(cls, model_uri: str, tracking_uri: str, log: Path, *, workers: int = 1, timeout: int = 60):
        mlflow_cli = shutil.which("mlflow", path=str(BIN))
        command = [mlflow_cli, "models", "serve", "-m", model_uri, "--env-manager", "local"]
        command += ["-p", "{port}", "--host", "127.0.0.1", "-w", str(workers), "-t", str(timeout)]
        name = f"mlflow models serve -w {workers}"
        return cls(name, command, {"MLFLOW_TRACKING_URI": tracking_uri}, "/ping", log)

    @classmethod
    def web(cls, model_uri: str, tracking_uri: str, log: Path):
        genre_cli = shutil.which("genre", path=str(BIN))
        command = [genre_cli, "web", "--model", model_uri, "--port", "{port}", "--mlflow-ui", ""]
        return cls("genre web", command, {"MLFLOW_TRACKING_URI": tracking_uri}, "/api/health", log)

    def wait(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds until the server answers its health check; then ``pid`` is the serving process."""
        started = time.monotonic()
        while status(self.url + self.ready_path) != 200:
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.25)
        below = [pid for pid in descendants(self.process.pid) if pid != self.process.pid]
        uvicorn = [pid for pid in below if b"uvicorn" in _cmdline(pid)]
        self.pid = min(uvicorn) if uvicorn else self.process.pid
        return time.monotonic() - started

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def status(url: str) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    parts = urllib.parse.urlsplit(url)
    try:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


# --- requests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of request, and what its answer must be.

    ``good`` kinds expect 200 and ``answers`` answers (prediction rows); bad kinds expect ``status``, and
    the answer's JSON must hold ``names`` in its message (the field or limit at fault) and, when set,
    ``genre_kind`` (the model's) or ``kind`` (the web page's) equal to ``reason``.
    """

    name: str
    body: bytes | None
    content_type: str | None = "application/json"
    method: str = "POST"
    path: str = "/invocations"
    good: bool = False
    status: int = 200
    answers: int = 0
    rows: int = 0
    names: str = ""
    reason: str | None = None
    over_limit: bool = False
    weight: float = 1.0
    headers: tuple[tuple[str, str], ...] = ()

    def problem(self, code: int | None, body: bytes) -> str | None:
        """What is wrong with an answer, or None when it is what this kind expects."""
        if code != self.status:
            return f"HTTP {code}, expected {self.status}: {body[:200]!r}"
        if self.good:
            if self.answers:
                predictions = json.loads(body)["predictions"]
                if len(predictions) != self.answers:
                    return f"{len(predictions)} answers, expected {self.answers}"
            return None
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"message": body.decode(errors="replace")}
        message = " ".join(str(answer.get(key, "")) for key in ("message", "genre_detail", "detail"))
        if self.names not in message:
            return f"answer does not name {self.names!r}: {message[:200]!r}"
        found = answer.get("genre_kind", answer.get("kind"))
        if self.reason is not None and found != self.reason:
            return f"kind {found!r}, expected {self.reason!r}"
        return None


def _wav(y: np.ndarray) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, y, SAMPLE_RATE, format="WAV")
    return buffer.getvalue()


def clip() -> tuple[bytes, str]:
    """A 30-s song: the first GTZAN clip when ``../shared`` is there, else a synthetic one."""
    clips = sorted((GTZAN_DIR / "audio").glob("*/*.wav"))
    if clips:
        return clips[0].read_bytes(), f"GTZAN {clips[0].name}"
    from genre.data.synthesis import synthesize_clip

    y = synthesize_clip("breakbeat", rng=np.random.default_rng(0), n_samples=30 * SAMPLE_RATE, sr=SAMPLE_RATE)
    return _wav(y), "synthetic 30-s WAV"


def _split(rows: Sequence[str], columns: Sequence[str]) -> bytes:
    """A ``dataframe_split`` body from rows already written as JSON lists (fast for 100,001 rows)."""
    head = json.dumps({"dataframe_split": {"columns": list(columns), "data": []}})[:-3]  # up to "data": [
    return f"{head}{', '.join(rows)}]}}}}".encode()


def model_kinds(features: pd.DataFrame, song: bytes) -> list[Kind]:
    """The request mix for ``mlflow models serve`` of a genre model, from real feature rows."""
    from genre.serving import MAX_AUDIO_BYTES, MAX_ROWS, encode_audio

    columns = list(FEATURE_COLUMNS)
    features = features.loc[:, columns].reset_index(drop=True)
    rng = np.random.default_rng(0)
    batch = features.iloc[rng.integers(0, len(features), 1000)].reset_index(drop=True)
    lines = [json.dumps(row) for row in batch.to_numpy().tolist()]
    over = MAX_ROWS + 1
    over_lines = [lines[i % len(lines)] for i in range(over)]
    csv_rows = batch.to_csv(index=False, header=False).splitlines()
    over_csv = ",".join(columns) + "\n" + "\n".join(csv_rows[i % len(csv_rows)] for i in range(over)) + "\n"
    over_parquet = pd.DataFrame(
        np.resize(batch.to_numpy(), (over, len(columns))), columns=columns
    ).to_parquet()
    records = features.head(2).to_dict(orient="records")

    def audio(data: bytes) -> bytes:
        return json.dumps({"dataframe_records": [{"audio": encode_audio(data)}]}).encode()

    def records_body(rows: list[dict[str, Any]]) -> bytes:
        return json.dumps({"dataframe_records": rows}).encode()

    nan = json.dumps({"dataframe_records": [records[0], {**records[1], "tempo": "@"}]}).replace('"@"', "NaN")
    return [
        Kind("1 row", _split(lines[:1], columns), good=True, answers=1, rows=1, weight=8),
        Kind("1000 rows JSON", _split(lines, columns), good=True, answers=1000, rows=1000, weight=2),
        Kind(
            "1000 rows CSV",
            batch.to_csv(index=False).encode(),
            "text/csv",
            good=True,
            answers=1000,
            rows=1000,
            weight=2,
        ),
        Kind("30-s audio", audio(song), good=True, answers=1, weight=2),
        Kind(
            "missing feature",
            _split([json.dumps(r[:-1]) for r in batch.head(2).to_numpy().tolist()], columns[:-1]),
            status=400,
            names=f"missing feature column(s) {columns[-1]}",
            reason="invalid",
        ),
        Kind(
            "text feature",
            records_body([records[0], {**records[1], "tempo": "fast"}]),
            status=400,
            names="tempo",
        ),
        Kind("NaN feature", nan.encode(), status=400, names="row 1, column tempo", reason="invalid"),
        Kind(
            "empty batch",
            json.dumps({"dataframe_split": {"columns": columns, "data": []}}).encode(),
            status=400,
            names="empty batch",
            reason="invalid",
        ),
        Kind("both forms", records_body([{**records[0], "audio": "AAAA"}]), status=400, names="not both"),
        Kind(
            "bad base64",
            records_body([{"audio": "@@not base64@@"}]),
            status=400,
            names="row 0, column 'audio': not valid base64",
        ),
        Kind(
            "not audio",
            audio(b"RIFF....WAVEfmt " + bytes(200)),
            status=400,
            names="row 0",
            reason="unreadable",
        ),
        Kind(
            "audio too short",
            audio(_wav(0.3 * np.sin(np.arange(SAMPLE_RATE) / 5.0))),
            status=400,
            names="row 0",
            reason="too_short",
        ),
        Kind(
            "silent audio", audio(_wav(np.zeros(4 * SAMPLE_RATE))), status=400, names="row 0", reason="silent"
        ),
        Kind(
            "audio over 32 MiB",
            records_body([{"audio": "A" * (MAX_AUDIO_BYTES // 3 * 4 + 8)}]),
            status=400,
            names="audio payload too large",
            reason="too_large",
            weight=0.25,
        ),
        Kind("not JSON", b'{"dataframe_records": [{"tempo": 1', status=400, names="valid JSON"),
        Kind("no Content-Type", records_body(records), None, status=415, names="content types"),
        Kind(
            "100,001 rows JSON",
            _split(over_lines, columns),
            status=400,
            names="too many rows: 100001",
            reason="invalid",
            over_limit=True,
            weight=0.5,
        ),
        Kind(
            "100,001 rows CSV",
            over_csv.encode(),
            "text/csv",
            status=400,
            names="too many rows: 100001",
            reason="invalid",
            over_limit=True,
            weight=0.5,
        ),
        Kind(
            "100,001 rows Parquet",
            over_parquet,
            PARQUET,
            status=400,
            names="too many rows: 100001",
            reason="invalid",
            over_limit=True,
            weight=0.5,
        ),
    ]


def web_kinds(song: bytes) -> list[Kind]:
    """The request mix for ``genre web``: uploads of songs and of files it must refuse, page loads."""
    from genre.web import MAX_UPLOAD_BYTES

    def upload(name: str, data: bytes, **kwargs: Any) -> Kind:
        return Kind(
            name,
            data,
            "application/octet-stream",
            path="/api/analyse",
            headers=(("X-Filename", f"{name.replace(' ', '_')}.wav"),),
            **kwargs,
        )

    return [
        upload("30-s upload", song, good=True, weight=4),
        Kind("page", None, None, method="GET", path="/", good=True, weight=2),
        Kind("info", None, None, method="GET", path="/api/info", good=True, weight=2),
        upload(
            "not audio", b"RIFF....WAVEfmt " + bytes(200), status=400, names="not audio", reason="unreadable"
        ),
        upload("empty upload", b"", status=400, reason="empty"),
        upload(
            "upload too short",
            _wav(0.3 * np.sin(np.arange(SAMPLE_RATE) / 5.0)),
            status=400,
            names="shorter",
            reason="too_short",
        ),
        upload("silent upload", _wav(np.zeros(4 * SAMPLE_RATE)), status=400, names="silent", reason="silent"),
        upload(
            "upload over 32 MiB",
            bytes(MAX_UPLOAD_BYTES + 1),
            status=413,
            names="the limit is 32 MiB",
            reason="too_large",
            weight=0.25,
        ),
    ]


# --- clients ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    status: int | None
    seconds: float
    after_upload: float
    problem: str | None


class Client:
    """One connection, kept alive, reopened when the server closed it."""

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.connection: http.client.HTTPConnection | None = None

    def send(self, kind: Kind) -> Outcome:
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                self.connection.putrequest(kind.method, kind.path, skip_accept_encoding=True)
                for name, value in kind.headers:
                    self.connection.putheader(name, value)
                if kind.content_type is not None:
                    self.connection.putheader("Content-Type", kind.content_type)
                if kind.body is not None:
                    self.connection.putheader("Content-Length", str(len(kind.body)))
                self.connection.endheaders()
                if kind.body:
                    self.connection.send(kind.body)
            except OSError as error:  # the server closed a kept-alive connection: once more, afresh
                self.close()
                if attempt == 2:
                    return Outcome(kind.name, None, time.perf_counter() - started, 0.0, f"send: {error!r}")
                continue
            uploaded = time.perf_counter()
            try:
                response = self.connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                now = time.perf_counter()
                return Outcome(kind.name, None, now - started, now - uploaded, f"answer: {error!r}")
            done = time.perf_counter()
            if response.will_close:
                self.close()
            return Outcome(
                kind.name,
                response.status,
                done - started,
                done - uploaded,
                kind.problem(response.status, body),
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def run_clients(
    url: str,
    kinds: Sequence[Kind],
    *,
    clients: int,
    seconds: float,
    max_requests: int = MAX_REQUESTS,
    seed: int = 0,
) -> dict[str, Any]:
    """``clients`` concurrent clients sending the mix to ``url`` for ``seconds`` (or ``max_requests``
    each); every outcome, and the wall time of the run.

    Client ``i`` first sends the bad kinds ``i``, ``i + clients``, ... each after a good request, even
    past ``seconds`` (a bounded number), so that every run holds every kind; then kinds drawn by
    ``weight`` until ``seconds`` have passed.
    """
    bad = [kind for kind in kinds if not kind.good]
    good = [kind for kind in kinds if kind.good]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        mine = bad[index::clients]
        first = [k for pair in zip(rng.choices(good, k=len(mine)), mine, strict=True) for k in pair]
        connection = Client(url)
        try:
            for n in range(max(max_requests, len(first))):
                if n >= len(first) and time.monotonic() > deadline:
                    break
                kind = (
                    first[n] if n < len(first) else rng.choices(kinds, weights=[k.weight for k in kinds])[0]
                )
                outcome = connection.send(kind)
                with lock:
                    outcomes.append(outcome)
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + REQUEST_TIMEOUT + 30)
    return {"clients": clients, "seconds": time.monotonic() - started, "outcomes": outcomes}


def summary(run: dict[str, Any], kinds: Sequence[Kind]) -> dict[str, Any]:
    """Per kind: requests, per second, p50/p95/p99 (ms; over-limit kinds also after their upload),
    statuses and the answers that were not as expected."""
    by_kind = {kind.name: kind for kind in kinds}
    result: dict[str, Any] = {}
    for name in by_kind:
        mine = [o for o in run["outcomes"] if o.kind == name]
        if not mine:
            continue
        ms = np.array([o.seconds for o in mine]) * 1000
        entry = {
            "n": len(mine),
            "per_s": len(mine) / run["seconds"],
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
            "statuses": dict(Counter(str(o.status) for o in mine)),
            "wrong": [o.problem for o in mine if o.problem][:5],
            "wrong_n": sum(1 for o in mine if o.problem),
        }
        if by_kind[name].over_limit:
            after = np.array([o.after_upload for o in mine]) * 1000
            entry |= {
                "after_upload_p50_ms": float(np.percentile(after, 50)),
                "after_upload_p95_ms": float(np.percentile(after, 95)),
            }
        if by_kind[name].rows:
            entry["rows_per_s"] = entry["per_s"] * by_kind[name].rows
        result[name] = entry
    return result


# --- the benchmark ------------------------------------------------------------------------------------


@dataclass
class Bench:
    model_uri: str
    tracking_uri: str
    tmp: Path
    model: list[Kind]
    web: list[Kind]
    data: str
    song: str
    fit_seconds: float
    results: dict[str, Any] = field(default_factory=dict)


def prepare(data: str, stack: str) -> Bench:
    """Fit, log and register the model in a temporary store; build the request mixes."""
    import mlflow

    from genre.evaluation import fit_model
    from genre.features import load_data
    from genre.models import make_model
    from genre.serving import log_serving_model

    dataset = load_data(data)
    started = time.perf_counter()
    fitted = fit_model(make_model("stacking", SMALL_STACK if stack == "small" else None), dataset)
    fit_seconds = time.perf_counter() - started
    tmp = Path(tempfile.mkdtemp(prefix="serving-load-"))
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("serving-load", artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run():
        log_serving_model(
            fitted, windowed=dataset.windowed, input_example=dataset.X.head(2), registered_model_name="load"
        )
    song, song_name = clip()
    return Bench(
        "models:/load/1",
        tracking_uri,
        tmp,
        model_kinds(dataset.X, song),
        web_kinds(song),
        f"{dataset.name} ({len(dataset.X)} rows)",
        song_name,
        fit_seconds,
    )


def good_after(url: str, kinds: Sequence[Kind]) -> dict[str, Any]:
    """One good request (the first good kind) on a new connection, after a run: its status and time."""
    outcome = Client(url).send(next(kind for kind in kinds if kind.good))
    return {"status": outcome.status, "ms": outcome.seconds * 1000, "problem": outcome.problem}


def warm_up(service: Service, kinds: Sequence[Kind], *, clients: int, seconds: float) -> list[str]:
    """Every kind twice, one at a time (every code path allocates what it needs), then ``clients``
    clients for ``seconds`` (the allocator reaches what concurrent requests hold at once: up to
    ``clients`` bodies of 100 MB and their answers). The answers that were not as expected."""
    problems = []
    warm = Client(service.url)
    for _ in range(2):
        for kind in kinds:
            outcome = warm.send(kind)
            if outcome.problem:
                problems.append(f"{kind.name}: {outcome.problem}")
    warm.close()
    run = run_clients(service.url, kinds, clients=clients, seconds=seconds, seed=99)
    return problems + [f"{o.kind}: {o.problem}" for o in run["outcomes"] if o.problem]


def measure(
    service: Service, kinds: Sequence[Kind], clients: Sequence[int], seconds: float, warm_seconds: float
) -> dict[str, Any]:
    """Warm ``service`` up, run each client count, and measure memory and a good request after each."""
    start_s = service.wait()
    result: dict[str, Any] = {"start_s": start_s, "rss_mb": {"start": service.rss() / 2**20}, "runs": []}
    result["warm_up_problems"] = warm_up(service, kinds, clients=max(clients), seconds=warm_seconds)
    result["rss_mb"]["warm"] = service.rss() / 2**20
    for n in clients:
        run = run_clients(service.url, kinds, clients=n, seconds=seconds)
        result["runs"].append(
            {
                "clients": n,
                "seconds": run["seconds"],
                "kinds": summary(run, kinds),
                "good_after": good_after(service.url, kinds),
                "rss_mb": service.rss() / 2**20,
            }
        )
    rss = result["rss_mb"]
    rss["end"] = service.rss() / 2**20
    rss["growth_after_warm_up"] = rss["end"] / rss["warm"] - 1
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = GTZAN_DIR / "features_30_sec.csv"
    parser.add_argument("--data", default=str(default_data) if default_data.exists() else "embedded")
    parser.add_argument("--stack", choices=["default", "small"], default="default")
    parser.add_argument("--seconds", type=float, default=60.0, help="per client count")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds of concurrent warm-up")
    parser.add_argument("--clients", default="1,4,16", help="client counts, comma-separated")
    parser.add_argument("--workers", default="1,2", help="mlflow models serve --workers, comma-separated")
    parser.add_argument("--no-web", action="store_true", help="skip genre web")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]

    load_before = os.getloadavg()
    bench = prepare(args.data, args.stack)
    services: list[Callable[[], tuple[Service, list[Kind]]]] = [
        lambda w=int(w): (
            Service.mlflow(bench.model_uri, bench.tracking_uri, bench.tmp / f"w{w}.log", workers=w),
            bench.model,
        )
        for w in args.workers.split(",")
    ]
    if not args.no_web:
        services.append(
            lambda: (Service.web(bench.model_uri, bench.tracking_uri, bench.tmp / "web.log"), bench.web)
        )
    try:
        for start in services:  # one server at a time: each has the machine to itself and its clients
            service, kinds = start()
            try:
                bench.results[service.name] = measure(service, kinds, clients, args.seconds, args.warm_up)
            finally:
                service.stop()
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    report = {
        "data": bench.data,
        "stack": args.stack,
        "song": bench.song,
        "fit_seconds": bench.fit_seconds,
        "seconds_per_run": args.seconds,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "results": bench.results,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(tables(bench.results, {kind.name: kind for kind in bench.model + bench.web}))


def tables(results: dict[str, Any], kinds: dict[str, Kind]) -> str:
    """Latency and throughput per kind; the goals per run; memory per server."""
    from genre.evaluation import markdown_table

    latency, goals, memory = [], [], []
    for server, result in results.items():
        for run in result["runs"]:
            wrong_good = wrong_bad = 0
            for name, entry in run["kinds"].items():
                kind = kinds[name]
                wrong_good += entry["wrong_n"] if kind.good else 0
                wrong_bad += 0 if kind.good else entry["wrong_n"]
                rate = f"{entry['per_s']:.2f}" + (
                    f" ({entry['rows_per_s']:,.0f} rows)" if "rows_per_s" in entry else ""
                )
                after = f"{entry['after_upload_p95_ms']:.0f}" if kind.over_limit else "-"
                statuses = ", ".join(f"{code}: {n}" for code, n in sorted(entry["statuses"].items()))
                latency.append(
                    [
                        server,
                        run["clients"],
                        name,
                        entry["n"],
                        rate,
                        entry["p50_ms"],
                        entry["p95_ms"],
                        entry["p99_ms"],
                        after,
                        statuses,
                    ]
                )
            over = [e["after_upload_p95_ms"] for n, e in run["kinds"].items() if kinds[n].over_limit]
            after = run["good_after"]
            goals.append(
                [
                    server,
                    run["clients"],
                    wrong_good,
                    wrong_bad,
                    f"{max(over):.0f}" if over else "-",
                    f"{after['status']} in {after['ms']:.0f} ms",
                ]
            )
        rss = result["rss_mb"]
        memory.append(
            [
                server,
                f"{result['start_s']:.1f}",
                rss["start"],
                rss["warm"],
                " / ".join(f"{run['rss_mb']:.0f}" for run in result["runs"]),
                rss["end"],
                f"{rss['growth_after_warm_up']:+.1%}",
                "yes" if rss["growth_after_warm_up"] < 0.10 else "**no**",
            ]
        )
    latency_frame = pd.DataFrame(
        latency,
        columns=[
            "server",
            "clients",
            "kind",
            "requests",
            "per s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p95 after upload ms",
            "statuses",
        ],
    )
    goals_frame = pd.DataFrame(
        goals,
        columns=[
            "server",
            "clients",
            "good requests not 2xx (goal 0)",
            "bad requests not refused as expected (goal 0)",
            "over-limit p95 after upload ms",
            "good request after the run",
        ],
    )
    memory_frame = pd.DataFrame(
        memory,
        columns=[
            "server",
            "start s",
            "RSS start MB",
            "after warm-up MB",
            "after each run MB",
            "end MB",
            "growth",
            "< 10 %",
        ],
    )
    return "\n\n".join(
        [
            markdown_table(latency_frame, floatfmt=".0f"),
            markdown_table(goals_frame),
            markdown_table(memory_frame, floatfmt=".0f"),
        ]
    )


if __name__ == "__main__":
    main()
