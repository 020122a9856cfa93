"""``genre catalog --import``: Spark's Parquet of ``genre score --audio`` fills the catalog like a scan."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genre.batch import spark
from genre.library import importing
from genre.library.classify import ModelRef
from genre.library.importing import import_scores, local_path
from genre.library.store import Catalog, CatalogError
from genre.library.tagging import write_tags
from genre.library.tags import read_tag
from tests.library.audio_files import library

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
