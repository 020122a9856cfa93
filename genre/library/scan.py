"""A scan: the audio files under the folders given, brought into the catalog.

The walk lists every file (``genre.library.walk``), and the catalog says which are already done: a row
whose file has the same size and modification time and was answered by the same model version is
skipped without reading the file, which is what makes a rescan of an unchanged library take seconds. A
file whose size or time changed is hashed; the same bytes keep their answer. Everything else is
classified (``classify_files``: every core) and each file's row is committed as soon as its answer
arrives, so a scan killed at any moment keeps every finished file and the next scan does the rest.
Rows under the folders walked whose file is gone are marked missing (not under a folder that could not
be read: those files may well be there). A file that failed is tried again when it changes or the model
does.

No file stops a scan. A path that is not UTF-8, a file over the length limit (read from its header,
before any decoding), one that is not audio, empty, damaged, silent, too short, or deleted while the
scan runs: each gets a row with its error.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mutagen
import soundfile as sf

from genre.library.classify import ModelRef, classify_files
from genre.library.store import Catalog, Entry
from genre.library.tags import TagError, inside, read_tag
from genre.library.walk import Found, Problem, display_path, walk

if TYPE_CHECKING:
    from genre.registry import SongAnswer

__all__ = ["ScanReport", "file_digest", "file_format", "scan"]


@dataclass
class ScanReport:
    """What a scan did: audio files found; skipped as unchanged (``unchanged``; ``touched``: a new
    time but the same bytes); answered; failed; newly missing; and what could not be walked."""

    found: int = 0
    unchanged: int = 0
    touched: int = 0
    analysed: int = 0
    failed: int = 0
    missing: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0


def file_digest(path: str) -> str:
    """SHA-256 of the file's bytes, hex."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def scan(
    catalog: Catalog,
    roots: Sequence[str],
    model: ModelRef,
    *,
    min_confidence: float,
    jobs: int,
    full: bool = False,
    on_plan: Callable[[int], None] | None = None,
    on_entry: Callable[[Entry], None] | None = None,
) -> ScanReport:
    """Bring the files under ``roots`` into ``catalog``, answered by ``model``.

    ``on_plan`` is told how many files will be classified, before the first is; ``on_entry`` gets each
    row as it is committed (classified or failed). Answers whose probability is below
    ``min_confidence`` are ``unsure``; the threshold is applied to every row of the catalog.
    """
    started = time.monotonic()
    report = ScanReport()
    known = catalog.known()
    seen: set[str] = set()
    back: list[str] = []
    unwalked: list[str] = []
    todo: list[str] = []
    for item in walk(roots):
        if isinstance(item, Problem):
            report.problems.append(item)
            if item.unwalked:
                unwalked.append(item.path)
            continue
        report.found += 1
        key = display_path(item.path)
        seen.add(key)
        row = known.get(key)
        if _unchanged(item, row, model):
            report.unchanged += 1
            if row["missing"]:
                back.append(key)
        elif _same_bytes(item, row, model):
            catalog.touch(key, size=item.status.st_size, mtime_ns=item.status.st_mtime_ns)
            report.touched += 1
        elif (refused := _refusal(item)) is not None:
            _commit(catalog, refused, report, on_entry)
        else:
            todo.append(item.path)
    catalog.mark_missing(back, present=True)
    if on_plan is not None:
        on_plan(len(todo))
    if todo:
        for path, answer in zip(todo, classify_files(todo, model, jobs=jobs, full=full), strict=True):
            _commit(catalog, _answered(path, answer, model, min_confidence), report, on_entry)
    real_roots = [os.path.realpath(root) for root in roots]
    gone = [
        path
        for path, row in known.items()
        if path not in seen and not row["missing"] and inside(path, real_roots) and not inside(path, unwalked)
    ]
    report.missing = catalog.mark_missing(gone)
    catalog.set_unsure(min_confidence)
    report.seconds = time.monotonic() - started
    return report


def _commit(
    catalog: Catalog, entry: Entry, report: ScanReport, on_entry: Callable[[Entry], None] | None
) -> None:
    catalog.record(entry)
    if entry.error is None:
        report.analysed += 1
    else:
        report.failed += 1
    if on_entry is not None:
        on_entry(entry)


def _unchanged(found: Found, row: sqlite3.Row | None, model: ModelRef) -> bool:
    """Answered by this model (or refused by it: a damaged file stays damaged), and the file's size and
    time are what they were."""
    return (
        row is not None
        and (row["model_name"], row["model_version"]) == (model.name, model.version)
        and (row["size"], row["mtime_ns"]) == (found.status.st_size, found.status.st_mtime_ns)
    )


def _same_bytes(found: Found, row: sqlite3.Row | None, model: ModelRef) -> bool:
    """Answered by this model with no error, and the file's bytes are the same despite a new stat."""
    if row is None or row["error"] is not None or row["digest"] is None:
        return False
    if (row["model_name"], row["model_version"]) != (model.name, model.version):
        return False
    try:
        return file_digest(found.path) == row["digest"]
    except OSError:
        return False


def _refusal(found: Found) -> Entry | None:
    """The row of a file refused before any decoding (a path that is not UTF-8, a header longer than the
    limit), or None."""
    path = display_path(found.path)
    try:
        found.path.encode("utf-8")
    except UnicodeEncodeError:
        return Entry(
            path,
            size=found.status.st_size,
            mtime_ns=found.status.st_mtime_ns,
            error="the path is not valid UTF-8 (shown with \\x escapes); rename the file to catalog it, "
            "as playlists and tags need text",
        )
    from genre.serving.classifier import MAX_AUDIO_SECONDS

    seconds = _header_seconds(found.path)
    if seconds is not None and seconds > MAX_AUDIO_SECONDS:
        return Entry(
            path,
            size=found.status.st_size,
            mtime_ns=found.status.st_mtime_ns,
            duration=seconds,
            format=file_format(found.path)[0],
            error=f"{seconds / 60:.1f} min of audio (from its header) is longer than the limit of "
            f"{MAX_AUDIO_SECONDS / 60:g} min",
        )
    return None


def _header_seconds(path: str) -> float | None:
    """The length the file's header gives, without decoding; None if none. mutagen reads it, and
    libsndfile the formats mutagen does not know (AU): not the files mutagen found damaged, for which
    libsndfile's MP3 decoder prints its own complaints."""
    try:
        info = mutagen.File(path)
    except (mutagen.MutagenError, OSError):
        return None
    if info is not None:
        return float(info.info.length) if getattr(info.info, "length", 0) else None
    try:
        return float(sf.info(path).duration)
    except (sf.SoundFileError, OSError, RuntimeError):
        return None


def file_format(path: str) -> tuple[str, str | None]:
    """The file's format (``read_tag``'s name, else its extension) and its genre tag ('; '-joined)."""
    try:
        fmt, genres = read_tag(path)
    except TagError:
        return os.path.splitext(path)[1].lower().lstrip(".") or "unknown", None
    return fmt, "; ".join(genres) or None


def _answered(path: str, answer: SongAnswer, model: ModelRef, min_confidence: float) -> Entry:
    """The row of a classified file: what the file is now, and the model's answer or error."""
    try:
        status = os.stat(path)
        digest = file_digest(path)
    except FileNotFoundError:
        return Entry(display_path(path), error="the file was deleted during the scan")
    except OSError as exc:
        return Entry(display_path(path), error=f"cannot read the file ({exc.strerror})")
    fmt, tag = file_format(path)
    common = {
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "digest": digest,
        "format": fmt,
        "genre_tag": tag,
        "model_name": model.name,
        "model_version": model.version,
    }
    if answer.error is not None:
        return Entry(display_path(path), duration=_header_seconds(path), error=answer.error, **common)
    confidence = answer.top[0][1]
    return Entry(
        display_path(path),
        duration=answer.seconds,
        genre=answer.genre,
        confidence=confidence,
        top3=json.dumps([[genre, round(p, 4)] for genre, p in answer.top]),
        agreement=answer.agreement,
        windows=answer.windows,
        unsure=int(confidence < min_confidence),
        **common,
    )
