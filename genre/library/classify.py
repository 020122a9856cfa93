"""Which model a catalog uses, and the one call that classifies its files.

A catalog row says which model answered it (``ModelRef``: the registered name and version, or for a
model outside the registry its URI and the ``model_uuid`` MLflow gave it), so a rescan knows whether an
answer is still the current model's. An alias such as ``@champion`` is resolved to its version once,
before any file is read, and that version is what answers the whole scan, even if the alias moves
meanwhile.

``classify_files`` is the catalog's only contact with the model: it answers a list of files with
``genre predict``'s own function (``genre.registry.predict_files``: decoded and windowed in worker
processes on every core, answered with the model loaded once, one bad file answered with its error).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genre import settings
from genre.errors import RegistryError
from genre.library.store import model_label

if TYPE_CHECKING:
    from genre.registry import SongAnswer

__all__ = ["ModelRef", "classify_files", "resolve_model"]

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A model pinned to one version: ``name`` and ``version`` as the catalog records them, and the
    arguments of ``genre.registry.load_classifier`` that load exactly that version."""

    name: str
    version: str
    source: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return model_label(self.name, self.version)


def resolve_model(
    *,
    model: str | None = None,
    run_id: str | None = None,
    name: str = settings.MODEL_NAME,
    alias: str = settings.CHAMPION,
) -> ModelRef:
    """The model ``genre predict`` would load for these options, pinned to its current version.

    Raises
    ------
    RegistryError
        No such registered model, version or alias, run, or model URI.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from genre.tracking import configure_tracking

    configure_tracking()
    if run_id is not None:
        return ModelRef(f"run {run_id}", run_id, (("run_id", run_id),))
    found = _REGISTERED.match(model or f"models:/{name}@{alias}")
    try:
        if found is None:
            info = mlflow.models.get_model_info(model)
            return ModelRef(model, info.model_uuid or "", (("model", model),))
        name = found["name"]
        if found["alias"]:
            version = MlflowClient().get_model_version_by_alias(name, found["alias"]).version
        else:
            version = MlflowClient().get_model_version(name, found["version"]).version
    except (MlflowException, OSError) as exc:
        hint = " (train one: genre main)" if found is not None and found["alias"] == settings.CHAMPION else ""
        raise RegistryError(
            f"cannot find {model or f'models:/{name}@{alias}'}: {str(exc).splitlines()[0]}{hint}"
        ) from None
    return ModelRef(name, str(version), (("model", f"models:/{name}/{version}"),))


def classify_files(
    paths: Sequence[str], model: ModelRef, *, jobs: int, full: bool = False
) -> Iterator[SongAnswer]:
    """One ``SongAnswer`` per path, in order: genre, top three, agreement of windows, windows, seconds,
    or the error that kept the file from an answer."""
    from genre.registry import predict_files  # the model's stack, imported only when files need it

    return predict_files(paths, full=full, jobs=jobs, **dict(model.source))
