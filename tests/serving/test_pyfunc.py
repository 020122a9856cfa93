"""The served model: a small stack trained, registered and served by the real ``mlflow models serve``.

One tracking store, one registered stack and one server per module (the server starts once); every bad
request must get a 400 naming the problem and leave the server answering good requests.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from threadpoolctl import threadpool_info

from genre.data import Dataset
from genre.data.schema import FEATURE_COLUMNS, SAMPLE_RATE
from genre.data.synthesis import synthesize_clip
from genre.errors import RequestError
from genre.features import load_data
from genre.features.sets import spread
from genre.models import make_model
from genre.registry import ANSWER_COLUMNS, register
from genre.serving import (
    EXCERPT_SECONDS,
    MAX_AUDIO_BYTES,
    MAX_ROWS,
    GenreClassifier,
    encode_audio,
    windowing,
)
from genre.training import train_run
from tests.conftest import GTZAN_30, GTZAN_AUDIO, require, use_store, with_libsvm
from tests.rounding import probability_bound, sums_apart

#: A stack that trains in seconds: a one-layer network, 20 epochs.
SMALL_STACK = {"nn__hidden_layers": 1, "nn__units": 32, "nn__epochs": 20, "nn__patience": 5}
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Store:
    uri: str
    dataset: Dataset
    estimator: object
    model_uri: str


@pytest.fixture(scope="module")
def store(tmp_path_factory, cache_dir) -> Store:
    """A tracking store holding one registered stack, trained on the embedded data (2 folds)."""
    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        uri = use_store(root, patch)
        dataset = load_data("embedded")
        trained = train_run("stacking", dataset, params=SMALL_STACK, n_splits=2)
        registration = register(trained.run_id)
        yield Store(uri, dataset, trained.model, registration.model_uri)
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def in_process(store):
    """The registered model loaded in this process, as a user of the registry would."""
    return mlflow.pyfunc.load_model(store.model_uri)


@pytest.fixture(scope="module")
def server(store, tmp_path_factory) -> str:
    """``mlflow models serve`` of the champion on a free loopback port, as the README runs it."""
    yield from _serve(store, tmp_path_factory, {})


@pytest.fixture(scope="module")
def columns_server(store, tmp_path_factory) -> str:
    """The champion served for batch clients: answers laid out as columns by default."""
    yield from _serve(store, tmp_path_factory, {"SERVING_MODEL_CONFIG": json.dumps({"layout": "columns"})})


def _serve(store: Store, tmp_path_factory: pytest.TempPathFactory, extra: dict[str, str]) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": store.uri}
    env.update(extra)
    log = tmp_path_factory.mktemp("server") / "server.log"
    mlflow_cli = shutil.which("mlflow", path=str(BIN))
    command = [mlflow_cli, "models", "serve", "-m", store.model_uri, "--env-manager", "local"]
    command += ["-p", str(port), "--host", "127.0.0.1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while _status(url + "/ping") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _post(url: str, body: object, content_type: str = "application/json") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _split(frame: pd.DataFrame) -> dict:
    # Not DataFrame.to_json, which rounds to 10 significant digits; json writes floats exactly.
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}


def _wav(y: np.ndarray, *, format: str = "WAV", sr: int = SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format=format)
    return buffer.getvalue()


def _song() -> tuple[bytes, int]:
    """A real 30-s GTZAN clip when the shared data is there, else a synthetic one; and its windows."""
    clips = sorted(GTZAN_AUDIO.glob("*/*.wav")) if GTZAN_AUDIO.is_dir() else []
    if clips:
        return clips[0].read_bytes(), 10
    y = synthesize_clip("breakbeat", rng=np.random.default_rng(1), n_samples=30 * SAMPLE_RATE, sr=SAMPLE_RATE)
    return _wav(y), 10


def _same_answers(served: list[dict], local: pd.DataFrame) -> None:
    """The server's answers are the model's in this process, bit for bit, on any CPU: the same
    ``GenreClassifier`` code runs in both processes on this machine's BLAS kernels, with one thread per
    native pool (``single_threaded``), on the same rows in the same batch (so the same shapes); floats
    cross JSON exactly (Python writes the shortest repr that reads back to the same float)."""
    assert [row["genre"] for row in served] == local["genre"].tolist()
    for row, expected in zip(served, local["probabilities"], strict=True):
        assert row["probabilities"] == expected  # same keys, same order, same floats


def test_ping_and_health(server):
    assert _status(server + "/ping") == 200 and _status(server + "/health") == 200


def test_feature_rows_in_any_column_order_match_the_model_in_process(server, store, in_process):
    rows = store.dataset.X.sample(7, random_state=0)
    shuffled = rows[rows.columns[::-1]]
    status, body = _post(server, _split(shuffled))
    assert status == 200
    _same_answers(body["predictions"], in_process.predict(rows))
    expected = store.estimator.predict_proba(rows)  # the trained stack itself
    served = np.array([list(row["probabilities"].values()) for row in body["predictions"]])
    # The served model computes the stack compiled, scikit-learn in its own order: within the bound.
    assert (np.abs(served - expected).max(axis=1) <= probability_bound(store.estimator, rows)).all()
    assert "windows" not in body["predictions"][0]


@pytest.mark.gtzan
def test_served_fast_paths_give_the_reference_probabilities_on_gtzan_rows(store):
    """One thread per pool and ``VectorizedSVC`` change no answer: GTZAN's 1000 real feature rows through
    the served classifier, against the stack on libsvm with its default thread pools, within the bound
    on two evaluations of the stack's sums in any orders (libsvm's loops, BLAS's kernels and threads)."""
    rows = load_data(require(GTZAN_30)).X
    answer = GenreClassifier(store.estimator).predict(rows)
    reference = with_libsvm(store.estimator)
    expected = reference.predict_proba(rows)
    served = np.array([list(row.values()) for row in answer["probabilities"]])
    assert (np.abs(served - expected).max(axis=1) <= probability_bound(store.estimator, rows)).all()
    assert answer["genre"].tolist() == reference.classes_[expected.argmax(axis=1)].tolist()


def test_gtzan_id_columns_and_other_extras_are_ignored(server, store):
    """MLflow's signature rule: columns outside the signature are dropped before the model sees them."""
    row = store.dataset.frame.head(1)[["filename", "label", *FEATURE_COLUMNS]].assign(note="hello")
    status, body = _post(server, {"dataframe_records": row.to_dict(orient="records")})
    assert status == 200 and len(body["predictions"]) == 1


@pytest.mark.parametrize("body_format", ["csv", "parquet"])
def test_batch_bodies_in_csv_and_parquet_match_the_model_in_process(server, store, in_process, body_format):
    """The formats docs/results.md recommends for batches, with a GTZAN CSV's id columns left in."""
    frame = store.dataset.frame.sample(50, random_state=1)[["filename", "label", *FEATURE_COLUMNS]]
    if body_format == "csv":
        status, body = _post(server, frame.to_csv(index=False).encode(), "text/csv")
    else:
        status, body = _post(server, frame.to_parquet(index=False), "application/vnd.apache.parquet")
    assert status == 200, body
    _same_answers(body["predictions"], in_process.predict(frame[list(FEATURE_COLUMNS)]))


def test_audio_rows_are_windowed_and_averaged(server, in_process, store):
    song, windows = _song()
    clip = (Path(store.dataset.source) / "drone" / "drone.00000.wav").read_bytes()  # 6 s: two windows
    flac = _wav(sf.read(io.BytesIO(clip))[0], format="FLAC")
    request = pd.DataFrame({"audio": [encode_audio(song), encode_audio(flac)]})
    status, body = _post(server, {"dataframe_records": request.to_dict(orient="records")})
    assert status == 200, body
    answers = body["predictions"]
    assert [row["windows"] for row in answers] == [windows, 2]
    for row in answers:  # each a mean of windows' normalised rows: 1 within a sum's rounding
        probabilities = row["probabilities"].values()
        assert sum(probabilities) == pytest.approx(1.0, rel=0, abs=sums_apart(len(probabilities) + 2, 1.0))
    _same_answers(answers, in_process.predict(request))
    assert answers[1]["genre"] == "drone"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing column", "missing feature column(s) tempo"),
        ("both forms", "not both"),
        ("no known column", "missing feature column(s) chroma_stft_mean"),
        ("text value", "tempo"),
        ("NaN", "row 1, column tempo"),
        ("Infinity", "not finite"),
        ("null", "not finite"),
        ("empty batch", "empty batch"),
        ("bad base64", "not valid base64"),
        ("a server path", "not valid base64"),
        ("not audio", "not audio libsndfile can decode"),
        ("too short", "shorter than one 3.00 s window"),
        ("silent", "silent"),
        ("too large", "audio payload too large"),
        ("not json", ""),
    ],
)
def test_bad_requests_get_400_naming_the_problem_and_the_server_carries_on(server, store, case, message):
    rows = store.dataset.X.head(2)
    records = rows.to_dict(orient="records")
    audio = {
        "bad base64": "@@not base64@@",
        "a server path": "/etc/passwd",
        "not audio": encode_audio(b"RIFF....WAVEfmt " + bytes(200)),
        "too short": encode_audio(_wav(0.3 * np.sin(np.arange(SAMPLE_RATE) / 5.0))),
        "silent": encode_audio(_wav(np.zeros(4 * SAMPLE_RATE))),
        "too large": "A" * (MAX_AUDIO_BYTES // 3 * 4 + 8),
    }
    if case in audio:
        body: object = {"dataframe_records": [{"audio": audio[case]}]}
    elif case == "missing column":
        body = _split(rows.drop(columns="tempo"))
    elif case == "both forms":
        body = {"dataframe_records": [{**records[0], "audio": audio["silent"]}]}
    elif case == "no known column":
        body = {"dataframe_records": [{"colour": "blue"}]}
    elif case == "text value":
        body = {"dataframe_records": [records[0], {**records[1], "tempo": "fast"}]}
    elif case in ("NaN", "Infinity", "null"):
        text = json.dumps({"dataframe_records": [records[0], {**records[1], "tempo": "@"}]})
        body = text.replace('"@"', case).encode()
    elif case == "empty batch":
        body = {"dataframe_split": {"columns": list(FEATURE_COLUMNS), "data": []}}
    else:
        body = b'{"dataframe_records": [{"tempo": 1'
    status, answer = _post(server, body)
    assert status == 400, answer
    assert message in answer["message"]
    assert "Traceback" not in answer["message"] and "stack_trace" not in answer
    kinds = {"not audio": "unreadable", "too short": "too_short", "silent": "silent"}
    kinds["too large"] = "too_large"
    if case in kinds:  # what went wrong, as data beside the message, for clients such as the web page
        assert (answer["genre_kind"], answer["genre_subject"]) == (kinds[case], "row 0")
        assert answer["genre_detail"] in answer["message"]
    good, _ = _post(server, _split(rows))
    assert good == 200


def test_predict_command_answers_files_and_folders_and_names_what_it_cannot_read(store, in_process, tmp_path):
    song, windows = _song()
    library = tmp_path / "library"
    (library / "album").mkdir(parents=True)
    (library / "album" / "song.wav").write_bytes(song)
    (library / "album" / "cover.jpg").write_bytes(b"\xff\xd8 not audio, skipped by its extension")
    (library / "notes.txt").write_text("not audio")
    (library / "album" / "broken.mp3").write_bytes(b"ID3 but nothing after it")
    missing = str(tmp_path / "missing.flac")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri}
    out = {suffix: tmp_path / f"answers.{suffix}" for suffix in ("csv", "json")}
    runs = [
        subprocess.run(
            [shutil.which("genre", path=str(BIN)), "predict", str(library), missing, "--out", str(path)],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        for path in out.values()
    ]
    done = runs[0]
    assert [run.returncode for run in runs] == [3, 3], done.stderr
    assert "skipped 2 file(s) that are not audio" in done.stderr
    (line,) = done.stdout.splitlines()
    genre = in_process.unwrap_python_model().classifier.predict_audio([song])
    assert line.startswith(f"{library / 'album' / 'song.wav'}: {genre['genre'][0]}  (")
    assert line.count(", ") == 2 and f"of {windows} window(s) agree)" in line
    assert f"{library / 'album' / 'broken.mp3'}: error: " in done.stderr and "not audio" in done.stderr
    assert f"{missing}: error: cannot read the file (No such file or directory)" in done.stderr
    assert "Traceback" not in done.stderr
    table = pd.read_csv(out["csv"])
    assert table.columns.tolist() == list(ANSWER_COLUMNS)
    album = library / "album"
    assert table["path"].tolist() == [str(album / "broken.mp3"), str(album / "song.wav"), missing]
    answered = table.iloc[1]
    assert answered["genre"] == genre["genre"][0] and answered["windows"] == windows
    top = sorted(genre["probabilities"][0].values(), reverse=True)[:3]
    probabilities = answered[["probability", "second_probability", "third_probability"]].tolist()
    assert probabilities == pytest.approx(top, abs=5e-5)  # the table rounds to 4 decimals
    assert answered["agreement"] == pytest.approx(genre["agreement"][0], abs=5e-5)  # idem
    assert table["error"].isna().tolist() == [False, True, False]
    assert pd.read_json(out["json"]).fillna(-1).equals(table.fillna(-1))  # the same table, as JSON


# --- GenreClassifier in-process: the rules, without a server ----------------------------------------


@pytest.fixture(scope="module")
def knn() -> GenreClassifier:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(60, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    y = np.repeat(["jazz", "rock", "metal"], 20)
    return GenreClassifier(make_model("knn").fit(rows, y))


def test_strings_and_booleans_in_process_are_named(knn):
    rows = pd.DataFrame(np.zeros((2, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS)).astype(object)
    rows.loc[1, "rms_mean"] = "loud"
    rows["tempo"] = True
    with pytest.raises(RequestError, match=r"row 0, column tempo: True.*row 1, column rms_mean: 'loud'"):
        knn.predict(rows)
    numeric_text = rows.assign(rms_mean="0.5", tempo="120")
    assert len(knn.predict(numeric_text)) == 2


def test_row_limit(knn):
    rows = pd.DataFrame(np.zeros((MAX_ROWS + 1, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    with pytest.raises(RequestError, match=f"too many rows: {MAX_ROWS + 1}"):
        knn.predict(rows)


def test_clip_models_cut_audio_into_30_s_windows(knn):
    clip_model = GenreClassifier(knn.estimator, **windowing(False))
    y = synthesize_clip("drone", rng=np.random.default_rng(0), n_samples=65 * SAMPLE_RATE, sr=SAMPLE_RATE)
    assert clip_model.predict_audio([_wav(y)])["windows"].tolist() == [2]
    preview = clip_model.predict_audio([_wav(y[: 20 * SAMPLE_RATE])], names=["song.wav"])
    assert preview["windows"].tolist() == [1] and preview["partial"].tolist() == [True]


def test_song_probabilities_are_the_mean_of_its_windows(knn):
    y = synthesize_clip("drone", rng=np.random.default_rng(2), n_samples=7 * SAMPLE_RATE, sr=SAMPLE_RATE)
    answer = knn.predict_audio([_wav(y)])
    from genre.features import extract_windows

    windows = pd.DataFrame(extract_windows(sf.read(io.BytesIO(_wav(y)), dtype="float32")[0]))
    expected = knn.estimator.predict_proba(windows).mean(axis=0)
    assert answer["windows"].tolist() == [2]
    # The classifier's compiled k-NN against scikit-learn's, each window within the bound; their mean
    # moves by no more than the larger, plus the mean's own rounding (2 terms and a division).
    bound = probability_bound(knn.estimator, windows).max() + sums_apart(2 + 1, 1.0)
    assert (np.abs(np.array(list(answer["probabilities"][0].values())) - expected) <= bound).all()


def test_long_songs_are_analysed_in_excerpts_spread_over_all_of_them(knn):
    """A 2-min song holds 40 3-s windows; by default 90 s of them (30) are analysed, evenly spread from
    the first window to the last, and ``full`` analyses all. The agreement is the share of analysed
    windows whose own top genre is the song's."""
    y = synthesize_clip("drone", rng=np.random.default_rng(3), n_samples=120 * SAMPLE_RATE, sr=SAMPLE_RATE)
    y[60 * SAMPLE_RATE :] = synthesize_clip(
        "breakbeat", rng=np.random.default_rng(4), n_samples=60 * SAMPLE_RATE, sr=SAMPLE_RATE
    )
    excerpt = knn.predict_audio([_wav(y)], timeline=True)
    full = knn.predict_audio([_wav(y)], timeline=True, full=True)
    assert EXCERPT_SECONDS == 90.0
    assert excerpt["windows"].tolist() == [30] and full["windows"].tolist() == [40]
    starts = [window["start_s"] for window in excerpt["timeline"][0]]
    assert starts[0] == 0.0 and starts[-1] == full["timeline"][0][-1]["start_s"]  # the whole song
    assert set(starts) <= {window["start_s"] for window in full["timeline"][0]}
    for answer in (excerpt, full):
        per_window = [max(w["probabilities"], key=w["probabilities"].get) for w in answer["timeline"][0]]
        share = np.mean([genre == answer["genre"][0] for genre in per_window])
        assert answer["agreement"][0] == share and 0 < share < 1  # two halves, two kinds of sound


def test_spread_keeps_the_ends_and_is_even():
    assert spread(range(10), None) == list(range(10)) and spread(range(3), 5) == [0, 1, 2]
    assert spread(range(0, 100, 10), 4) == [0, 30, 60, 90]
    assert spread(range(9), 1) == [4]  # one excerpt: the middle, not the intro


def test_the_estimator_runs_with_one_thread_per_pool_and_the_pools_are_restored(knn):
    class Probe:
        """Records the native thread pools' sizes while it predicts."""

        classes_ = knn.estimator.classes_

        def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
            self.seen = {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
            return np.full((len(rows), len(self.classes_)), 1 / len(self.classes_))

    before = {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
    probe = Probe()
    GenreClassifier(probe).predict(pd.DataFrame(np.zeros((2, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS))
    assert probe.seen and set(probe.seen.values()) == {1}
    assert {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()} == before


def test_request_params_ask_for_the_timeline_and_the_columns_layout(server, store):
    """The signature's parameters reach the model: a timeline per audio file, and a dictionary of
    columns holding the same numbers as the labelled rows."""
    song, windows = _song()
    status, body = _post(
        server, {"dataframe_records": [{"audio": encode_audio(song)}], "params": {"timeline": True}}
    )
    assert status == 200, body
    (answer,) = body["predictions"]
    timeline = answer["timeline"]
    assert len(timeline) == answer["windows"] == windows
    assert [w["start_s"] for w in timeline] == [3.0 * k for k in range(windows)]
    assert timeline[0]["end_s"] == pytest.approx(66149 / SAMPLE_RATE)
    mean = {
        genre: np.mean([w["probabilities"][genre] for w in timeline]) for genre in answer["probabilities"]
    }
    # The answer is the mean of the windows' probabilities, in some order: a sum of positive terms and a
    # division each.
    assert mean == pytest.approx(answer["probabilities"], rel=sums_apart(windows + 1, 1.0), abs=0)

    rows = _split(store.dataset.X.head(20))
    _, labelled = _post(server, rows)
    status, columns = _post(server, {**rows, "params": {"layout": "columns"}})
    assert status == 200, columns
    predictions = columns["predictions"]
    assert predictions["genre"] == [row["genre"] for row in labelled["predictions"]]
    for genre, values in predictions["probabilities"].items():  # one server, the same batch: equal bits
        assert values == [row["probabilities"][genre] for row in labelled["predictions"]]
    status, refused = _post(server, {**rows, "params": {"layout": "table"}})
    assert status == 400 and "layout 'table'" in refused["message"] and refused["genre_subject"] == "params"


@pytest.mark.parametrize("body_format", ["csv", "parquet"])
def test_a_batch_server_answers_csv_and_parquet_in_columns(columns_server, server, store, body_format):
    """CSV and Parquet bodies carry no parameters: a server started with the columns layout as its
    setting answers them in columns, with the numbers of the labelled answer."""
    frame = store.dataset.frame.head(30)[["filename", *FEATURE_COLUMNS]]
    body = frame.to_csv(index=False).encode() if body_format == "csv" else frame.to_parquet(index=False)
    kind = "text/csv" if body_format == "csv" else "application/vnd.apache.parquet"
    status, columns = _post(columns_server, body, kind)
    assert status == 200, columns
    _, labelled = _post(server, body, kind)
    assert columns["predictions"]["genre"] == [row["genre"] for row in labelled["predictions"]]


def test_the_web_page_answers_alike_through_the_endpoint_and_in_process(server, store):
    """``genre web --endpoint`` asks the server for the timeline: the page gets the JSON the model
    loaded in process gives it, timeline and window length included."""
    from genre.web import EndpointBackend, LocalBackend

    song, windows = _song()
    served = EndpointBackend(server).analyse(song, "song.wav")
    classifier = GenreClassifier(store.estimator, **windowing(True))
    local = LocalBackend(classifier, label="").analyse(song, "song.wav")
    assert served["windows"] == local["windows"] == len(served["timeline"]) == windows
    assert served["window_seconds"] == local["window_seconds"] == pytest.approx(66149 / SAMPLE_RATE)
    # Bit for bit, as ``_same_answers`` says: the same code on this machine's kernels in both processes,
    # one thread per pool, the same audio cut into the same windows; JSON carries floats exactly.
    assert served["genre"] == local["genre"]
    assert served["probabilities"] == local["probabilities"]
    for far, near in zip(served["timeline"], local["timeline"], strict=True):
        assert far["start_s"] == near["start_s"]
        assert far["probabilities"] == near["probabilities"]


def test_the_web_page_gets_records_from_a_server_started_for_columns(columns_server):
    """A batch server answers in columns by default; the page asks for records and still gets one row."""
    from genre.web import EndpointBackend

    song, windows = _song()
    served = EndpointBackend(columns_server).analyse(song, "song.wav")
    assert served["windows"] == windows == len(served["timeline"])


def test_a_file_shorter_than_the_models_window_is_scored_over_what_it_has(store):
    """A model of 30-s clips scores a 20-s preview as one partial window, and says so; below one 3-s
    window a file is still refused."""
    clips = load_data("embedded", windows=False)
    classifier = GenreClassifier(make_model("knn").fit(clips.X, clips.y), **windowing(False))
    rng = np.random.default_rng(5)
    preview = synthesize_clip("drone", rng=rng, n_samples=20 * SAMPLE_RATE, sr=SAMPLE_RATE)
    buffer = io.BytesIO()
    sf.write(buffer, preview, SAMPLE_RATE, format="WAV")
    answer = classifier.predict_audio([buffer.getvalue()], timeline=True).iloc[0]
    assert answer["windows"] == 1 and bool(answer["partial"])
    assert answer["timeline"][0]["end_s"] == pytest.approx(20.0)
    buffer = io.BytesIO()
    sf.write(buffer, preview[: 2 * SAMPLE_RATE], SAMPLE_RATE, format="WAV")
    with pytest.raises(RequestError, match=r"2.00 s of audio is shorter than one 3.00 s window") as error:
        classifier.predict_audio([buffer.getvalue()])
    assert error.value.kind == "too_short"
    full = GenreClassifier(store.estimator, **windowing(True))
    song, windows = _song()
    assert not bool(full.predict_audio([song]).iloc[0]["partial"])
