"""The catalog: walking, the SQLite store, scans and rescans, tags from the catalog, playlists, summary."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from genre import settings
from genre.library import store as store_module
from genre.library.classify import ModelRef, resolve_model
from genre.library.playlists import write_playlists
from genre.library.scan import scan
from genre.library.store import SCHEMA_VERSION, Catalog, CatalogError, Entry
from genre.library.summary import summarise
from genre.library.tagging import restore_tags, write_tags
from genre.library.tags import read_tag, snapshot
from genre.library.walk import Found, Problem, walk
from tests.library.audio_files import SUFFIXES, decoded, library, music, write_audio


def _scan(catalog: Catalog, roots: list[Path], model: ModelRef, **options):
    return scan(catalog, [str(r) for r in roots], model, min_confidence=options.pop("min_confidence", 0.5),
                jobs=1, **options)  # fmt: skip


def _by_name(catalog: Catalog) -> dict[str, sqlite3.Row]:
    return {os.path.basename(row["path"]): row for row in catalog.rows()}


# --- walking ------------------------------------------------------------------------------------------


def test_the_walk_lists_each_file_once_as_its_target_and_reports_what_it_cannot_walk(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    for name in ("a/one.mp3", "a/b/two.FLAC", "c/three.ogg", "c/cover.jpg", "notes.txt"):
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_bytes(b"x")
    (lib / "a" / "b" / "up").symlink_to(lib / "a")  # a loop
    (lib / "alias.mp3").symlink_to(lib / "a" / "one.mp3")  # a second way to one file
    (lib / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    outside = tmp_path / "elsewhere" / "four.m4a"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    (lib / "linked").symlink_to(outside.parent)
    (lib / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):  # an unreadable folder, also when the tests run as root
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(walk([str(lib)]))
    files = [item.path for item in items if isinstance(item, Found)]
    problems = {Path(item.path).name: item for item in items if isinstance(item, Problem)}
    assert files == [
        str(lib / "a" / "one.mp3"),  # reached first through alias.mp3, listed once
        str(lib / "a" / "b" / "two.FLAC"),
        str(lib / "c" / "three.ogg"),
        str(outside),  # catalogued as its target
    ]
    assert "a loop" in problems["up"].reason and "broken link" in problems["gone.wav"].reason
    assert problems["locked"].reason.startswith("folder cannot be read (Permission denied)")
    assert problems["locked"].unwalked
    missing = list(walk([str(tmp_path / "absent")]))
    assert missing == [Problem(str(tmp_path / "absent"), "cannot be read (No such file or directory)", True)]


# --- the store ----------------------------------------------------------------------------------------


def test_a_new_catalog_is_created_at_the_current_schema_and_migrations_run_in_order(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    with Catalog(path) as catalog:
        assert catalog.version == SCHEMA_VERSION == 1
        catalog.record(Entry("/music/a.mp3", genre="jazz", confidence=0.9))
        assert catalog.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    step = "ALTER TABLE files ADD COLUMN rating INTEGER; CREATE INDEX files_rating ON files (rating)"
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, step))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with Catalog(path) as catalog:
        assert catalog.version == 2
        (row,) = catalog.rows()
        assert row["genre"] == "jazz" and row["rating"] is None  # the row survives the migration


def test_a_failed_migration_leaves_the_catalog_at_its_old_version(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    broken = "ALTER TABLE files ADD COLUMN rating INTEGER; THIS IS NOT SQL"
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, broken))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with pytest.raises(CatalogError, match="not a usable catalog"):
        Catalog(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "rating" not in [c[1] for c in db.execute("PRAGMA table_info(files)")]


def test_catalogs_it_cannot_use_are_refused_by_name(tmp_path):
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(CatalogError, match="newer.sqlite: schema version 99 was written by a newer genre"):
        Catalog(newer)
    text = tmp_path / "notes.sqlite"
    text.write_text("shopping list\n" * 200)
    with pytest.raises(CatalogError, match="notes.sqlite: not a usable catalog"):
        Catalog(text)


# --- scans --------------------------------------------------------------------------------------------


@pytest.fixture
def model(use_champion) -> ModelRef:
    return resolve_model()


def test_every_format_and_every_bad_file_gets_one_row(model, tmp_path):
    lib = tmp_path / "lib"
    library(lib)
    good = write_audio(lib / "good.flac", music(3.5, seed=9), 22050)
    (lib / "bad").mkdir()
    (lib / "bad" / "empty.mp3").write_bytes(b"")
    (lib / "bad" / "letter.ogg").write_text("Dear diary, this is not audio.\n" * 20)
    (lib / "bad" / "cut.flac").write_bytes(good.read_bytes()[:5000])
    sf.write(lib / "bad" / "long.flac", np.zeros(11 * 60 * 8000, np.float32), 8000)  # 11 min of silence
    sf.write(lib / "bad" / "silent.wav", np.zeros(4 * 22050, np.float32), 22050)
    odd = os.fsencode(lib / "bad") + b"/caf\xe9.wav"
    shutil.copy(good, odd)
    doomed = write_audio(lib / "bad" / "doomed.wav", music(3.5), 22050)

    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        report = _scan(catalog, [lib], model, on_plan=lambda n: doomed.unlink())
        rows = _by_name(catalog)
    assert report.found == len(SUFFIXES) + 8 == len(rows)
    for suffix in SUFFIXES:
        row = rows[f"song{suffix}"]
        assert row["error"] is None, row["error"]
        assert row["genre"] in {"blues", "hiphop", "classical"} and row["format"] == suffix[1:]
        top3 = json.loads(row["top3"])
        assert [g for g, _ in top3][0] == row["genre"] and row["confidence"] == pytest.approx(
            top3[0][1], abs=1e-4
        )
        assert 0 < row["agreement"] <= 1 and row["windows"] >= 1 and 3.9 < row["duration"] < 4.2
        assert (row["model_name"], row["model_version"]) == (settings.MODEL_NAME, "1")
        assert len(row["digest"]) == 64 and row["size"] == os.path.getsize(row["path"])
    errors = {name: rows[name]["error"] for name in rows if rows[name]["error"]}
    assert errors.keys() == {"empty.mp3", "letter.ogg", "cut.flac", "long.flac", "silent.wav", "caf\\xe9.wav",
                             "doomed.wav"}  # fmt: skip
    assert errors["empty.mp3"] == "no bytes (an empty file)"
    assert "not audio libsndfile can decode" in errors["letter.ogg"]
    assert errors["long.flac"] == "11.0 min of audio (from its header) is longer than the limit of 10 min"
    assert "silent" in errors["silent.wav"]
    assert errors["caf\\xe9.wav"].startswith("the path is not valid UTF-8")
    assert errors["doomed.wav"] == "the file was deleted during the scan"
    assert errors["cut.flac"]  # a damaged FLAC: whatever libsndfile says, it is named, not a traceback
    assert report.failed == 7 and report.analysed == len(SUFFIXES) + 1
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        again = _scan(catalog, [lib], model)
    # Damaged files are not tried again until they change; refusals by path or header are cheap, redone.
    assert (again.unchanged, again.failed, again.missing) == (len(SUFFIXES) + 5, 2, 1)


def test_a_rescan_skips_what_is_unchanged_and_redoes_what_changed(model, tmp_path, champion):
    lib = tmp_path / "lib"
    songs = library(lib)
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        first = _scan(catalog, [lib], model)
        assert first.analysed == len(SUFFIXES)
        before = _by_name(catalog)

        again = _scan(catalog, [lib], model)
        assert (again.unchanged, again.analysed, again.failed) == (len(SUFFIXES), 0, 0)

        os.utime(songs[".mp3"], ns=(1, 1))  # a new time, the same bytes: kept, not classified again
        write_audio(songs[".wav"], music(5.0, seed=42), 22050)  # new content
        songs[".ogg"].unlink()
        extra = write_audio(lib / "new" / "extra.flac", music(3.5, seed=7), 22050)
        third = _scan(catalog, [lib], model)
        assert (third.touched, third.analysed, third.missing, third.found) == (1, 2, 1, len(SUFFIXES))
        rows = _by_name(catalog)
        assert rows["song.mp3"]["analysed_at"] == before["song.mp3"]["analysed_at"]
        assert rows["song.mp3"]["mtime_ns"] == 1
        assert (
            rows["song.wav"]["digest"] != before["song.wav"]["digest"] and rows["song.wav"]["duration"] > 4.9
        )
        assert rows["song.ogg"]["missing"] == 1 and rows["extra.flac"]["missing"] == 0
        assert len(catalog.rows()) == len(SUFFIXES) + 1  # one row per path, ever

        shutil.copy(extra, songs[".ogg"].with_suffix(".oga"))  # (the missing one stays missing)
        version = MlflowClient().copy_model_version(f"models:/{settings.MODEL_NAME}/1", settings.MODEL_NAME)
        MlflowClient().set_registered_model_alias(settings.MODEL_NAME, settings.CHAMPION, version.version)
        try:
            newer = resolve_model()
            assert newer.version == "2"
            fourth = _scan(catalog, [lib], newer)  # a new model version: everything is classified again
            assert fourth.analysed == len(SUFFIXES) + 1 and fourth.unchanged == 0
            assert {row["model_version"] for row in catalog.rows("missing = 0")} == {"2"}
        finally:
            MlflowClient().set_registered_model_alias(settings.MODEL_NAME, settings.CHAMPION, "1")


def test_unsure_answers_are_kept_listed_apart_and_never_tagged(model, tmp_path):
    lib = tmp_path / "lib"
    library(lib)
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        _scan(catalog, [lib], model, min_confidence=0.0)
        confidences = sorted(row["confidence"] for row in catalog.rows())
        threshold = (confidences[0] + confidences[-1]) / 2
        assert confidences[0] < threshold < confidences[-1], "the test needs answers of several confidences"
        _scan(catalog, [lib], model, min_confidence=threshold)  # a new threshold applies to skipped rows too
        unsure = {row["path"] for row in catalog.rows("unsure = 1")}
        assert unsure == {row["path"] for row in catalog.rows() if row["confidence"] < threshold}
        summary = summarise(catalog)
        assert summary.unsure == len(unsure) and sum(summary.genres.values()) == len(SUFFIXES) - len(unsure)

        outcomes = {o.path: o for o in write_tags(catalog, [str(lib)])}
        assert unsure.isdisjoint(outcomes) and len(outcomes) == len(SUFFIXES) - len(unsure)
        for path in unsure:
            assert read_tag(path)[1] == ()

        written = write_playlists(catalog, tmp_path / "lists")
        assert written["unsure.m3u8"] == len(unsure)
        text = (tmp_path / "lists" / "unsure.m3u8").read_text()
        assert text.startswith("#EXTM3U\n")
        for path in unsure:
            assert os.path.join("..", "lib", os.path.basename(path)) in text.splitlines()


def test_tags_from_the_catalog_pretend_write_keep_and_restore_exactly(model, tmp_path):
    lib = tmp_path / "lib"
    songs = library(lib)
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        _scan(catalog, [lib], model, min_confidence=0.0)
        originals = {path: (path.read_bytes(), snapshot(path)) for path in songs.values()}
        # A file named as the root: only it is written.
        mp3 = songs[".mp3"]
        (outcome,) = write_tags(catalog, [str(mp3)])
        assert outcome.path == str(mp3) and outcome.action == "write"
        catalog_genre = read_tag(mp3)[1]
        list(restore_tags(catalog, [str(lib)]))
        assert mp3.read_bytes() == originals[mp3][0]

        pretend = list(write_tags(catalog, [str(lib)], pretend=True))
        assert {o.action for o in pretend} == {"write"} and len(pretend) == len(SUFFIXES)
        assert all(path.read_bytes() == data for path, (data, _) in originals.items())  # nothing written

        done = {o.path: o for o in write_tags(catalog, [str(lib)])}
        assert read_tag(mp3)[1] == catalog_genre
        for path in songs.values():
            row = next(r for r in catalog.rows("path = ?", [str(path)]))
            assert read_tag(path)[1] == done[str(path)].after == (row["written_genre"],)
            assert np.array_equal(decoded(path), decoded_original(originals[path][0], path, tmp_path))
        assert _scan(catalog, [lib], model).unchanged == len(SUFFIXES)  # the catalog knows the new files

        again = {o.action for o in write_tags(catalog, [str(lib)], overwrite=True)}
        assert again == {"same"}

        list(restore_tags(catalog))
        for path, (_, tag) in originals.items():
            assert snapshot(path) == tag
        assert not catalog.rows("previous_tag IS NOT NULL")


def decoded_original(data: bytes, path: Path, tmp_path: Path) -> np.ndarray:
    copy = tmp_path / "original" / path.name
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(data)
    return decoded(copy)


def test_restore_leaves_alone_a_tag_someone_changed_since(model, tmp_path):
    lib = tmp_path / "lib"
    songs = library(lib)
    flac = songs[".flac"]
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        _scan(catalog, [lib], model, min_confidence=0.0)
        list(write_tags(catalog, [str(lib)]))
        from mutagen.flac import FLAC

        retagged = FLAC(flac)
        retagged["genre"] = ["Trip-Hop"]
        retagged.save()
        refused = {o.path: o for o in restore_tags(catalog, [str(lib)])}
        assert refused[str(flac)].action == "refused" and "Trip-Hop" in refused[str(flac)].detail
        assert read_tag(flac)[1] == ("Trip-Hop",)
        forced = {o.path: o for o in restore_tags(catalog, [str(lib)], overwrite=True)}
        assert forced[str(flac)].action == "restore" and read_tag(flac)[1] == ()


def test_a_read_only_file_is_reported_and_left_alone(model, tmp_path):
    lib = tmp_path / "lib"
    songs = library(lib)
    songs[".ogg"].chmod(0o444)
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        _scan(catalog, [lib], model, min_confidence=0.0)
        outcomes = {o.path: o for o in write_tags(catalog, [str(lib)])}
    refused = outcomes[str(songs[".ogg"])]
    assert refused.action == "refused" and refused.detail == "the file is read-only; left alone"
    assert read_tag(songs[".ogg"])[1] == ()
    assert sum(o.action == "write" for o in outcomes.values()) == len(SUFFIXES) - 1
