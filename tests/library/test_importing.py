"""``genre catalog --import``: Spark's Parquet of ``genre score --audio`` fills the catalog like a scan."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pandas as pd
import pytest

from genre.batch import spark
from genre.cli.library_commands import MIN_CONFIDENCE
from genre.library import importing
from genre.library.classify import ModelRef
from genre.library.importing import import_scores, local_path
from genre.library.store import Catalog, CatalogError
from genre.library.tagging import write_tags
from genre.library.tags import genre_name, read_tag, snapshot
from tests.library.audio_files import library, music, write_audio
from tests.processes import BIN, child_env

MODEL = ModelRef("genre-classifier", "7", (("model", "models:/genre-classifier/7"),))


def test_the_column_names_are_spark_scorings():
    assert (importing.ID_COLUMN, importing.ERROR_COLUMN, importing.PROBABILITY_PREFIX) == (
        spark.AUDIO_ID,
        spark.ERROR_COLUMN,
        spark.PROBABILITY_PREFIX,
    )


def _spark_output(rows: list[dict], folder) -> str:
    """A Parquet folder laid out as Spark writes it: part files of the output's columns."""
    folder.mkdir()
    table = pd.DataFrame(rows, columns=["path", "genre", "p_blues", "p_jazz", "p_rock", "windows", "error"])
    half = len(table) // 2
    table.iloc[:half].to_parquet(folder / "part-00000.parquet")
    table.iloc[half:].to_parquet(folder / "part-00001.parquet")
    return str(folder)


def test_an_import_records_answers_errors_and_files_not_here(tmp_path):
    songs = library(tmp_path / "lib")
    mp3, flac, ogg = songs[".mp3"], songs[".flac"], songs[".ogg"]
    rows = [
        {"path": f"file:{mp3}", "genre": "jazz", "p_blues": 0.1, "p_jazz": 0.7, "p_rock": 0.2, "windows": 3},
        {
            "path": f"file://{flac}",
            "genre": "rock",
            "p_blues": 0.3,
            "p_jazz": 0.25,
            "p_rock": 0.45,
            "windows": 1,
        },
        {"path": f"file:{ogg}", "error": f"file:{ogg}: 1.00 s of audio is shorter than one 3.00 s window"},
        {"path": "file:/nowhere/else.mp3", "genre": "blues", "p_blues": 0.9, "p_jazz": 0.05, "p_rock": 0.05},
    ]
    parquet = _spark_output(rows, tmp_path / "scores.parquet")
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        report = import_scores(catalog, parquet, MODEL, min_confidence=0.5)
        assert (report.rows, report.answered, report.failed, report.missing) == (4, 3, 1, 1)
        got = {row["path"]: row for row in catalog.rows()}
        assert got[str(mp3)]["genre"] == "jazz" and got[str(mp3)]["confidence"] == 0.7
        assert json.loads(got[str(mp3)]["top3"]) == [["jazz", 0.7], ["rock", 0.2], ["blues", 0.1]]
        assert got[str(mp3)]["format"] == "mp3" and len(got[str(mp3)]["digest"]) == 64
        assert (got[str(mp3)]["model_name"], got[str(mp3)]["model_version"]) == ("genre-classifier", "7")
        assert got[str(mp3)]["agreement"] is None and got[str(mp3)]["windows"] == 3
        assert got[str(flac)]["unsure"] == 1  # 0.45 < 0.5
        assert got[str(ogg)]["error"] == "1.00 s of audio is shorter than one 3.00 s window"
        assert got["/nowhere/else.mp3"]["missing"] == 1 and got["/nowhere/else.mp3"]["size"] is None

        outcomes = {o.path: o.action for o in write_tags(catalog, [str(tmp_path / "lib")])}
        assert outcomes == {str(mp3): "write"}  # the confident answer here; not the unsure, failed or absent
        assert read_tag(mp3)[1] == ("Jazz",)

        import_scores(catalog, parquet, MODEL, min_confidence=0.5)  # again: rows replaced, not added
        assert len(catalog.rows()) == 4


def test_spark_paths_are_local_paths(tmp_path):
    odd = tmp_path / "a b%20c.mp3"
    odd.write_bytes(b"x")
    assert local_path(f"file:{odd}") == str(odd)
    assert local_path(f"file://{odd}") == str(odd)
    spaced = tmp_path / "x y.mp3"
    spaced.write_bytes(b"x")
    assert local_path(f"file:{tmp_path}/x%20y.mp3") == str(spaced)
    assert local_path("/already/local.mp3") == "/already/local.mp3"


def test_what_is_not_scorings_output_is_refused_by_name(tmp_path):
    pd.DataFrame({"filename": ["a.wav"], "label": ["jazz"]}).to_parquet(tmp_path / "features.parquet")
    with Catalog(tmp_path / "catalog.sqlite") as catalog:
        with pytest.raises(CatalogError, match="features.parquet: not the output of genre score --audio"):
            import_scores(catalog, tmp_path / "features.parquet", MODEL, min_confidence=0.5)
        (tmp_path / "text.parquet").write_text("not parquet")
        with pytest.raises(CatalogError, match="text.parquet: cannot read it as Parquet"):
            import_scores(catalog, tmp_path / "text.parquet", MODEL, min_confidence=0.5)


def _genre(*args: str, champion, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "genre"), *args], cwd=cwd, env=child_env(MLFLOW_TRACKING_URI=champion.uri),
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.skipif(spark.find_java() is None, reason="Spark needs a Java 17+ runtime: no java found")
def test_spark_scorings_own_output_fills_a_catalog_that_tags_and_playlists_work_from(champion, tmp_path):
    """``genre score --audio`` on local Spark (the command docs/library.md gives for big libraries)
    scores a library in every format, with a broken file, a file deleted before the import and a space in
    a folder's name; ``genre catalog LIB --import`` then fills the catalog from that Parquet, writes
    the tags and the playlists in the same command, and a rescan finds nothing left to do. (About a minute
    on 2 cores, most of it Spark's start: ``pytest -m integration``.)"""
    lib = tmp_path / "My Music"
    songs = library(lib / "album")
    (lib / "broken.mp3").write_text("not audio at all\n" * 30)
    gone = write_audio(lib / "gone.flac", music(4.0, seed=9), 22050)
    originals = {path: snapshot(path) for path in songs.values()}
    model, parquet, n = "models:/genre-classifier/1", str(tmp_path / "scores.parquet"), len(songs) + 2

    scored = _genre("score", model, str(lib), "--audio", "--out", parquet, champion=champion, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    spark_rows = pd.read_parquet(parquet)
    spark_rows.index = [local_path(path) for path in spark_rows["path"]]
    assert sorted(spark_rows.index) == sorted(map(str, [*songs.values(), lib / "broken.mp3", gone]))
    gone.unlink()  # scored on the cluster, not on this machine any more

    imported = _genre(
        "catalog", str(lib), "--import", parquet, "--model", model, "--write-tags", "--playlists",
        str(tmp_path / "lists"), champion=champion, cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert (
        f"imported {n} row(s) from {parquet} as answered by genre-classifier version 1: {n - 1} answered, "
        f"1 failed, 1 not on this machine (missing)"
    ) in imported.stdout
    with Catalog(tmp_path / "genre-catalog.sqlite") as catalog:
        rows = {row["path"]: row for row in catalog.rows()}
    assert sorted(rows) == sorted(spark_rows.index)
    assert "not audio" in rows[str(lib / "broken.mp3")]["error"] and rows[str(gone)]["missing"] == 1
    sure = set()
    for suffix, path in songs.items():
        row, answer = rows[str(path)], spark_rows.loc[str(path)]
        probabilities = answer[[c for c in spark_rows.columns if c.startswith("p_")]].astype(float)
        assert row["genre"] == answer["genre"] and row["confidence"] == probabilities.max()
        assert row["format"] == suffix[1:] and row["windows"] == answer["windows"] == 1
        assert row["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (row["model_name"], row["model_version"], row["missing"]) == ("genre-classifier", "1", 0)
        if row["confidence"] >= MIN_CONFIDENCE:
            sure.add(path)
            assert read_tag(path)[1] == (genre_name(row["genre"]),)
        else:
            assert row["unsure"] == 1 and read_tag(path)[1] == ()
    assert sure and f"tags: {len(sure)} written" in imported.stdout
    lists = {p.name: p.read_text() for p in (tmp_path / "lists").iterdir()}
    for path in songs.values():
        listed = "unsure.m3u8" if path not in sure else f"{genre_name(rows[str(path)]['genre'])}.m3u8"
        assert f"\n../My Music/album/{path.name}\n" in lists[listed]

    rescan = _genre("catalog", str(lib), champion=champion, cwd=tmp_path)  # the champion is version 1
    assert rescan.returncode == 0, rescan.stderr
    assert f"{n - 1} audio file(s): 0 classified, 0 failed, {n - 1} unchanged" in rescan.stdout
    restored = _genre("catalog", "--restore-tags", champion=champion, cwd=tmp_path)
    assert f"tags: {len(sure)} restored" in restored.stdout
    assert all(snapshot(path) == tag for path, tag in originals.items())
    assert not [p for p in lib.rglob("*") if p.name.endswith(".genre-tmp")] and os.path.isdir(lib)
