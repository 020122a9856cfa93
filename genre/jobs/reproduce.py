"""``genre reproduce RUN_ID``: a finished run's command again, at its git commit, and its metrics compared.

The run records its ``genre`` command, the folder it ran in and the commit of the checkout its code came
from (``genre.command``, ``genre.cwd``, ``genre.git_commit``; ``genre.git_dirty`` says whether that
working tree held uncommitted changes). The command runs again with the code of that commit, checked
out in a temporary git worktree -- never in the user's own checkout, as ``mlflow run -v`` would do --
in a process of its own, in the same folder and tracking store, forced past the reuse of finished
runs. Every metric of the run (and of its children, matched by name) is printed beside the new one's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

import genre
from genre.errors import GenreError
from genre.tracking import configure_tracking

__all__ = ["Reproduction", "reproduce_job"]

#: Commands that answer from a finished run unless told ``--force``.
_REUSING = {"train", "main"}
#: The tag of every run of a reproduction: the run it reproduces.
_TAG = "genre.reproduces"


@dataclass(frozen=True)
class Reproduction:
    """The original run, the new one, and their metrics side by side (``equal`` per metric)."""

    original: str
    reproduced: str
    metrics: pd.DataFrame
    dirty: bool

    @property
    def equal(self) -> bool:
        """Whether every metric came out the same."""
        return bool(self.metrics["equal"].all())


def reproduce_job(run_id: str) -> Reproduction:
    """Run ``run_id``'s command again at its commit and compare every metric (see the module docstring).

    Raises
    ------
    GenreError
        No such run, or it lacks what a reproduction needs (its command or its commit), or the commit is
        not in this checkout's repository; the message says which.
    """
    configure_tracking()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise GenreError(f"no run {run_id!r} in {mlflow.get_tracking_uri()}", kind="not_found") from None
    tags = run.data.tags
    missing = [tag for tag in ("genre.command", "genre.git_commit") if tag not in tags]
    if missing:
        raise GenreError(
            f"run {run_id} cannot be reproduced: it has no {' or '.join(missing)} tag (it was not started "
            "by the genre command from a git checkout)",
            kind="not_reproducible",
        )
    argv = json.loads(tags["genre.command"])
    command = next((word for word in argv if not word.startswith("-")), None)
    if command in _REUSING and "--force" not in argv:
        argv.append("--force")
    with _worktree(tags["genre.git_commit"]) as code:
        # MLflow's own run context (MLFLOW_RUN_CONTEXT) tags every run the command opens, whatever
        # version of genre the commit holds.
        env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_RUN_CONTEXT": json.dumps({_TAG: run_id})}
        env.pop("MLFLOW_RUN_ID", None)
        done = subprocess.run(
            [sys.executable, "-m", "genre.cli", *argv],
            cwd=tags.get("genre.cwd") or None,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise GenreError(
            f"the reproduction of run {run_id} failed (exit status {done.returncode})", kind="failed"
        )
    again = _reproduction_of(client, run)
    return Reproduction(
        run_id, again.info.run_id, _side_by_side(client, run, again), tags.get("genre.git_dirty") == "true"
    )


@contextmanager
def _worktree(commit: str) -> Iterator[Path]:
    """A detached git worktree of ``commit`` in a temporary folder, removed afterwards."""
    repo = Path(genre.__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="genre-reproduce-") as tmp:
        path = Path(tmp) / "checkout"
        added = subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", str(path), commit],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise GenreError(
                f"cannot check out commit {commit} of {repo}: {added.stderr.strip() or added.stdout}",
                kind="not_reproducible",
            )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(path)],
                capture_output=True,
                check=False,
            )


def _reproduction_of(client: MlflowClient, run: Run) -> Run:
    """The newest top-level run tagged as reproducing ``run`` (its children carry the tag too)."""
    found = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.`{_TAG}` = '{run.info.run_id}'",
        order_by=["attributes.start_time DESC"],
    )
    found = [candidate for candidate in found if "mlflow.parentRunId" not in candidate.data.tags]
    if not found:
        raise GenreError(
            f"the reproduction of run {run.info.run_id} logged no run in its experiment", kind="failed"
        )
    return found[0]


def _side_by_side(client: MlflowClient, original: Run, again: Run) -> pd.DataFrame:
    rows = []
    for name, (first, second) in _runs_by_name(client, original, again).items():
        for metric in sorted(set(first.data.metrics) | set(second.data.metrics)):
            if metric.endswith("seconds") or metric.startswith("search_seconds"):
                continue  # wall time, not a result
            a, b = first.data.metrics.get(metric), second.data.metrics.get(metric)
            rows.append({"run": name, "metric": metric, "original": a, "reproduced": b, "equal": a == b})
    return pd.DataFrame(rows, columns=["run", "metric", "original", "reproduced", "equal"])


def _runs_by_name(client: MlflowClient, original: Run, again: Run) -> dict[str, tuple[Run, Run]]:
    """The two runs, and their children paired by run name (a ``main`` run's ``knn-grouped``...)."""
    pairs = {original.info.run_name: (original, again)}
    children = [_children(client, run) for run in (original, again)]
    for name, child in children[0].items():
        if name in children[1]:
            pairs[name] = (child, children[1][name])
    return pairs


def _children(client: MlflowClient, run: Run) -> dict[str, Run]:
    found = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    return {child.info.run_name: child for child in found}
