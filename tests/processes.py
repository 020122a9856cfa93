"""Helpers for tests that start real processes (servers, CLIs): ports, environments, readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

#: ``genre`` and ``mlflow`` as installed beside this interpreter.
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """This environment for a child process: ``BIN`` first on PATH, ``extra`` set, and none of the
    MLflow variables that would pin the child to this process's experiment or run."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(var, None)
    return env


def wait_http(url: str, process: subprocess.Popen, log: Path, *, seconds: float = 120) -> None:
    """Return once ``url`` answers 200; fail the test, with the end of ``log``, if ``process`` exits or
    ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {seconds} s:\n{log.read_text()[-3000:]}")
