"""Registration and promotion: aliases, the model card, and the choice of the best run."""

from __future__ import annotations

import shutil

import mlflow
import pytest
from mlflow import MlflowClient

from genre.cli import main
from genre.errors import RegistryError
from genre.features import load_data
from genre.registry import best_run, promote, register
from genre.serving import GenrePyfunc
from genre.training import train_run
from tests.conftest import use_store
from tests.test_mlproject import _mlflow_run

NAME = "genre-classifier"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """Three knn runs on the embedded data, trained once for the module: k=1 and k=15 under grouped, one
    under the leaky seed protocol."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        use_store(root, patch)
        dataset = load_data("embedded")
        found = {
            "k1": train_run("knn", dataset, params={"n_neighbors": 1}, n_splits=2),
            "k15": train_run("knn", dataset, params={"n_neighbors": 15}, n_splits=2),
            "seed": train_run("knn", dataset, protocol="seed", n_splits=2),
        }
    mlflow.set_tracking_uri(None)
    return root / "mlflow.db", found


@pytest.fixture
def runs(trained, tmp_path, monkeypatch):
    """Those runs in a store of the test's own, a copy of the module's: each test registers from nothing."""
    store, found = trained
    shutil.copyfile(store, tmp_path / "mlflow.db")
    use_store(tmp_path, monkeypatch)
    yield found
    mlflow.set_tracking_uri(None)


def test_best_run_compares_runs_of_one_protocol(runs):
    chosen = best_run(model="knn", metric="cv_accuracy_mean")
    grouped = {key: runs[key].evaluation.summary()["cv_accuracy_mean"] for key in ("k1", "k15")}
    assert chosen.info.run_id == runs[max(grouped, key=grouped.get)].run_id
    assert best_run(model="knn", protocol="seed").info.run_id == runs["seed"].run_id
    with pytest.raises(RegistryError, match="no finished stacking run under the grouped protocol"):
        best_run()
    with pytest.raises(RegistryError, match="no experiment named 'nope'"):
        best_run("nope")


def test_register_writes_the_card_and_promote_keeps_previous(runs):
    client = MlflowClient()
    first = register(runs["k1"].run_id)
    assert (first.version, first.previous_champion) == ("1", None)
    second = register(runs["k15"].run_id)
    assert (second.version, second.previous_champion) == ("2", "1")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "previous").version) == "1"

    version = client.get_model_version(NAME, "2")
    card = version.description
    for fragment in (
        f"# {NAME}, version 2",
        "`knn` on the `gtzan57` features under the `grouped` protocol",
        "| `data.name` | `embedded-seed0` |",
        "| accuracy | 0.",
        "| `knn__n_neighbors` | `15` |",
        f"training run | `{runs['k15'].run_id}`",
        f"registration run | `{second.registration_run_id}`",
        "3.00 s every 3.00 s",
    ):
        assert fragment in card, fragment
    assert version.tags["genre.source_run_id"] == runs["k15"].run_id
    assert float(version.tags["genre.cv_accuracy_mean"]) == pytest.approx(
        runs["k15"].evaluation.summary()["cv_accuracy_mean"], abs=1e-4
    )
    model = client.get_registered_model(NAME)
    assert model.description == card and model.tags["genre.champion_version"] == "2"
    assert client.get_run(second.registration_run_id).data.tags["genre.source_run_id"] == runs["k15"].run_id

    assert promote("previous") == ("1", "2")  # rollback
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "previous").version) == "2"
    assert client.get_registered_model(NAME).tags["genre.source_run_id"] == runs["k1"].run_id
    with pytest.raises(RegistryError, match="version 1 is already the champion"):
        promote(1)
    with pytest.raises(RegistryError, match="has no version 9"):
        promote(9)

    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert isinstance(loaded.unwrap_python_model(), GenrePyfunc)
    assert loaded.metadata.signature is not None and loaded.input_example is not None


def test_a_challenger_waits_beside_the_champion_until_promoted(runs, capsys):
    client = MlflowClient()
    register(runs["k1"].run_id)
    card = client.get_registered_model(NAME).description
    assert main(["register", "--run-id", runs["k15"].run_id, "--alias", "challenger"]) == 0
    out = capsys.readouterr().out
    assert "version 2 from run" in out and "as @challenger" in out and f"models:/{NAME}@challenger" in out
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    model = client.get_registered_model(NAME)
    assert model.description == card and model.tags["genre.champion_version"] == "1"  # still the champion's
    assert "# genre-classifier, version 2" in client.get_model_version(NAME, "2").description

    assert promote("challenger") == ("2", "1")
    assert str(client.get_model_version_by_alias(NAME, "previous").version) == "1"
    assert client.get_model_version(NAME, "2").aliases == ["champion"]  # the challenger alias is spent
    with pytest.raises(RegistryError, match="registered as 'champion' or 'challenger'"):
        register(runs["k1"].run_id, alias="previous")


def test_register_command_and_its_errors(runs, capsys):
    assert main(["register", "--model", "knn"]) == 0
    out = capsys.readouterr().out
    assert "registered genre-classifier version 1 from run" in out and "@champion" in out
    assert main(["register", "--run-id", "no-such-run"]) == 2
    assert "genre: error: no run 'no-such-run'" in capsys.readouterr().err
    assert main(["promote", "3"]) == 2
    assert "has no version 3" in capsys.readouterr().err
    unregistered = train_run("knn", load_data("embedded"), n_splits=2, log_model=False)
    assert main(["register", "--run-id", unregistered.run_id]) == 2
    assert "has no loadable model" in capsys.readouterr().err


def test_register_entry_point(runs, tracking):
    done = _mlflow_run("register", tracking, run_id=runs["k15"].run_id)
    assert done.returncode == 0, done.stderr[-2000:]
    version = MlflowClient().get_model_version_by_alias(NAME, "champion")
    assert version.tags["genre.source_run_id"] == runs["k15"].run_id
    registration = MlflowClient().get_run(version.run_id)
    assert registration.data.tags["genre.job"] == "register" and registration.data.params["run_id"]


def test_best_run_prefers_the_filtered_protocol_when_there_is_one(runs):
    from genre.data import from_frame
    from tests.conftest import gtzan_like

    assert best_run(model="knn").data.tags["genre.protocol"] == "grouped"  # no filtered run yet
    filtered = train_run("knn", from_frame(gtzan_like(), source="g.csv"), protocol="filtered", n_splits=2)
    assert best_run(model="knn").info.run_id == filtered.run_id
    version = register(model="knn")
    card = MlflowClient().get_model_version(NAME, version.version).description
    assert "under the `filtered` protocol" in card and "`gtzan57` features" in card
    assert "Held-out test: the 290 test tracks of GTZAN's fault-filtered split" in card
    assert "best cv_accuracy_mean among the knn/filtered runs" in card
