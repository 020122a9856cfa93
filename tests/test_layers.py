"""The package's structure holds: layers import downwards only, shared names and pins live in one place."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from genre import settings

ROOT = Path(__file__).resolve().parents[1]


def test_layers_contract_is_kept() -> None:
    """import-linter's layers contract of pyproject.toml: no module imports from a layer above its own."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_pins_are_pyprojects() -> None:
    """settings.PINS, which logged models require, is exactly the package's dependency list."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(settings.PINS.values()) == sorted(dependencies)


def test_extracting_features_loads_neither_mlflow_nor_tensorflow_nor_optuna(tmp_path) -> None:
    """``genre extract`` without --mlflow is a librosa job: its process never imports the tracking stack."""
    code = (
        "import sys\n"
        "from genre.cli import main\n"
        f"status = main(['extract', 'embedded', '--out', {str(tmp_path / 'f.csv')!r}])\n"
        "heavy = sorted({'mlflow', 'tensorflow', 'optuna', 'keras'} & set(sys.modules))\n"
        "print(status, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr
