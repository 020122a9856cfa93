"""Names every layer shares: where runs and models go, where the cache lives, and the dependency pins.

The lowest layer of the package (it imports nothing of genre's), so that training, the registry, the
server, the web page and the CLI agree on one experiment, one registered model and one set of aliases
without importing one another.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "COMMAND_ENV",
    "EMBEDDED",
    "EXPERIMENT",
    "GTZAN_MUSICNN",
    "MODEL_NAME",
    "MODEL_REQUIREMENTS",
    "PINS",
    "PREVIOUS",
    "SERVING_REQUIREMENTS",
    "cache_dir",
    "default_jobs",
    "requirements",
]

#: ``data`` names of the two data sets the package carries: musicnn's taggrams of GTZAN (real music, the
#: main job's default) and the synthetic audio it generates (the audio path and the 57 features).
GTZAN_MUSICNN = "gtzan-musicnn"
EMBEDDED = "embedded"

#: The MLflow experiment every entry point writes to and reads from, unless the user chose another.
EXPERIMENT = "genre"
#: The registered model the README, the CLI, MLproject, the registry and the web page default to.
MODEL_NAME = "genre-classifier"
#: The alias serving follows, the one a promotion leaves behind (for rollbacks), and the alias of a
#: version registered to be tried before it is promoted.
CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"

#: Set by the ``genre`` command for its process: its arguments (JSON), which its top-level runs record
#: for ``genre reproduce``.
COMMAND_ENV = "GENRE_COMMAND"

#: Every runtime dependency's pin, exactly as ``pyproject.toml`` declares it (a test holds them equal).
PINS: dict[str, str] = {
    "mlflow": "mlflow==3.17.2",
    "scikit-learn": "scikit-learn==1.9.1",
    "tensorflow-cpu": "tensorflow-cpu==2.21.0",
    "librosa": "librosa==0.11.0",
    "soundfile": "soundfile==0.14.0",
    "pandas": "pandas==3.1.1",
    "numpy": "numpy>=2.4,<2.5",
    "scipy": "scipy==1.17.1",
    "optuna": "optuna==5.0.0",
    "joblib": "joblib==1.6.0",
    "threadpoolctl": "threadpoolctl==3.8.0",
    "bottleneck": "bottleneck==1.6.0",
    "pyyaml": "pyyaml>=6.0,<7",
    "tqdm": "tqdm>=4.66,<5",
    "matplotlib": "matplotlib>=3.9,<4",
    "httptools": "httptools==0.9.0",
    "uvloop": "uvloop==0.23.0",
    "mutagen": "mutagen==1.48.1",
    "av": "av==18.1.0",
}


def requirements(*names: str) -> list[str]:
    """The pins of ``names``, for a logged model's ``pip_requirements``."""
    return [PINS[name] for name in names]


#: What a logged model of ``genre.models`` needs to load and predict. Explicit, because letting MLflow
#: infer requirements imports TensorFlow and takes ~17 s (stack-facts.md).
MODEL_REQUIREMENTS = requirements(
    "scikit-learn", "tensorflow-cpu", "pandas", "numpy", "joblib", "threadpoolctl"
)
#: What the served pyfunc needs on top: MLflow, the audio stack (PyAV decodes M4A/AAC), and the C HTTP
#: parser and event loop uvicorn (under ``mlflow models serve``) uses when they are installed.
SERVING_REQUIREMENTS = [
    *MODEL_REQUIREMENTS,
    *requirements("mlflow", "librosa", "soundfile", "av", "scipy", "httptools", "uvloop"),
]


def default_jobs() -> int:
    """Worker processes for extraction and cross-validation folds when the user does not say.

    Two: on two cores a stack's 5-fold cross-validation ran 1.26x faster with two fold processes than
    with one (docs/results.md); more workers mean one TensorFlow per worker in memory. One on a one-core
    machine.
    """
    return min(2, os.cpu_count() or 1)


def cache_dir() -> Path:
    """Where generated data and cached features live: ``$GENRE_CACHE_DIR``, else ``~/.cache/genre``."""
    if "GENRE_CACHE_DIR" in os.environ:
        return Path(os.environ["GENRE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genre"
