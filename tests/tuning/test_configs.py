"""Search configurations in experiments/: the shipped files load; every mistake is named by file and key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from genre.cli import main
from genre.errors import ConfigError
from genre.models import inverse_square
from genre.tuning import load_search_config, resolve_config_path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "experiments").glob("*/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_load(path):
    config = load_search_config(path, path.parent.name)
    assert config.model == path.stem
    assert config.n_candidates > 0 if config.kind == "grid" else config.space


def test_the_seeds_grids_are_shipped_as_given():
    knn = load_search_config("knn", "grid")
    assert knn.grid == [
        {"n_neighbors": [1, 2, 3, 4, 5, 6, 7, 8], "weights": ["uniform", "distance"], "p": [1, 2, 3]}
    ]
    assert knn.n_candidates == 48
    svm = load_search_config("svm", "grid")
    assert svm.grid == [
        {"C": [0.1, 1, 10, 100, 1000], "kernel": ["poly", "rbf", "sigmoid"], "gamma": ["scale", "auto"]}
    ]
    assert svm.n_candidates == 30


def test_a_bare_name_resolves_into_experiments():
    assert resolve_config_path("knn", "optuna").parts[-3:] == ("experiments", "optuna", "knn.yaml")
    assert resolve_config_path("nothing.yaml", "grid") == Path("nothing.yaml")


def test_nn_space_prunes_and_searches_early_stopping():
    config = load_search_config("nn", "optuna")
    assert {"patience", "min_delta", "restore_best_weights"} <= set(config.space)
    assert isinstance(config.make_pruner(), optuna.pruners.MedianPruner)


def test_aliases_and_lists_of_grids_are_accepted(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text("model: knn\ngrid:\n  - {weights: [inverse_square], n_neighbors: [3]}\n  - {p: [1, 2]}\n")
    config = load_search_config(path, "grid")
    assert config.n_candidates == 3
    assert config.grid[0]["weights"] == ["inverse_square"]  # the alias is resolved when the search runs
    from genre.models import check_params

    assert check_params("knn", {"weights": "inverse_square"})["weights"] is inverse_square


BAD_GRIDS = [
    ("model: knn\ngrid: {n_neighbors: [3]}\nextra: 1\n", "extra: unknown key"),
    ("model: forest\ngrid: {n_neighbors: [3]}\n", "model: expected one of knn, svm, nn, stacking"),
    ("grid: {n_neighbors: [3]}\n", "model: expected one of"),
    ("model: knn\n", "grid: missing or empty"),
    ("model: knn\ngrid: {}\n", "grid: expected a non-empty mapping"),
    ("model: knn\ngrid: {n_neighbors: []}\n", "grid.n_neighbors: expected a non-empty list"),
    ("model: knn\ngrid: {n_neighbors: 3}\n", "grid.n_neighbors: expected a non-empty list"),
    (
        "model: knn\ngrid: {n_neighbor: [3]}\n",
        "grid.n_neighbor[0]: knn model has no parameter 'n_neighbor'; did you mean",
    ),
    (
        "model: knn\ngrid: {n_neighbors: [3, 1.5]}\n",
        "grid.n_neighbors[1]: knn model, parameter 'n_neighbors'",
    ),
    ("model: svm\ngrid: {kernel: [rbf, cubic]}\n", "grid.kernel[1]: svm model, parameter 'kernel'"),
    ("model: svm\ngrid: {C: [-1]}\n", "grid.C[0]: svm model, parameter 'C'"),
    ("model: knn\nscoring: acuracy\ngrid: {p: [1]}\n", "scoring: 'acuracy' is not a scikit-learn scorer"),
    ("model: knn\nfixed: {p: 1}\ngrid: {p: [1, 2]}\n", "fixed.p: also in the grid"),
    ("model: knn\nfixed: {q: 1}\ngrid: {p: [1, 2]}\n", "fixed.q: knn model has no parameter 'q'"),
    ("model: knn\nspace: {p: {type: int, low: 1, high: 2}}\ngrid: {p: [1]}\n", "space: unknown key"),
    ("- just\n- a list\n", "expected a mapping of keys"),
    ("model: [unclosed\n", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_GRIDS)
def test_bad_grid_configs_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_search_config(path, "grid")
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


BAD_SPACES = [
    ("model: svm\n", "space: missing or empty"),
    ("model: svm\nspace: {C: [1, 2]}\n", "space.C: expected {type: float|int|categorical"),
    ("model: svm\nspace: {C: {type: real, low: 1, high: 2}}\n", "space.C: expected {type"),
    ("model: svm\nspace: {C: {type: float, low: 1}}\n", "space.C: a float parameter takes low and high"),
    ("model: svm\nspace: {C: {type: float, low: 10, high: 1}}\n", "space.C: "),
    ("model: svm\nspace: {C: {type: float, low: -1, high: 1}}\n", "space.C.low: svm model, parameter 'C'"),
    (
        "model: svm\nspace: {kernel: {type: categorical, choices: []}}\n",
        "space.kernel: a categorical parameter",
    ),
    ("model: svm\nspace: {kernel: {type: categorical, choices: [rbf, x]}}\n", "space.kernel.choices[1]"),
    ("model: svm\nspace: {C: {type: float, low: 0.1, high: 1}}\npruner: {type: best}\n", "pruner: expected"),
    (
        "model: svm\nspace: {C: {type: float, low: 0.1, high: 1}}\npruner: {type: median, warmup: 3}\n",
        "pruner:",
    ),
    ("model: svm\nspace: {C: {type: float, low: 0.1, high: 1}}\ngrid: {C: [1]}\n", "grid: unknown key"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPACES)
def test_bad_optuna_configs_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_search_config(path, "optuna")
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_search_config(tmp_path / "nope.yaml", "grid")


def test_the_cli_fails_on_a_bad_config_before_loading_any_data(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: knn\ngrid: {n_neighbors: [0]}\n")
    # The data path does not exist either: the configuration must be what fails, first.
    assert main(["tune-grid", str(path), "--data", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"genre: error: {path}: grid.n_neighbors[0]: knn model, parameter 'n_neighbors'")
    assert "Traceback" not in err


def test_the_transform_is_part_of_a_config(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("model: svm\ntransform: logvar\ngrid: {C: [1]}\n")
    assert load_search_config(path, "grid").transform == "logvar"
    path.write_text("model: svm\ntransform: boxcox\ngrid: {C: [1]}\n")
    with pytest.raises(ConfigError, match=r"t.yaml: transform: expected one of standard, logvar"):
        load_search_config(path, "grid")
