"""The web demo's API and pages, served by a real uvicorn on a loopback port (no browser: that is
``test_web_browser.py``). A k-NN model registered in a throwaway store keeps this suite fast.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf

from genre.data.schema import SAMPLE_RATE
from genre.data.synthesis import synthesize_clip
from genre.features import load_data
from genre.registry import register
from genre.serving import GenreClassifier, memory
from genre.training import train_run
from genre.web import app as web
from tests.conftest import use_store
from tests.processes import free_port
from tests.rounding import sums_apart

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Site:
    url: str
    backend: web.LocalBackend
    uri: str
    source_run_id: str


@pytest.fixture(scope="module")
def site(tmp_path_factory, cache_dir) -> Iterator[Site]:
    """A registered k-NN (embedded data, 2 folds) behind ``create_app``, on uvicorn in a thread."""
    import uvicorn

    root = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        uri = use_store(root, patch)
        trained = train_run("knn", load_data("embedded"), n_splits=2)
        register(trained.run_id)
        backend = web.load_backend()
        app = web.create_app(backend, mlflow_ui="http://mlflow.example:5000")
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        try:
            yield Site(url, backend, uri, trained.run_id)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    mlflow.set_tracking_uri(None)


def wav(y: np.ndarray, *, format: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, SAMPLE_RATE, format=format)
    return buffer.getvalue()


def song(seconds: float = 12.0) -> bytes:
    """A synthetic drone song, long enough for several 3-s windows."""
    y = synthesize_clip(
        "drone", rng=np.random.default_rng(3), n_samples=int(seconds * SAMPLE_RATE), sr=SAMPLE_RATE
    )
    return wav(y, format="FLAC")


def call(
    url: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict | str, dict[str, str]]:
    request = urllib.request.Request(url + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, raw, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, head = error.code, error.read(), dict(error.headers)
    text = raw.decode()
    return (
        status,
        (json.loads(text) if head.get("content-type", "").startswith("application/json") else text),
        head,
    )


def analyse(url: str, data: bytes, name: str = "song.flac") -> tuple[int, dict]:
    status, body, _ = call(
        url, "/api/analyse", data, {"X-Filename": name, "Content-Type": "application/octet-stream"}
    )
    return status, body


def test_a_song_gets_its_genre_timeline_and_the_version_that_answered(site):
    data = song()
    status, body = analyse(site.url, data)
    assert status == 200, body
    expected = site.backend.classifier.predict_audio([data]).iloc[0]  # what the server would answer
    assert body["genre"] == expected["genre"] == "drone"
    # Equal bits: the server runs in a thread of this process, on the same classifier, one thread per
    # native pool, the same audio; JSON carries floats exactly.
    assert body["probabilities"] == expected["probabilities"]
    assert body["windows"] == expected["windows"] == len(body["timeline"]) == 4
    assert [w["start_s"] for w in body["timeline"]] == pytest.approx([0.0, 3.0, 6.0, 9.0], abs=1e-3)
    mean = np.mean([list(w["probabilities"].values()) for w in body["timeline"]], axis=0)
    # A mean of 4 positive terms, in some order, on each side: a sum and a division each.
    np.testing.assert_allclose(mean, list(body["probabilities"].values()), rtol=sums_apart(4 + 1, 1.0))
    assert body["model"] == "genre-classifier version 1 (@champion)"
    assert body["file"] == "song.flac"


def test_the_timeline_averages_to_the_answer():
    from genre.models import make_model

    ds = load_data("embedded")
    classifier = GenreClassifier(make_model("knn").fit(ds.X, ds.y))
    answer = classifier.predict_audio([song(9.5)], timeline=True).iloc[0]
    timeline = answer["timeline"]
    assert answer["windows"] == len(timeline) == 3
    assert [w["start_s"] for w in timeline] == pytest.approx([0, 3, 6], abs=1e-3)
    assert [w["end_s"] for w in timeline] == pytest.approx([3, 6, 9], abs=1e-3)
    mean = np.mean([[w["probabilities"][c] for c in classifier.classes] for w in timeline], axis=0)
    expected = [answer["probabilities"][c] for c in classifier.classes]
    np.testing.assert_allclose(mean, expected, rtol=sums_apart(3 + 1, 1.0))  # 3 terms and a division


@pytest.mark.parametrize(
    ("data", "status", "kind", "title"),
    [
        (b"this is a text file, not a song\n" * 10, 400, "unreadable", "not audio"),
        (b"", 400, "empty", "empty"),
        ("short", 400, "too_short", "too short"),
        ("silent", 400, "silent", "silent"),
    ],
    ids=["not audio", "empty", "too short", "silent"],
)
def test_bad_files_get_plain_words_and_the_app_keeps_answering(site, data, status, kind, title):
    if data == "short":
        data = wav(np.sin(np.linspace(0, 2000, SAMPLE_RATE)).astype(np.float32))  # 1 s
    elif data == "silent":
        data = wav(np.zeros(4 * SAMPLE_RATE, dtype=np.float32))
    got, body = analyse(site.url, data, name="bad.wav")
    assert (got, body["kind"]) == (status, kind), body
    assert title in body["title"].lower()
    assert body["detail"].startswith("bad.wav")
    assert analyse(site.url, song(6.5))[0] == 200


def test_uploads_over_the_limit_are_refused_before_they_are_read(site, monkeypatch):
    monkeypatch.setattr(web, "MAX_UPLOAD_BYTES", 1000)
    status, body = analyse(site.url, b"\0" * 1001)  # Content-Length says too much
    assert (status, body["kind"]) == (413, "too_large") and "too large" in body["title"]
    assert "1 KiB" not in body["detail"] and "limit is" in body["detail"]

    # No Content-Length: counted while streaming, and refused before the rest is sent.
    host, port = site.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"POST /api/analyse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(50):
                conn.sendall(b"190\r\n" + b"\0" * 400 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what the limit is for
        assert conn.recv(64).startswith(b"HTTP/1.1 413")


def test_every_upload_is_reported_so_that_its_memory_is_handed_back(site, monkeypatch):
    """``genre.serving.memory`` hears of each analysed upload, good or bad, with its size."""
    sizes: list[int] = []
    monkeypatch.setattr(memory, "answered", sizes.append)
    data = song(6.5)
    assert analyse(site.url, data)[0] == 200
    assert analyse(site.url, b"not audio", name="bad.wav")[0] == 400
    assert sizes == [len(data), len(b"not audio")]


def test_the_client_file_name_is_only_a_label(site):
    status, body = analyse(site.url, b"not audio", name="..%2F..%2F..%2Fetc%2Fpasswd")
    assert status == 400 and body["detail"].startswith("passwd:")
    assert "root:" not in json.dumps(body)


def test_versions_view_lists_scores_and_mlflow_ui_links(site):
    status, body, _ = call(site.url, "/api/models")
    assert status == 200 and body["name"] == "genre-classifier"
    (version,) = body["versions"]
    assert version["version"] == "1" and version["aliases"] == ["champion"]
    assert version["model"] == "knn" and version["protocol"] == "grouped"
    assert 0.0 < version["scores"]["accuracy"] <= 1.0 and "f1_macro" in version["scores"]
    assert version["source_run_id"] == site.source_run_id
    assert re.fullmatch(
        rf"http://mlflow\.example:5000/#/experiments/\d+/runs/{site.source_run_id}", version["source_run_url"]
    )
    assert version["registration_run_url"].endswith(version["registration_run_id"])


def test_pages_and_assets_are_served_locally(site):
    for path in ["/", "/models"]:
        status, html, head = call(site.url, path)
        assert status == 200 and head["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith(("/", "data:")) for a in assets), assets  # no CDN
        for asset in (a for a in assets if a.startswith("/static/")):
            assert call(site.url, asset)[0] == 200
    for path in web.STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{path.name} loads from the web"
    assert call(site.url, "/static/../web.py")[0] == 404
    status, info, _ = call(site.url, "/api/info")
    assert info["model"].endswith("(@champion)") and len(info["classes"]) == 10
    assert info["max_upload_bytes"] == web.MAX_UPLOAD_BYTES and ".mp3" in info["accepted"]


def test_genre_web_without_a_registered_model_says_what_to_do(tracking):
    done = subprocess.run(
        [str(BIN / "genre"), "web", "--port", "9"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "no registered model 'genre-classifier' with alias @champion" in done.stderr
    assert "genre register" in done.stderr


def test_endpoint_backend_passes_on_the_server_answer_and_its_errors(site):
    """An ``mlflow models serve`` stand-in: the JSON shapes the scoring server answers."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Fake(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            audio = request["dataframe_records"][0]["audio"]
            if audio == "YmFk":  # b"bad"
                status, body = (
                    400,
                    {
                        "error_code": "INVALID_PARAMETER_VALUE",
                        # As MLflow's scoring server words it: the request echoed, then the error.
                        "message": "Failed to predict data '      audio\n0  YmFk'. \n"
                        "Error: row 0: 3 bytes that are not audio libsndfile can decode",
                        # ... and the error as data, which genre.serving.pyfunc adds.
                        "genre_kind": "unreadable",
                        "genre_subject": "row 0",
                        "genre_detail": "3 bytes that are not audio libsndfile can decode",
                    },
                )
            else:
                status, body = (
                    200,
                    {"predictions": [{"genre": "jazz", "probabilities": {"jazz": 1.0}, "windows": 4}]},
                )
                if request.get("params", {}).get("timeline"):
                    body["predictions"][0]["timeline"] = [
                        {"start_s": 3.0 * k, "end_s": 3.0 * k + 2.5, "probabilities": {"jazz": 1.0}}
                        for k in range(4)
                    ]
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = web.load_backend(endpoint=f"http://127.0.0.1:{server.server_port}/")
        answer = backend.analyse(b"good", "a.wav")
        assert (answer["genre"], answer["windows"], answer["window_seconds"]) == ("jazz", 4, 2.5)
        assert [w["start_s"] for w in answer["timeline"]] == [0.0, 3.0, 6.0, 9.0]
        with pytest.raises(web.RequestError) as bad:
            backend.analyse(b"bad", "b.wav")
        assert bad.value.kind == "unreadable" and str(bad.value).startswith("b.wav: 3 bytes")
    finally:
        server.shutdown()
    with pytest.raises(web.GenreError, match="cannot reach the model server"):
        web.EndpointBackend(f"http://127.0.0.1:{free_port()}").analyse(b"x", "c.wav")


def test_genre_web_says_so_when_it_listens_beyond_this_machine():
    from genre.web.app import exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    warning = exposure_warning("0.0.0.0")
    assert "listening on 0.0.0.0" in warning and "no authentication" in warning
