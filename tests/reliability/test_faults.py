"""Faults lose nothing: a batch killed halfway, a cache entry damaged on disk, the tracking server or the
database gone in the middle of a job, a server stopped while it answers.

``pytest -m reliability`` runs this file (the default run deselects it; ``.ci/run`` runs it). Each test
provokes one fault in real processes (``genre`` and ``mlflow`` commands, PostgreSQL) and checks what is
left: the output, the cache, the runs, the study, the files. The PostgreSQL tests (3, 4) are also marked
``integration`` and are skipped, saying why, where no PostgreSQL server is installed. Where timing would
decide whether the fault lands mid-job, the job is frozen (SIGSTOP) at that moment, so the tests do not
depend on the machine's speed. About 4 minutes on 2 shared cores (``python -m pytest -m reliability
tests/reliability/test_faults.py -s`` prints what each fault came to).

==  ===============================  ==========================================  ===========================
#   fault                            what must hold                              before the fixes
==  ===============================  ==========================================  ===========================
1   ``genre extract --jobs 2``       the rerun reads what was cached (those      held (joblib writes each
    killed (SIGKILL, the process     entries untouched) and extracts the rest;   entry whole, then renames)
    group) after 5 of 20 files       its CSV is byte-identical to an
                                     uninterrupted run's in a fresh cache
2   one cache entry's ``output.pkl`` that entry alone is extracted again, the    recomputed, but joblib
    truncated to half                CSV is identical, no traceback              printed a 30-line traceback
3   the MLflow tracking server       the job gives up in seconds (MLflow's       exit 1 and a 200-line
    stopped while ``genre train``    retries set low), exits non-zero with one   traceback; the run stayed
    runs, then restarted             line naming the server; its run is marked   RUNNING for good
                                     FAILED by the next job, and the same
                                     command then completes
4   PostgreSQL restarted (``pg_ctl   every worker exits 0; exactly ``n_trials``  a worker crashed on the
    restart -m fast``) under three   finished trials, distinct parameters, no    lost connection (and, on a
    ``genre tune-optuna`` workers    trial number twice                          new database, on creating
    sharing a study                                                              the tables or a tag)
5   ``genre web`` and ``mlflow       the request in flight is answered (200),    held
    models serve`` sent SIGTERM      then every process of the server exits by
    while they answer a 9.5-min      itself within 30 s (``genre web``: status
    song                             0; ``mlflow models serve``'s launcher dies
                                     of the signal at once, -15, and its
                                     uvicorn finishes the request); no
                                     traceback; no file in its folder or TMPDIR
==  ===============================  ==========================================  ===========================

Test 3 trains k-NN, not the MLP: the job is frozen mid-run, so the model's length does not matter.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from genre.data.synthetic import generate_dataset
from tests.processes import BIN, child_env, free_port, wait_http

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


# --- 1, 2: batch extraction killed halfway; a cache entry truncated ----------------------------------

N_FILES = 20  # 10 classes x 2 clips of 9 s


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("audio"), clips_per_class=2, windows_per_clip=3)


def _extract(audio: Path, out: Path, cache: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "genre"), "extract", str(audio), "--out", str(out), "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(GENRE_CACHE_DIR=str(cache)),
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _entries(cache: Path) -> dict[Path, int]:
    """The cached calls (one per file) and when each was written."""
    return {path: path.stat().st_mtime_ns for path in cache.rglob("output.pkl")}


def _extractor_digest() -> str:
    from genre.features.extraction import _extractor_digest

    return _extractor_digest(("gtzan57",))


@pytest.fixture(scope="module")
def resumed(audio, tmp_path_factory) -> dict:
    """An uninterrupted run in a fresh cache; a run killed halfway in another, then the same command again."""
    digest = _extractor_digest()
    work = tmp_path_factory.mktemp("extract")
    code, _, err = _finish(_extract(audio, work / "reference.csv", work / "cache-reference"))
    assert code == 0, err

    cache = work / "cache"
    victim = _extract(audio, work / "features.csv", cache)
    deadline = time.monotonic() + 240
    while len(_entries(cache)) < N_FILES // 4:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "no file was cached within 240 s"
        time.sleep(0.02)
    _signal_group(victim, signal.SIGSTOP)  # nothing more is written from here on
    time.sleep(0.2)
    _signal_group(victim, signal.SIGKILL)
    victim.wait(timeout=30)
    at_kill = _entries(cache)

    start = time.perf_counter()
    code, out, err = _finish(_extract(audio, work / "features.csv", cache))
    seconds = time.perf_counter() - start
    if _extractor_digest() != digest:
        pytest.skip("genre/features changed while the test ran (another edit in this checkout)")
    return {
        "work": work,
        "cache": cache,
        "reference": (work / "reference.csv").read_bytes(),
        "killed_code": victim.returncode,
        "at_kill": at_kill,
        "rerun": (code, out, err, seconds),
    }


def test_an_extraction_killed_halfway_resumes_from_its_cache(resumed):
    assert resumed["killed_code"] == -signal.SIGKILL
    at_kill = resumed["at_kill"]
    assert 0 < len(at_kill) < N_FILES, len(at_kill)  # killed halfway
    code, out, err, seconds = resumed["rerun"]
    assert code == 0, err
    assert f"{N_FILES} file(s) -> {N_FILES} row(s)" in out and "Traceback" not in err
    after = _entries(resumed["cache"])
    assert len(after) == N_FILES
    # What the killed run had cached was read, not extracted again: the same entries, untouched.
    assert {path: after[path] for path in at_kill} == at_kill
    computed = len(after) - len(at_kill)
    print(
        f"\n[killed halfway] {len(at_kill)} of {N_FILES} cached at the kill; the rerun extracted "
        f"{computed} in {seconds:.1f} s"
    )
    # Byte for byte the uninterrupted run's table: cached and fresh rows are the same floats, because
    # every extraction (in any of these processes, on this machine) runs single-threaded
    # (``extract_features`` pins one thread per pool), and the CSV writes each float the same way.
    assert (resumed["work"] / "features.csv").read_bytes() == resumed["reference"]


def test_a_truncated_cache_entry_is_extracted_again(audio, resumed):
    cache, work = resumed["cache"], resumed["work"]
    damaged = sorted(_entries(cache))[len(_entries(cache)) // 2]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a crash mid-write
    before = _entries(cache)
    time.sleep(0.01)
    code, out, err = _finish(_extract(audio, work / "again.csv", cache))
    assert code == 0, err
    assert "Traceback" not in err and "0 failed" in out, err
    after = _entries(cache)
    assert [path for path in after if after[path] != before[path]] == [damaged]  # only it, again
    assert (work / "again.csv").read_bytes() == resumed["reference"]


# --- 3, 4: PostgreSQL and an MLflow tracking server on it, stopped and restarted ----------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


@dataclass
class Services:
    """PostgreSQL (databases ``mlflow`` and ``optuna``) and ``mlflow server`` on it, each restartable."""

    base: Path
    pg_bin: Path
    postgres: str  # postgresql://postgres@127.0.0.1:PORT
    port: int  # the tracking server's, the same across restarts
    server: subprocess.Popen | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_server(self) -> None:
        log = self.base / "mlflow-server.log"
        command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"{self.postgres}/mlflow"]
        command += ["--artifacts-destination", str(self.base / "artifacts"), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--workers", "1"]
        self.server = subprocess.Popen(
            command,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            cwd=self.base,
            env=child_env(),
            start_new_session=True,
        )
        wait_http(f"{self.tracking_uri}/health", self.server, log)

    def stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        _signal_group(self.server, signal.SIGTERM)
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal_group(self.server, signal.SIGKILL)
            self.server.wait(timeout=20)

    def pg_ctl(self, *args: str) -> None:
        command = [str(self.pg_bin / "pg_ctl"), "-D", str(self.base / "pg" / "data"), *args]
        if os.getuid() == 0:  # PostgreSQL runs as its own user when we are root (scripts/local-postgres.sh)
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    pg_bin = _pg_bin()
    if pg_bin is None or not (pg_bin / "initdb").exists():
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql; .ci/run does this)")
    # PostgreSQL runs as its own user when we are root, so its directory is not under pytest's tmp_path.
    base = Path(tempfile.mkdtemp(prefix="genre-faults-"))
    base.chmod(0o755)
    script = ROOT / "scripts" / "local-postgres.sh"
    started = subprocess.run(
        [str(script), "start", str(base / "pg"), str(free_port())], capture_output=True, text=True
    )
    if started.returncode:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{started.stderr}")
    services = Services(base, pg_bin, started.stdout.strip(), free_port())
    try:
        services.start_server()
        yield services
    finally:
        services.stop_server()
        subprocess.run([str(script), "stop", str(base / "pg")], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded(cache_dir) -> Path:
    """The embedded data extracted once into the session's cache, so each ``genre`` job only loads it."""
    previous = os.environ.get("GENRE_CACHE_DIR")
    os.environ["GENRE_CACHE_DIR"] = str(cache_dir)
    try:
        from genre.features import load_data

        load_data("embedded")
    finally:
        if previous is None:
            os.environ.pop("GENRE_CACHE_DIR")
        else:
            os.environ["GENRE_CACHE_DIR"] = previous
    return cache_dir


#: MLflow's client retries a failed request 7 times with a growing back-off (minutes in all): a few
#: seconds here, so a job notices the server is gone while the test waits.
IMPATIENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


@pytest.mark.integration
def test_the_tracking_server_stopped_mid_training(services, embedded, tmp_path):
    import mlflow

    command = [str(BIN / "genre"), "train", "knn", "--folds", "2", "--jobs", "1"]
    env = child_env(MLFLOW_TRACKING_URI=services.tracking_uri, GENRE_CACHE_DIR=str(embedded), **IMPATIENT)
    client = mlflow.MlflowClient(services.tracking_uri)
    trainer = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # Mid-run: the run exists with its key (its last call before the folds are fitted). Freeze the job
    # there, stop the server, let the job go on: its next call finds no server.
    deadline, run = time.monotonic() + 240, None
    while run is None:
        assert trainer.poll() is None, trainer.communicate()
        assert time.monotonic() < deadline, "no training run appeared within 240 s"
        found = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            "tags.`genre.job` = 'train' and attributes.status = 'RUNNING'",
        )
        run = next((r for r in found if "genre.run_key" in r.data.tags), None)
        time.sleep(0.1)
    _signal_group(trainer, signal.SIGSTOP)
    print(f"\n[mid-run] run {run.info.run_id} after {time.monotonic() - deadline + 240:.1f} s")
    services.stop_server()
    _signal_group(trainer, signal.SIGCONT)
    started = time.monotonic()
    code, out, err = _finish(trainer, timeout=240)
    gave_up = time.monotonic() - started
    print(
        f"\n[server stopped] the job gave up after {gave_up:.1f} s with status {code}: {err.strip()[-300:]}"
    )
    assert code != 0
    assert f"MLflow tracking server {services.tracking_uri}: did not answer" in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]

    services.start_server()  # the server back, on the same database and port
    left = client.get_run(run.info.run_id)
    print(f"[server back] the interrupted run is {left.info.status}")
    start = time.perf_counter()
    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    print(f"[rerun] status {rerun.returncode} in {time.perf_counter() - start:.1f} s")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    closed = client.get_run(run.info.run_id)
    assert closed.info.status == "FAILED", closed.info.status
    assert "process" in closed.data.tags.get("genre.error", ""), closed.data.tags
    runs = client.search_runs([run.info.experiment_id], "tags.`genre.job` = 'train'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


N_TRIALS = 15


def _finished_trials(services: Services, study: str) -> int:
    import psycopg

    with psycopg.connect(f"{services.postgres}/optuna", connect_timeout=5) as db:
        (count,) = db.execute(
            "select count(*) from trials join studies using (study_id) "
            "where study_name = %s and state in ('COMPLETE', 'PRUNED')",
            (study,),
        ).fetchone()
    return count


@pytest.mark.integration
def test_postgresql_restarted_under_three_optuna_workers(services, embedded, tmp_path):
    import optuna

    name = "faults-svm"
    command = [str(BIN / "genre"), "tune-optuna", "svm", "--trials", str(N_TRIALS), "--folds", "3"]
    command += ["--jobs", "1", "--storage", f"{services.postgres}/optuna", "--study-name", name]
    command += ["--heartbeat", "2"]
    env = child_env(MLFLOW_TRACKING_URI=services.tracking_uri, GENRE_CACHE_DIR=str(embedded))
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                finished = _finished_trials(services, name)
            except Exception:  # the study's tables are not created yet
                finished = 0
            if finished >= 3:
                break
            assert all(w.poll() is None for w in workers), "\n=====\n".join(
                log.read_text()[-6000:] for log in logs
            )
            assert time.monotonic() < deadline, "no 3 trials finished within 300 s"
            time.sleep(0.2)
        # Mid-study: every worker still at work, most trials still to run.
        assert all(w.poll() is None for w in workers) and finished < N_TRIALS - 3, finished
        start = time.perf_counter()
        services.pg_ctl(
            "restart", "-m", "fast", "-w", "-t", "60", "-l", str(services.base / "pg" / "server.log")
        )
        print(f"\n[PostgreSQL restarted] after {finished} trials, in {time.perf_counter() - start:.1f} s")
        codes = [w.wait(timeout=180) for w in workers]
    finally:
        for worker in workers:
            _signal_group(worker, signal.SIGKILL)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0, 0], "\n=====\n".join(text[-6000:] for text in texts)
    trials = optuna.load_study(study_name=name, storage=f"{services.postgres}/optuna").get_trials()
    done = [
        t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    states = Counter(t.state.name for t in trials)
    print(f"[study] {dict(states)}")
    assert len(done) == N_TRIALS  # the budget, not one trial more or less
    assert len({tuple(sorted(t.params.items())) for t in done}) == N_TRIALS  # no trial ran twice
    assert len({t.number for t in trials}) == len(trials)


# --- 5: genre web and the scoring server stopped with SIGTERM while they answer -------------------------


@dataclass(frozen=True)
class Served:
    tracking_uri: str
    model_uri: str


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """A served k-NN (``GenrePyfunc``) logged in a throwaway store: fitted on random rows, no training run."""
    import mlflow
    import numpy as np
    import pandas as pd

    from genre.data import FEATURE_COLUMNS
    from genre.models import make_model
    from genre.serving.pyfunc import log_serving_model
    from tests.conftest import use_store

    root = tmp_path_factory.mktemp("served")
    rows = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 57)), columns=list(FEATURE_COLUMNS))
    estimator = make_model("knn").fit(rows, np.repeat(["blues", "jazz", "rock"], 20))
    with pytest.MonkeyPatch.context() as patch:
        uri = use_store(root, patch)
        with mlflow.start_run():
            info = log_serving_model(estimator, windowed=True, input_example=rows.head(3))
    mlflow.set_tracking_uri(None)
    yield Served(uri, info.model_uri)


@pytest.fixture(scope="module")
def long_song(tmp_path_factory) -> Path:
    """Nine and a half minutes of audio (the limit is ten): seconds of work for either server."""
    import numpy as np
    import soundfile as sf

    from genre.data.schema import SAMPLE_RATE
    from genre.data.synthesis import synthesize_clip

    clip = synthesize_clip("drone", rng=np.random.default_rng(3), n_samples=30 * SAMPLE_RATE, sr=SAMPLE_RATE)
    path = tmp_path_factory.mktemp("song") / "long.flac"
    sf.write(path, np.tile(clip, 19), SAMPLE_RATE, format="FLAC")
    return path


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user and system) the processes of group ``pgid`` have used so far, from /proc."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # pgrp; then utime and stime are fields 14 and 15 of stat
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _files(*folders: Path) -> list[str]:
    return sorted(str(path) for folder in folders for path in folder.rglob("*"))


@pytest.mark.parametrize("server", ["genre web", "mlflow models serve"])
def test_a_server_stopped_with_sigterm_while_it_answers(server, served, long_song, cache_dir, tmp_path):
    import base64
    import json
    import threading

    work, temp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    port = free_port()
    song = long_song.read_bytes()
    if server == "genre web":
        command = [str(BIN / "genre"), "web", "--model", served.model_uri, "--port", str(port)]
        ready, path, headers = "/api/health", "/api/analyse", {"X-Filename": "long.flac"}
        body = song
    else:
        command = [str(BIN / "mlflow"), "models", "serve", "-m", served.model_uri, "--env-manager", "local"]
        command += ["--host", "127.0.0.1", "-p", str(port)]
        ready, path, headers = "/ping", "/invocations", {"Content-Type": "application/json"}
        body = json.dumps({"dataframe_records": [{"audio": base64.b64encode(song).decode()}]}).encode()
    log = tmp_path / "server.log"
    env = child_env(MLFLOW_TRACKING_URI=served.tracking_uri, GENRE_CACHE_DIR=str(cache_dir), TMPDIR=str(temp))
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_http(f"http://127.0.0.1:{port}{ready}", process, log, seconds=180)
        answer: dict = {}

        def ask() -> None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, headers)
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    answer["status"], answer["body"] = response.status, json.loads(response.read())
            except Exception as error:  # what the client saw, asserted below
                answer["error"] = repr(error)
            answer["at"] = time.monotonic()

        # SIGTERM while the request is being worked on: once the server has spent 0.2 s of CPU on it (a
        # long song is analysed in a bounded number of windows, so a fixed wait could outlast the answer
        # on a fast machine, or on a loaded one be descheduled past it).
        idle = _group_cpu_seconds(process.pid)
        client = threading.Thread(target=ask)
        client.start()
        deadline = time.monotonic() + 60
        while client.is_alive() and _group_cpu_seconds(process.pid) < idle + 0.2:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert client.is_alive(), answer
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        while _group_alive(process.pid) and time.monotonic() - stopped < 60:
            time.sleep(0.1)
        gone = time.monotonic() - stopped
        client.join(timeout=120)
    finally:
        _signal_group(process, signal.SIGKILL)
    text = log.read_text()
    print(
        f"\n[{server}] exit {code} {gone:.1f} s after SIGTERM; the request in flight: "
        f"{answer.get('status', answer.get('error'))} {answer.get('at', 0) - stopped:.1f} s after it"
    )
    # Exits by itself: genre web with 0; mlflow models serve's launcher dies of the signal (-15, it has no
    # handler) and its uvicorn, told by the kernel (PR_SET_PDEATHSIG), finishes and exits.
    assert code == (0 if server == "genre web" else -signal.SIGTERM), text[-3000:]
    assert gone < 30, f"still running {gone:.0f} s after SIGTERM"
    assert "Traceback" not in text, text[-3000:]
    # The request in flight was answered, not cut off; nothing was written, half or whole.
    assert answer.get("status") == 200 and answer["at"] > stopped, answer
    assert _files(work, temp) == []
