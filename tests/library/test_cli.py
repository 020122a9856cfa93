"""``genre catalog`` as a user runs it: the installed command on a small library in every format."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from genre.cli.library_commands import MIN_CONFIDENCE
from genre.library.store import Catalog
from genre.library.summary import summarise
from genre.library.tags import read_tag, snapshot
from tests.library.audio_files import SUFFIXES, library, music, write_audio
from tests.processes import BIN, child_env

GENRE = str(BIN / "genre")


def _genre(*args: str, champion, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GENRE, *args], cwd=cwd, env=child_env(MLFLOW_TRACKING_URI=champion.uri), capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip


def test_catalog_tag_rescan_playlists_summary_and_restore(champion, tmp_path):
    lib = tmp_path / "Music"
    songs = library(lib / "album")
    (lib / "notes.txt").write_text("not music, not listed")
    (lib / "broken.mp3").write_text("not audio at all\n" * 30)
    originals = {path: snapshot(path) for path in songs.values()}

    first = _genre(
        "catalog", str(lib), "--jobs", "2", "--min-confidence", "0", champion=champion, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    n = len(SUFFIXES) + 1
    assert f"{n} audio file(s): {n - 1} classified, 1 failed, 0 unchanged" in first.stdout
    assert f"{lib / 'broken.mp3'}: error: " in first.stderr and "not audio" in first.stderr
    assert "Traceback" not in first.stderr and (tmp_path / "genre-catalog.sqlite").exists()

    pretend = _genre("catalog", str(lib), "--write-tags", "--pretend", champion=champion, cwd=tmp_path)
    assert pretend.returncode == 0, pretend.stderr
    with sqlite3.connect(tmp_path / "genre-catalog.sqlite") as connection:
        confidence = dict(connection.execute("SELECT path, confidence FROM files WHERE error IS NULL"))
    sure = {path for path, p in confidence.items() if p >= MIN_CONFIDENCE}
    # The default threshold applies without --min-confidence: this 3-neighbour k-NN's answers are 1/3, 2/3
    # or 1, and those of 2/3 are below it.
    assert 0 < len(sure) < n - 1
    assert (
        pretend.stdout.count("would tag ") == len(sure)
        and f"tags (pretend: nothing written): {len(sure)} to write" in pretend.stdout
    )
    assert all(snapshot(path) == tag for path, tag in originals.items())

    tagged = _genre(
        "catalog", str(lib), "--write-tags", "--summary", "--playlists", str(tmp_path / "lists"),
        champion=champion, cwd=tmp_path,
    )  # fmt: skip
    assert tagged.returncode == 0, tagged.stderr
    assert f"0 classified, 0 failed, {n} unchanged (skipped)" in tagged.stdout  # the broken file too
    assert f"tags: {len(sure)} written" in tagged.stdout
    for path in songs.values():
        if os.path.realpath(path) in sure:
            assert read_tag(path)[1][0] in {"Blues", "Hip-Hop", "Classical"}
            assert f"tag {path}: {read_tag(path)[1][0]} (was no genre)" in tagged.stdout
        else:  # unsure: catalogued, in unsure.m3u8, never tagged
            assert read_tag(path)[1] == () and f"tag {path}:" not in tagged.stdout
    assert f"{n} file(s) in the catalog" in tagged.stdout
    assert re.search(rf"^  unsure +{n - 1 - len(sure)}\n  errors +1$", tagged.stdout, re.MULTILINE)
    assert f"answered by genre-classifier version 1: {n - 1}" in tagged.stdout
    lists = {p.name: p.read_text() for p in (tmp_path / "lists").iterdir()}
    assert lists["unsure.m3u8"].count("\n../Music/album/song.") == n - 1 - len(sure)
    assert sum(text.count("\n../Music/album/song.") for text in lists.values()) == n - 1

    rescan = _genre("catalog", str(lib), champion=champion, cwd=tmp_path)
    assert f"0 classified, 0 failed, {n} unchanged" in rescan.stdout  # tagged files are not redone

    restored = _genre("catalog", "--restore-tags", champion=champion, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert f"tags: {len(sure)} restored" in restored.stdout
    assert all(snapshot(path) == tag for path, tag in originals.items())
    with Catalog(tmp_path / "genre-catalog.sqlite") as catalog:
        assert summarise(catalog).tagged == 0


def test_bad_invocations_are_one_line_and_status_2(champion, tmp_path):
    cases = {
        ("catalog",): "give music folders to catalog",
        ("catalog", "--summary", "--db", "nowhere.sqlite"): "no catalog at nowhere.sqlite",
        ("catalog", str(tmp_path), "--pretend"): "--pretend goes with --write-tags or --restore-tags",
        ("catalog", "--write-tags"): "--write-tags writes only under the folders given",
        ("catalog", "--import", "x.parquet", "--restore-tags"): "ask for one of them",
        ("catalog", str(tmp_path), "--name", "no-such-model"): "cannot find models:/no-such-model@champion",
    }
    for args, message in cases.items():
        done = _genre(*args, champion=champion, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith("genre: error: ") and message in done.stderr, (
            args
        )
        assert "Traceback" not in done.stderr
    usage = _genre("catalog", str(tmp_path), "--min-confidence", "2", champion=champion, cwd=tmp_path)
    assert usage.returncode == 2 and "expected a probability between 0 and 1" in usage.stderr


def _rows(db: Path) -> dict[str, tuple]:
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        try:
            return {
                r[0]: r[1:] for r in connection.execute("SELECT path, analysed_at, digest, genre FROM files")
            }
        except sqlite3.OperationalError:  # the schema is not there yet
            return {}


@pytest.mark.reliability
def test_a_scan_killed_at_random_moments_keeps_its_rows_and_the_next_one_finishes(champion, tmp_path):
    """``genre catalog --jobs 2`` SIGKILLed (the main process, as the OOM killer does) at random moments:
    while it starts, and after a random number of files. Every row committed survives unchanged, and the
    run after the last kill finishes the rest: one row per file, no file twice. (About 2 minutes on 2
    cores, mostly three start-ups of the command and its workers: run by ``pytest -m reliability``.)"""
    lib = tmp_path / "lib"
    count = 8
    for i in range(count):
        write_audio(lib / f"song{i:02d}.flac", music(30.0, seed=i), 22050)  # 30 s: catchable mid-scan
    db = tmp_path / "genre-catalog.sqlite"
    rng = random.Random(21)
    kept: dict[str, tuple] = {}
    for target in (0, rng.randint(1, count - 2)):
        process = subprocess.Popen(
            [GENRE, "catalog", str(lib), "--jobs", "2"],
            cwd=tmp_path,
            start_new_session=True,
            env=child_env(MLFLOW_TRACKING_URI=champion.uri),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 300
            if target == 0:  # starting up (imports, the model, the workers): before its first row
                wake = time.monotonic() + rng.uniform(0.5, 3.0)
                while time.monotonic() < wake and not _rows(db) and process.poll() is None:
                    time.sleep(0.02)
            while target and len(_rows(db)) < target and process.poll() is None:
                assert time.monotonic() < deadline, "the scan made no progress"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            # Its workers watch it (genre.workers) and exit soon after, rather than idling for minutes.
            deadline = time.monotonic() + 10
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _group_alive(process.pid), "the killed scan's workers outlived it"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the workers it left behind
        rows = _rows(db)
        assert all(rows[path] == row for path, row in kept.items()), "a committed row changed or vanished"
        assert all(row[2] is not None for row in rows.values()), "a row without its answer"
        kept = rows
    assert len(kept) < count, "the scan finished before it was killed: nothing was tested"

    done = _genre("catalog", str(lib), "--jobs", "2", champion=champion, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{count - len(kept)} classified, 0 failed, {len(kept)} unchanged" in done.stdout
    rows = _rows(db)
    assert len(rows) == count and all(rows[path] == row for path, row in kept.items())
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("SELECT COUNT(DISTINCT path) FROM files").fetchone()[0] == count


def _group_alive(group: int) -> list[int]:
    """The live processes of a process group (zombies, dead but not yet reaped, are not counted)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.fixture(autouse=True)
def _no_stray_copies(tmp_path):
    yield
    assert not list(tmp_path.rglob("*.genre-tmp")), "a tag write left its copy behind"
    shutil.rmtree(tmp_path / "lists", ignore_errors=True)
