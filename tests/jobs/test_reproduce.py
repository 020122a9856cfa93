"""``genre reproduce``: a finished run's command again at its commit, in a worktree, metrics compared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from genre.data.schema import FEATURE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def _genre(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genre.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_finished_run_is_reproduced_at_its_commit_with_equal_metrics(tracking, tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(24, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    rows.insert(0, "filename", [f"t{i}.wav" for i in range(24)])
    rows["label"] = np.repeat(["a", "b", "c"], 8)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_EXPERIMENT")}
    trained = _genre("-q", "train", "svm", "--data", "rows.csv", "--folds", "2", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    run_id = trained.stdout.split()[1].rstrip(":")
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.data.tags["genre.git_commit"] and run.data.tags["genre.git_dirty"] in {"true", "false"}

    elsewhere = tmp_path / "elsewhere"  # the command runs where the run ran, wherever reproduce is called
    elsewhere.mkdir()
    again = _genre("-q", "reproduce", run_id, cwd=elsewhere, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    # ``genre reproduce`` compares metrics exactly: the same machine's kernels and one thread per pool in
    # both processes make them equal bits here (on another machine they may differ in the last bits).
    assert "every metric equal" in again.stdout and "| svm-grouped | cv_accuracy_mean |" in again.stdout
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True)
    assert "genre-reproduce-" not in worktrees.stdout  # the temporary checkout is gone
    missing = _genre("reproduce", "no-such-run", cwd=elsewhere, env=env)
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr
