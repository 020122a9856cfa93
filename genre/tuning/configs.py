"""Search configurations: exhaustive grids and Optuna search spaces, kept as YAML data in ``experiments/``.

A configuration names a model, what to maximise, parameters held fixed, and either a ``grid`` (every
combination is tried, by ``GridSearchCV``) or a ``space`` (Optuna samples from it)::

    model: svm                 # knn | svm | nn | stacking
    features: gtzan57          # gtzan57 (default) | musicnn | both: the feature sets the model is given
    transform: logvar          # standard (default) | logvar: log of the *_var columns before scaling
    scoring: accuracy          # any scikit-learn scorer name; default accuracy
    fixed: {calibration: temperature}
    grid:                      # a mapping of lists, or a list of such mappings
      C: [0.1, 1, 10]
      kernel: [rbf, poly]
    space:                     # Optuna: {type: float|int, low, high, log, step} | {type: categorical, ...}
      C: {type: float, low: 0.01, high: 1000, log: true}
    pruner: {type: median, n_warmup_steps: 10}   # Optuna only: median | hyperband | threshold...

Everything is checked when the file is read, before any data is loaded: unknown keys, an unknown
model or parameter, an empty grid, a value the parameter cannot take (every grid value, every bound
and choice of a space), an unknown scorer or pruner. Errors are :class:`genre.errors.ConfigError`
naming the file and the key, e.g. ``experiments/grid/knn.yaml: grid.n_neighbors[2]: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
import yaml
from sklearn.metrics import get_scorer_names

from genre.errors import ConfigError
from genre.models import FEATURES, MODEL_NAMES, TRANSFORMS, check_params, make_model

__all__ = ["SearchConfig", "load_search_config", "resolve_config_path", "suggest"]

#: The search configurations shipped inside the package (``experiments/`` in the repository links here).
SHIPPED = resources.files("genre") / "experiments"

_KEYS = {
    "grid": {"model", "features", "transform", "scoring", "fixed", "grid"},
    "optuna": {"model", "features", "transform", "scoring", "fixed", "space", "pruner"},
}

_PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}


@dataclass(frozen=True)
class SearchConfig:
    """A validated search configuration.

    Attributes
    ----------
    path : Path
        The file it was read from (logged as an artifact of the search).
    kind : {"grid", "optuna"}
    model : str
        One of ``MODEL_NAMES``.
    transform : str
        One of ``models.TRANSFORMS``: the feature transform before the scaler.
    scoring : str
        The scikit-learn scorer the search maximises.
    fixed : dict
        Parameters every candidate shares, as written in the file.
    grid : list of dict
        ``kind == "grid"``: the parameter grid(s) as written (lists of values), in the model's own
        parameter names.
    space : dict of str to optuna distribution
        ``kind == "optuna"``: one distribution per parameter.
    pruner : dict
        ``kind == "optuna"``: ``{"type": name, **arguments}``.
    features : str
        One of ``models.FEATURES``: the feature sets the model is given.
    """

    path: Path
    kind: str
    model: str
    transform: str = "standard"
    scoring: str = "accuracy"
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: list[dict[str, list[Any]]] = field(default_factory=list)
    space: dict[str, optuna.distributions.BaseDistribution] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    features: str = "gtzan57"

    def build(self, params: Mapping[str, Any], *, random_state: int) -> Any:
        """The configured model (transform, feature sets) with ``params``: an unfitted pipeline."""
        return make_model(
            self.model, params, random_state=random_state, transform=self.transform, features=self.features
        )

    @property
    def n_candidates(self) -> int:
        """Combinations in the grid (0 for an Optuna space)."""
        total = 0
        for grid in self.grid:
            count = 1
            for values in grid.values():
                count *= len(values)
            total += count
        return total

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """The configured Optuna pruner (arguments were checked when the file was read)."""
        arguments = {key: value for key, value in self.pruner.items() if key != "type"}
        return _PRUNERS[self.pruner["type"]](**arguments)

    def text(self) -> str:
        """The file's text, for logging with the search."""
        return self.path.read_text()


def resolve_config_path(spec: str | Path, kind: str) -> Path:
    """``spec`` as a file, or a bare name (``svm``) as ``<kind>/<name>.yaml``: in the working directory's
    ``experiments/`` first (a user's own, or the repository's under ``mlflow run``), else the shipped one.
    """
    path = Path(spec)
    if path.exists() or path.suffix:
        return path
    for folder in (Path("experiments"), Path(str(SHIPPED))):
        candidate = folder / kind / f"{spec}.yaml"
        if candidate.exists():
            return candidate
    return path


def load_search_config(spec: str | Path, kind: str) -> SearchConfig:
    """Read and validate a ``kind`` (``"grid"`` or ``"optuna"``) configuration file.

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or any key or value is wrong; the message names the file and
        the key.
    """
    if kind not in _KEYS:
        raise ConfigError(f"unknown search kind {kind!r}; expected grid or optuna")
    path = resolve_config_path(spec, kind)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such configuration file (expected a YAML file or a name in experiments/{kind}/)"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys ({', '.join(sorted(_KEYS[kind]))})")
    where = _Where(path)
    unknown = sorted(set(raw) - _KEYS[kind])
    if unknown:
        raise where.error(
            unknown[0], f"unknown key; a {kind} configuration has {', '.join(sorted(_KEYS[kind]))}"
        )

    model = raw.get("model")
    if model not in MODEL_NAMES:
        raise where.error("model", f"expected one of {', '.join(MODEL_NAMES)}, got {model!r}")
    features = raw.get("features", "gtzan57")
    if features not in FEATURES:
        raise where.error("features", f"expected one of {', '.join(FEATURES)}, got {features!r}")
    where.features = features
    transform = raw.get("transform", "standard")
    if transform not in TRANSFORMS:
        raise where.error("transform", f"expected one of {', '.join(TRANSFORMS)}, got {transform!r}")
    scoring = raw.get("scoring", "accuracy")
    if scoring not in get_scorer_names():
        raise where.error(
            "scoring", f"{scoring!r} is not a scikit-learn scorer name (e.g. accuracy, f1_macro)"
        )
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        raise where.error("fixed", "expected a mapping of parameter names to values")
    for name, value in fixed.items():
        where.check(model, f"fixed.{name}", name, value)

    if kind == "grid":
        grid = _read_grid(raw.get("grid"), model, where)
        overlap = sorted(set(fixed).intersection(*[set(g) for g in grid]))
        if overlap:
            raise where.error(
                f"fixed.{overlap[0]}", "also in the grid; a parameter is either fixed or searched"
            )
        return SearchConfig(path, kind, model, transform, scoring, dict(fixed), grid=grid, features=features)

    space = _read_space(raw.get("space"), model, where)
    overlap = sorted(set(fixed) & set(space))
    if overlap:
        raise where.error(f"fixed.{overlap[0]}", "also in the space; a parameter is either fixed or searched")
    pruner = _read_pruner(raw.get("pruner"), where)
    return SearchConfig(
        path, kind, model, transform, scoring, dict(fixed), space=space, pruner=pruner, features=features
    )


def suggest(trial: optuna.Trial, name: str, distribution: optuna.distributions.BaseDistribution) -> Any:
    """Ask ``trial`` for parameter ``name`` from ``distribution`` through Optuna's public ``suggest_*``."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, optuna.distributions.FloatDistribution)
    return trial.suggest_float(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


class _Where:
    """Builds ``ConfigError``s that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.features = "gtzan57"  # parameter names of a stack depend on its feature sets

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def check(self, model: str, key: str, name: Any, value: Any) -> None:
        """Check one parameter value with the model's own constraints."""
        if not isinstance(name, str):
            raise self.error(key, f"parameter names are text, got {name!r}")
        try:
            check_params(model, {name: value}, self.features)
        except ConfigError as error:
            raise self.error(key, str(error)) from None


def _read_grid(raw: Any, model: str, where: _Where) -> list[dict[str, list[Any]]]:
    grids = raw if isinstance(raw, list) else [raw]
    if raw is None or not grids:
        raise where.error("grid", "missing or empty; give each parameter a list of values")
    checked = []
    for index, grid in enumerate(grids):
        key = "grid" if not isinstance(raw, list) else f"grid[{index}]"
        if not isinstance(grid, Mapping) or not grid:
            raise where.error(key, "expected a non-empty mapping of parameter names to lists of values")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise where.error(f"{key}.{name}", f"expected a non-empty list of values, got {values!r}")
            for position, value in enumerate(values):
                where.check(model, f"{key}.{name}[{position}]", name, value)
        checked.append({name: list(values) for name, values in grid.items()})
    return checked


def _read_space(raw: Any, model: str, where: _Where) -> dict[str, optuna.distributions.BaseDistribution]:
    if not isinstance(raw, Mapping) or not raw:
        raise where.error(
            "space", "missing or empty; give each parameter {type, low, high} or {type, choices}"
        )
    space = {}
    for name, spec in raw.items():
        key = f"space.{name}"
        if not isinstance(spec, Mapping) or spec.get("type") not in {"float", "int", "categorical"}:
            raise where.error(key, f"expected {{type: float|int|categorical, ...}}, got {spec!r}")
        arguments = {k: v for k, v in spec.items() if k != "type"}
        if spec["type"] == "categorical":
            if (
                set(arguments) != {"choices"}
                or not isinstance(arguments["choices"], list)
                or not arguments["choices"]
            ):
                raise where.error(
                    key, "a categorical parameter takes exactly one key, choices: a non-empty list"
                )
            for position, value in enumerate(arguments["choices"]):
                where.check(model, f"{key}.choices[{position}]", name, value)
            space[name] = optuna.distributions.CategoricalDistribution(arguments["choices"])
            continue
        allowed = {"low", "high", "log", "step"}
        if not {"low", "high"} <= set(arguments) <= allowed:
            raise where.error(key, f"a {spec['type']} parameter takes low and high, optionally log and step")
        for bound in ("low", "high"):
            where.check(model, f"{key}.{bound}", name, arguments[bound])
        cls = (
            optuna.distributions.IntDistribution
            if spec["type"] == "int"
            else optuna.distributions.FloatDistribution
        )
        try:
            space[name] = cls(**arguments)
        except (ValueError, TypeError) as error:
            raise where.error(key, str(error)) from None
    return space


def _read_pruner(raw: Any, where: _Where) -> dict[str, Any]:
    if raw is None:
        return {"type": "none"}
    if not isinstance(raw, Mapping) or raw.get("type") not in _PRUNERS:
        raise where.error("pruner", f"expected {{type: {'|'.join(_PRUNERS)}, ...}}, got {raw!r}")
    arguments = {key: value for key, value in raw.items() if key != "type"}
    try:
        _PRUNERS[raw["type"]](**arguments)
    except (TypeError, ValueError) as error:
        raise where.error("pruner", str(error)) from None
    return dict(raw)
