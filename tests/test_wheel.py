"""A wheel install (not editable) works outside the repository: package data and the registry included."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from genre.data.schema import FEATURE_COLUMNS
from tests.conftest import GTZAN_AUDIO, require

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_installed_in_a_fresh_venv_trains_registers_and_finds_its_data(tmp_path):
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)])
    wheel = next((tmp_path / "dist").glob("genre-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "genre/registry/model_card.md",
        "genre/experiments/grid/knn.yaml",
        "genre/experiments/optuna/svm.yaml",
        "genre/web/static/index.html",
        "genre/features/weights/MSD_musicnn.npz",
        "genre/features/weights/LICENSE",
        "genre/data/musicnn/training_data_GTZAN_MSDmusicnn_taggram.npz",
        "genre/data/musicnn/evaluation_data_GTZAN_MSDmusicnn_taggram.npz",
        "genre/data/musicnn/LICENSE",
    } <= names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib]).stdout.strip())
    # The dependencies come from this environment (a plain path: its editable genre finder is not loaded).
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)])

    work = tmp_path / "elsewhere"  # no repository around: data must come from the installed package
    work.mkdir()
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(24, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    rows.insert(0, "filename", [f"t{i}.wav" for i in range(24)])
    rows["label"] = np.repeat(["a", "b", "c"], 8)
    rows.to_csv(work / "rows.csv", index=False)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = uri
    genre = str(venv / "bin" / "genre")

    located = _run([str(python), "-c", "import genre; print(genre.__file__)"], cwd=work, env=env).stdout
    assert located.strip().startswith(str(site))
    _run([genre, "tune-grid", "knn", "--data", "rows.csv", "--folds", "2"], cwd=work, env=env)
    trained = _run([genre, "train", "knn", "--data", "rows.csv", "--folds", "2"], cwd=work, env=env).stdout
    run_id = trained.split()[1].rstrip(":")
    _run([genre, "register", "--run-id", run_id], cwd=work, env=env)

    client = mlflow.MlflowClient(uri, registry_uri=uri)
    version = client.get_model_version_by_alias("genre-classifier", "champion")
    assert version.description.startswith("# genre-classifier, version 1")
    assert run_id in version.description

    # musicnn's features of a real clip from the installed package alone: the musicnn wheel and TensorFlow
    # are made unimportable in that process (the borrowed environment may hold both), and are not needed.
    clip = require(GTZAN_AUDIO / "blues" / "blues.00000.wav")
    code = (
        "import importlib.abc, sys\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('musicnn', 'tensorflow', 'keras'):\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from genre.cli import main\n"
        f"sys.exit(main(['extract', {str(clip)!r}, '--features', 'musicnn', '--out', 'tags.csv']))\n"
    )
    _run([str(python), "-c", code], cwd=work, env=env)
    tags = pd.read_csv(work / "tags.csv")
    assert len(tags) == 1 and tags.filter(like="musicnn_").shape[1] == 100
    assert tags.filter(like="musicnn_").notna().all(axis=None)
