"""Finished runs as results: a job rerun with the same code, data and parameters returns its last run.

MLflow's multistep example reuses a step whose entry point, parameters and git commit match a finished
run. Here a run carries a key over the job, its parameters, the data's digest and the code's fingerprint
(``genre.run_key``), so the same question is never answered twice, and the code is identified even
where there is no git checkout (a wheel install). Runs also record the checkout they came from: its
commit and whether the working tree held uncommitted changes (``genre.git_commit``, ``genre.git_dirty``),
which ``genre reproduce`` needs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run

import genre
from genre.data import Dataset

__all__ = ["code_fingerprint", "data_digest", "finished_run", "run_key", "source_tags"]

_PACKAGE = Path(genre.__file__).parent


@functools.cache
def code_fingerprint() -> str:
    """A digest of the installed package's code and data files: what a run's numbers depend on."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(_PACKAGE)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def data_digest(dataset: Dataset) -> str:
    """A digest of a dataset's rows (labels, groups, features) and of whether they are windows."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(dataset.frame, index=False).to_numpy().tobytes())
    digest.update(str(dataset.windowed).encode())
    return digest.hexdigest()[:16]


def run_key(job: str, params: Mapping[str, Any], dataset: Dataset) -> str:
    """The key of a job on ``dataset`` with ``params``, under this code."""
    text = json.dumps(
        {"job": job, "params": params, "data": data_digest(dataset)}, sort_keys=True, default=str
    )
    return hashlib.sha256(f"{text} {code_fingerprint()}".encode()).hexdigest()[:24]


def finished_run(key: str) -> Run | None:
    """The latest FINISHED run of the active experiment with ``key``, if there is one."""
    found = mlflow.search_runs(
        filter_string=f"tags.`genre.run_key` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return found[0] if found else None


@functools.cache
def source_tags() -> dict[str, str]:
    """The package's code fingerprint, and its git commit and dirtiness when it runs from a checkout."""
    tags = {"genre.code_version": code_fingerprint()}
    try:
        _git("ls-files", "--error-unmatch", "__init__.py")  # the package is tracked in this checkout
        commit = _git("rev-parse", "HEAD")
        changes = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return tags  # not a checkout (a wheel install), or no git
    return {**tags, "genre.git_commit": commit, "genre.git_dirty": str(bool(changes)).lower()}


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(_PACKAGE), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()
