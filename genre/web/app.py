"""``genre web``: the "discover your sound" page -- drop a song, see its genre -- on the champion model.

A small FastAPI app (FastAPI and uvicorn come with MLflow) serving plain HTML, CSS and JavaScript from
``genre/web/static`` -- no CDN, no build step -- and a JSON API behind it:

* ``POST /api/analyse``: the request body *is* the audio file (``fetch(url, {body: file})``), so no
  multipart parser is needed and the size limit is enforced while reading: a body over
  ``MAX_UPLOAD_BYTES`` is refused (413) before it is all received. The bytes are decoded in memory and
  dropped with the request; the client's file name (``X-Filename`` header) only labels messages and is
  never used as a path. Answers the genre, all probabilities, the window-by-window timeline and the
  model version that answered; bad audio gets a 400 with a plain-words ``title`` and the ``detail``.
* ``GET /api/models``: the registered model's versions with their aliases, CV scores (the model-card
  tags ``genre.cv_*_mean``) and links into the MLflow UI's runs; the page ``/models`` shows them.
* ``GET /api/info``: which model answers, the classes and the limits, for the page to show.

Two backends answer, with the same JSON: the registered model loaded in-process from ``name@alias`` (or
any model URI), or a running ``mlflow models serve`` endpoint, asked for the timeline by the request's
``params``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genre.errors import GenreError, RegistryError, RequestError
from genre.features import AUDIO_EXTENSIONS
from genre.registry import load_classifier
from genre.serving import (
    AUDIO_COLUMN,
    MAX_AUDIO_BYTES,
    MAX_AUDIO_SECONDS,
    GenreClassifier,
    encode_audio,
    memory,
)
from genre.settings import CHAMPION, MODEL_NAME
from genre.tracking import configure_tracking

__all__ = [
    "ACCEPTED_SUFFIXES",
    "MAX_UPLOAD_BYTES",
    "STATIC_DIR",
    "Backend",
    "EndpointBackend",
    "LocalBackend",
    "create_app",
    "exposure_warning",
    "list_versions",
    "load_backend",
    "serve",
]

log = logging.getLogger(__name__)

#: The page's static files, shipped inside the package (pyproject package-data).
STATIC_DIR = Path(__file__).with_name("static")
#: One upload: the served model's per-request audio limit, so the page refuses what the server would.
MAX_UPLOAD_BYTES = MAX_AUDIO_BYTES
#: What the file picker offers (what the extractor reads); the bytes, not the name, decide whether a
#: file is audio.
ACCEPTED_SUFFIXES = AUDIO_EXTENSIONS

#: Plain-words headlines for ``RequestError.kind``; the detail message follows on the page.
TITLES = {
    "too_large": "This file is too large",
    "unreadable": "This file is not audio we can read",
    "empty": "This file is empty",
    "too_long": "This song is too long",
    "too_short": "This clip is too short",
    "silent": "This clip is silent",
}


class Backend(Protocol):
    """What answers the page: one audio file's bytes in, a JSON-ready answer out."""

    label: str  # the model that answers, e.g. "genre-classifier version 3 (@champion)"
    classes: list[str]

    def analyse(self, data: bytes, name: str) -> dict[str, Any]:
        """Genre, probabilities, windows and (if available) the per-window timeline; ``RequestError``
        for audio that cannot be answered."""
        ...


@dataclass
class LocalBackend:
    """The registered model loaded in this process.

    Requests are answered one at a time (a lock): feature extraction already keeps a core busy, and the
    stack's Keras network is not meant to be called from several threads at once.
    """

    classifier: GenreClassifier
    label: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.classifier.classes)

    def analyse(self, data: bytes, name: str) -> dict[str, Any]:
        with self._lock:
            answer = self.classifier.predict_audio([data], names=[name], timeline=True)
        return _page_answer(answer.iloc[0].to_dict(), self.label)


@dataclass
class EndpointBackend:
    """A running ``mlflow models serve`` of the model: the page posts the song there as base64 audio.

    The request asks for the timeline (the signature's ``timeline`` parameter); a model served from an
    older registration, without that parameter, answers without it and the page draws no timeline.
    """

    url: str
    label: str = ""
    classes: list[str] = field(default_factory=list)
    timeout: float = 300.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.label = self.label or f"mlflow models serve at {self.url}"

    def analyse(self, data: bytes, name: str) -> dict[str, Any]:
        if len(data) > MAX_UPLOAD_BYTES:
            raise RequestError(_too_large(len(data)), kind="too_large")
        records = [{AUDIO_COLUMN: encode_audio(data)}]
        # The records layout whatever the server's default (a batch server answers in columns).
        params = {"timeline": True, "layout": "records"}
        body = json.dumps({"dataframe_records": records, "params": params}).encode()
        request = urllib.request.Request(
            self.url + "/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                row = json.loads(response.read())["predictions"][0]
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = {"message": text[:500]}
            if error.code == 400 and body.get("genre_kind"):
                # The served model's own error, as data (genre.serving.pyfunc): its kind and its detail.
                raise RequestError(body["genre_detail"], kind=body["genre_kind"], subject=name) from None
            message = str(body.get("message", ""))[:300]
            raise GenreError(f"the model server answered HTTP {error.code}: {message}") from None
        except OSError as error:
            raise GenreError(f"cannot reach the model server at {self.url}: {error}") from None
        return _page_answer(row, self.label)


def load_backend(
    *,
    name: str = MODEL_NAME,
    alias: str = CHAMPION,
    model: str | None = None,
    endpoint: str | None = None,
) -> LocalBackend | EndpointBackend:
    """The backend ``genre web`` answers with: an endpoint, a model URI, or ``name@alias`` (default).

    The alias is resolved to a version number first and that exact version is loaded, so the version the
    page names is the one that answers even if ``@champion`` moves while the app runs.

    Raises
    ------
    RegistryError
        No such registered model, alias or URI.
    """
    if endpoint is not None:
        return EndpointBackend(endpoint)
    if model is not None:
        return LocalBackend(load_classifier(model=model), label=model)
    configure_tracking()
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias).version
    except MlflowException:
        raise RegistryError(
            f"no registered model {name!r} with alias @{alias}; train and register one first "
            "(genre train stacking && genre register), or pass --model / --endpoint"
        ) from None
    classifier = load_classifier(model=f"models:/{name}/{version}")
    return LocalBackend(classifier, label=f"{name} version {version} (@{alias})")


def list_versions(name: str = MODEL_NAME, *, mlflow_ui: str | None = None) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first: aliases, model, protocol, CV scores and run links.

    Scores are the model-card tags ``genre.cv_<score>_mean`` that ``genre register`` sets. Links point at
    ``mlflow_ui`` (e.g. ``http://127.0.0.1:5000``): the training run the version came from, and the
    registration run that logged the served model.
    """
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        # A version found by search carries no aliases here; the registered model has them all.
        aliases = client.get_registered_model(name).aliases
    except MlflowException:
        return []
    experiments: dict[str, str | None] = {}

    def link(run_id: str | None) -> str | None:
        if not run_id or not mlflow_ui:
            return None
        if run_id not in experiments:
            try:
                experiments[run_id] = client.get_run(run_id).info.experiment_id
            except MlflowException:
                experiments[run_id] = None
        experiment = experiments[run_id]
        return f"{mlflow_ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}" if experiment else None

    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = version.tags
        source = tags.get("genre.source_run_id")
        rows.append(
            {
                "version": str(version.version),
                "aliases": sorted(a for a, v in aliases.items() if str(v) == str(version.version)),
                "created": version.creation_timestamp,
                "model": tags.get("genre.model"),
                "features": tags.get("genre.features", "gtzan57"),
                "protocol": tags.get("genre.protocol"),
                "test_accuracy": (
                    float(tags["genre.test_accuracy"]) if "genre.test_accuracy" in tags else None
                ),
                "leaky": tags.get("genre.leaky"),
                "scores": {
                    key.removeprefix("genre.cv_").removesuffix("_mean"): float(value)
                    for key, value in sorted(tags.items())
                    if key.startswith("genre.cv_") and key.endswith("_mean")
                },
                "source_run_id": source,
                "source_run_url": link(source),
                "registration_run_id": version.run_id,
                "registration_run_url": link(version.run_id),
            }
        )
    return rows


def create_app(
    backend: Backend, *, name: str = MODEL_NAME, mlflow_ui: str | None = "http://127.0.0.1:5000"
) -> FastAPI:
    """The FastAPI app of the page and its API, answering with ``backend``."""
    app = FastAPI(title="genre - discover your sound", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def problem(status: int, title: str, detail: str, kind: str) -> JSONResponse:
        return JSONResponse({"title": title, "detail": detail, "kind": kind}, status_code=status)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/models", include_in_schema=False)
    def models_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "models.html")

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "model": backend.label,
            "name": name,
            "classes": backend.classes,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "max_seconds": MAX_AUDIO_SECONDS,
            "accepted": list(ACCEPTED_SUFFIXES),
            "mlflow_ui": mlflow_ui,
        }

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        return {"name": name, "mlflow_ui": mlflow_ui, "versions": list_versions(name, mlflow_ui=mlflow_ui)}

    # Analyses run on threads of their own: one for a model in this process (it answers one file at a
    # time anyway), a few for a remote one. Not anyio's pool: it replaces its idle threads, and glibc
    # keeps an arena of freed memory per thread that ever allocated, so a 16-client load grew the
    # process by 38 % (docs/reliability.md).
    analyses = ThreadPoolExecutor(
        max_workers=1 if isinstance(backend, LocalBackend) else 4, thread_name_prefix="analyse"
    )

    @app.post("/api/analyse")
    async def analyse(request: Request) -> JSONResponse:
        label = _display_name(request.headers.get("x-filename", ""))
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:  # not "²"
            return problem(413, TITLES["too_large"], _too_large(int(declared)), "too_large")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                return problem(413, TITLES["too_large"], _too_large(len(data), more=True), "too_large")
        try:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(analyses, backend.analyse, bytes(data), label)
        except RequestError as exc:
            title = TITLES.get(exc.kind, "This file cannot be analysed")
            return problem(400, title, str(exc), exc.kind)
        except GenreError as exc:
            log.warning("analysis failed: %s", exc)
            return problem(502, "The model could not answer", str(exc), "backend")
        finally:
            size = len(data)
            del data  # the upload lives only as long as the request
            memory.answered(size)  # and glibc hands it back (genre.serving.memory)
        return JSONResponse({**answer, "file": label})

    return app


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str = MODEL_NAME,
    alias: str = CHAMPION,
    model: str | None = None,
    endpoint: str | None = None,
    mlflow_ui: str | None = "http://127.0.0.1:5000",
) -> None:
    """Load the model, warm it up and serve the page until interrupted (``genre web``)."""
    import uvicorn

    backend = load_backend(name=name, alias=alias, model=model, endpoint=endpoint)
    if isinstance(backend, LocalBackend):
        seconds = backend.classifier.warm_up()
        log.info("warmed up in %.1f s", seconds)
    print(f"genre web: {backend.label} -> http://{host}:{port}/", flush=True)
    if (warning := exposure_warning(host)) is not None:
        print(f"genre web: {warning}", file=sys.stderr, flush=True)
    app = create_app(backend, name=name, mlflow_ui=mlflow_ui)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def exposure_warning(host: str) -> str | None:
    """What to tell an operator who makes the page reachable from other machines (None on loopback)."""
    if host in {"127.0.0.1", "::1", "localhost"}:
        return None
    return (
        f"listening on {host}, not only this machine: anyone who can reach it can upload audio to the model "
        "and list the registered versions. There is no authentication; put it behind a proxy that has some "
        "to share it beyond a trusted network"
    )


def _page_answer(row: dict[str, Any], label: str) -> dict[str, Any]:
    """What the page draws, from one answer row of the served model (``timeline`` asked for)."""
    timeline = row.get("timeline") or None
    return {
        "genre": row["genre"],
        "probabilities": row["probabilities"],
        "windows": None if row.get("windows") is None else int(row["windows"]),
        "agreement": None if row.get("agreement") is None else float(row["agreement"]),
        "window_seconds": timeline[0]["end_s"] - timeline[0]["start_s"] if timeline else None,
        "timeline": timeline,
        "tags": row.get("tags") or None,
        "partial": bool(row.get("partial")),
        "model": label,
    }


def _display_name(raw: str) -> str:
    """The client's file name as a label only: URL-decoded, last path part, printable, at most 80 chars."""
    from urllib.parse import unquote

    text = unquote(raw).replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable())[:80]
    return text or "upload"


def _too_large(size: int, *, more: bool = False) -> str:
    return (
        f"{'more than ' if more else ''}{size / 2**20:.1f} MiB; the limit is "
        f"{MAX_UPLOAD_BYTES / 2**20:g} MiB per song, and {MAX_AUDIO_SECONDS / 60:g} minutes of audio"
    )
