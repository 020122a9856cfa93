"""Optuna workers sharing one study on PostgreSQL: trials per minute and best score against worker count.

Usage::

    python benchmarks/distributed_tuning.py [--workers 1 2 3] [--trials 30]
        [--config experiments/optuna/svm.yaml] [--data ../shared/data/gtzan/features_30_sec.csv]
        [--postgres postgresql://user@host:port] [--json OUT]

Without ``--postgres`` it starts a throwaway cluster with ``scripts/local-postgres.sh`` (Debian's
PostgreSQL) and stops it afterwards. Tracking goes to the same server's ``mlflow`` database (MLflow's
SQL store, no tracking server in between). For each worker count, that many ``genre tune-optuna``
processes share a fresh study of ``--trials`` trials. Measured per run:

* **trials/min** between the first trial's start and the last trial's end (the study's own timestamps:
  the rate while workers run, without process start-up);
* **wall**: the command's wall time, start-up (imports, data) included;
* **best**: the study's best mean CV accuracy (track-grouped folds), to compare with one worker's.

Prints a JSON blob, then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("GENRE_SHARED_DIR", ROOT.parent / "shared"))
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(postgres: str, workers: int, args: argparse.Namespace, work: Path) -> dict:
    study = f"bench-{workers}w-{int(time.time())}"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"{postgres}/mlflow",
    }
    command = [
        str(BIN / "genre"),
        "tune-optuna",
        str(args.config),
        "--data",
        str(args.data),
        "--trials",
        str(args.trials),
        "--storage",
        f"{postgres}/optuna",
        "--study-name",
        study,
        "--folds",
        str(args.folds),
    ]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]
    errors = [p.communicate()[1] for p in processes]
    wall = time.perf_counter() - started
    failed = [e[-2000:] for p, e in zip(processes, errors, strict=True) if p.returncode]
    if failed:
        raise SystemExit(f"a worker failed:\n{failed[0]}")
    trials = optuna.load_study(study_name=study, storage=f"{postgres}/optuna").trials
    finished = [t for t in trials if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in finished)
    minutes = (last - first).total_seconds() / 60
    return {
        "workers": workers,
        "trials": len(finished),
        "trials_failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
        "distinct_params": len({tuple(sorted(t.params.items())) for t in finished}),
        "trials_per_min": round(len(finished) / minutes, 2),
        "search_seconds": round(minutes * 60, 1),
        "wall_seconds": round(wall, 1),
        "best": round(max(t.value for t in finished if t.value is not None), 4),
        "study": study,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--config", type=Path, default=ROOT / "experiments/optuna/svm.yaml")
    parser.add_argument("--data", type=Path, default=SHARED_DIR / "data/gtzan/features_30_sec.csv")
    parser.add_argument("--postgres", help="postgresql://user@host:port with databases mlflow and optuna")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="genre-bench-"))
    base.chmod(0o755)
    script = ROOT / "scripts/local-postgres.sh"
    postgres = args.postgres
    if postgres is None:
        started = subprocess.run(
            [str(script), "start", str(base / "pg"), str(_free_port())],
            capture_output=True,
            text=True,
            check=True,
        )
        postgres = started.stdout.strip()
    try:
        runs = [_run(postgres, n, args, base) for n in args.workers]
    finally:
        if args.postgres is None:
            subprocess.run([str(script), "stop", str(base / "pg")], check=False)
        shutil.rmtree(base, ignore_errors=True)
    one = next((r for r in runs if r["workers"] == 1), runs[0])
    for run in runs:
        run["speedup"] = round(run["trials_per_min"] / one["trials_per_min"], 2)
    result = {
        "config": str(args.config.relative_to(ROOT))
        if args.config.is_relative_to(ROOT)
        else str(args.config),
        "data": args.data.name,
        "folds": args.folds,
        "cores": os.cpu_count(),
        "load_average_before": load,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| workers | trials | trials/min | speed-up | search s | wall s | best CV accuracy | distinct |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['workers']} | {r['trials']} | {r['trials_per_min']} | {r['speedup']}x "
            f"| {r['search_seconds']} | {r['wall_seconds']} | {r['best']} | {r['distinct_params']} |"
        )


if __name__ == "__main__":
    main()
