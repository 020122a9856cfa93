"""The installed ``genre`` command: exit codes and messages, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from genre.cli import main
from genre.data.schema import SAMPLE_RATE


def _genre(*args: str, cwd=None) -> subprocess.CompletedProcess:
    # The script installed beside this interpreter (the venv's bin need not be on PATH).
    exe = shutil.which("genre", path=str(Path(sys.executable).parent)) or shutil.which("genre")
    assert exe, "the genre console script is not installed (pip install -e .)"
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=300)


def test_extract_command_writes_the_csv_and_reports_failures(tmp_path):
    folder = tmp_path / "lib" / "tones"
    folder.mkdir(parents=True)
    t = np.arange(int(3.2 * SAMPLE_RATE)) / SAMPLE_RATE
    sf.write(folder / "a.wav", 0.3 * np.sin(2 * np.pi * 330 * t), SAMPLE_RATE)
    (folder / "b.wav").write_bytes(b"not audio at all")
    out = tmp_path / "features.csv"

    done = _genre("extract", str(tmp_path / "lib"), "--out", str(out), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert "1 file(s) -> 1 row(s)" in done.stdout and "1 failed" in done.stdout
    assert "failed [unreadable]" in done.stderr and "b.wav" in done.stderr
    assert "Traceback" not in done.stderr
    assert pd.read_csv(out)["filename"].tolist() == ["a.wav"]

    strict = _genre("extract", str(tmp_path / "lib"), "--out", str(out), "--strict", "--windows")
    assert strict.returncode == 3
    assert pd.read_csv(out)["filename"].tolist() == ["a.0.wav"]


def test_bad_input_is_one_line_and_exit_status_2(tmp_path, capsys):
    assert main(["extract", str(tmp_path / "missing"), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genre: error: ") and "missing: no such file or folder" in err


def test_bad_csv_through_main_names_the_problem(tmp_path, capsys, tracking):
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,label\nx.wav,blues\n")
    assert main(["main", "--data", str(bad)]) == 2
    assert "bad.csv: missing column(s) chroma_stft_mean" in capsys.readouterr().err


def test_help_lists_every_command():
    done = _genre("--help")
    assert done.returncode == 0
    for command in ("generate", "extract", "main"):
        assert command in done.stdout
