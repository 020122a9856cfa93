# ruff: noqa: N803, N806 - X is scikit-learn's name for the feature matrix
"""genre.models: scikit-learn's estimator checks, the four pipelines, determinism, errors, early stopping.

Networks here are tiny (one hidden layer of a few units, a few epochs), so the file runs in a couple of
minutes on two cores; the real-data accuracy of the defaults is measured by benchmarks/model_cv.py.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, StratifiedKFold, check_cv
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from genre.data import Dataset
from genre.data.schema import FEATURE_COLUMNS, MUSICNN_COLUMNS
from genre.errors import ConfigError
from genre.evaluation import fit_model
from genre.features import load_data
from genre.models import (
    MODEL_NAMES,
    CalibratedSVC,
    KerasMLPClassifier,
    KNNClassifier,
    VectorizedSVC,
    inverse_square,
    make_model,
)
from genre.tracking import model_params
from tests.conftest import GTZAN_30, require, with_libsvm
from tests.rounding import network_bound, roundoff, sums_apart, svc_decision_bound

#: Small enough for scikit-learn's ~40 generic checks, each a few fits, to take seconds.
TINY_NN = {"hidden_layers": 1, "units": 8, "epochs": 5, "learning_rate": 1e-2, "batch_size": 16}
#: Small, but learns the 10-class toy problem below in a second.
SMALL_NN = {"hidden_layers": 1, "units": 32, "epochs": 20, "learning_rate": 1e-2, "batch_size": 16}
#: The same inside the stack, through StackingClassifier's parameter names.
SMALL_STACK = {f"nn__{key}": value for key, value in SMALL_NN.items()}
SMALL_PARAMS = {"knn": {}, "svm": {}, "nn": SMALL_NN, "stacking": SMALL_STACK}


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, VectorizedSVC):
        reason = "SVC's own libsvm fit: scikit-learn lists the same expected failure for SVC"
        return {
            "check_sample_weight_equivalence_on_dense_data": reason,
            "check_sample_weight_equivalence_on_sparse_data": reason,
        }
    return {}


@parametrize_with_checks(
    [KerasMLPClassifier(**TINY_NN), CalibratedSVC(), KNNClassifier(), VectorizedSVC()],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


def _svc_bound(svc: VectorizedSVC, X: np.ndarray) -> np.ndarray:
    """``svc_decision_bound`` in the shape ``decision_function`` answers in. One-vs-rest values count
    each class's pair votes (equal on both paths while no pair's value is within its bound of zero,
    asserted) plus a third of its summed confidences, squashed by ``x / (3 (|x| + 1))`` (derivative at
    most 1/3): they move by at most a third of the row's summed pair moves, plus their own roundings."""
    pairs = svc_decision_bound(svc, X)
    if len(svc.classes_) == 2:
        return pairs.ravel()
    if svc.decision_function_shape == "ovo":
        return pairs
    ovo = svc._decision_function(X)
    assert (np.abs(ovo) > pairs).all(), "a one-vs-one value within rounding of zero: a vote could flip"
    return pairs.sum(axis=1, keepdims=True) / 3 + 8 * roundoff() * np.abs(svc.decision_function(X))


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid"])
@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("shape", ["ovr", "ovo"])
def test_vectorized_svc_decision_function_is_libsvms(kernel, n_classes, shape) -> None:
    X, y = make_classification(
        n_samples=200, n_features=57, n_informative=20, n_classes=n_classes, random_state=n_classes
    )
    svc = VectorizedSVC(kernel=kernel, decision_function_shape=shape).fit(X[:150], y[:150])
    reference = SVC(kernel=kernel, decision_function_shape=shape).fit(X[:150], y[:150])
    # libsvm's loops and BLAS's matrix products sum in other orders: within the derived float64 bound.
    difference = np.abs(svc.decision_function(X) - reference.decision_function(X))
    assert (difference <= _svc_bound(svc, X)).all()
    assert_array_equal(svc.predict(X), reference.predict(X))


@pytest.mark.gtzan
def test_svm_on_gtzan_predicts_what_libsvm_predicts_and_fits_as_before() -> None:
    """The fast decision function changes neither what fit learns nor the probabilities, on real data."""
    dataset = load_data(require(GTZAN_30))
    train, test, y = dataset.X.iloc[::2], dataset.X.iloc[1::2], dataset.y[::2]
    fast = make_model("svm").fit(train, y)
    calibrated = fast[-1].calibrated_.calibrated_classifiers_[0]
    svc = calibrated.estimator
    assert type(svc) is VectorizedSVC
    rows = fast[0].transform(test)
    # The same calibrator on decision values within the SVC bound: temperature scaling is softmax(beta f),
    # and a move of at most d in every f moves p by at most p * expm1(2 beta d); (n_classes + 4) u for
    # the softmax's own roundings.
    beta = calibrated.calibrators[0].beta_
    assert svc.decision_function_shape == "ovr"  # what the calibrator sees
    moved = _svc_bound(svc, rows)
    expected = with_libsvm(fast).predict_proba(test)
    bound = expected * (np.expm1(2 * beta * moved) + (len(svc.classes_) + 4) * roundoff())
    assert (np.abs(fast.predict_proba(test) - expected) <= bound).all()
    assert_array_equal(fast.predict(test), with_libsvm(fast).predict(test))
    # What CalibratedSVC fitted before VectorizedSVC: libsvm's SVC in scikit-learn's calibration. The SVC
    # is libsvm's own fit on both sides (its loops, no BLAS): the same bits.
    scaler = fast[0]
    before = CalibratedClassifierCV(SVC(C=3.0), method="temperature", cv=5, ensemble=False)
    before.fit(scaler.transform(train), y)
    old = before.calibrated_classifiers_[0]
    assert_array_equal(old.estimator.dual_coef_, svc.dual_coef_)
    assert_array_equal(old.estimator.support_vectors_, svc.support_vectors_)
    # The temperature is fitted on cross-validated decision values, libsvm's there and BLAS's here, by
    # minimize_scalar on log(beta): its bounded Brent search stops within 2 (sqrt(eps) |log beta| +
    # xatol / 3) of the minimum it brackets (xatol = 64 eps), and rounding in the loss moves the bracketed
    # minimum by as much again (a minimum is only found to about sqrt(eps) relative): 4 sqrt(eps) in all.
    log_beta = np.log(old.calibrators[0].beta_), np.log(beta)
    eps = np.finfo(np.float64).eps
    assert abs(log_beta[0] - log_beta[1]) <= 4 * (np.sqrt(eps) * abs(log_beta[1]) + 64 * eps / 3)
    decision = np.abs(svc.decision_function(rows)).max(axis=1, keepdims=True)
    moved = moved + abs(old.calibrators[0].beta_ - beta) * decision / beta
    bound = expected * (np.expm1(2 * beta * moved) + (len(svc.classes_) + 4) * roundoff())
    assert (np.abs(before.predict_proba(rows) - expected) <= bound).all()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """GTZAN's shape in miniature: 57 features, 10 classes with string labels, 300 rows."""
    X, y = make_classification(
        n_samples=300, n_features=57, n_informative=20, n_classes=10, class_sep=2.0, random_state=0
    )
    return X, np.array([f"genre{label}" for label in y])


@pytest.fixture(scope="module")
def fitted_stack(data):
    X, y = data
    return make_model("stacking", SMALL_STACK).fit(X, y)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_fits_and_predicts_probabilities(name, data, fitted_stack) -> None:
    X, y = data
    model = fitted_stack if name == "stacking" else make_model(name, SMALL_PARAMS[name]).fit(X, y)
    proba = model.predict_proba(X[:20])
    assert_array_equal(model.classes_, np.unique(y))
    assert proba.shape == (20, 10)
    # Each row is normalised by its sum of 10 probabilities: 1 within that sum's rounding (one more term
    # for the division's).
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=sums_apart(10 + 1, 1.0))
    assert_array_equal(model.predict(X[:20]), model.classes_[proba.argmax(axis=1)])
    assert model.score(X, y) > 0.5  # chance is 0.1: the model learnt something


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_is_a_scaled_classifier_so_integer_cv_is_stratified(name, data) -> None:
    model = make_model(name)
    assert [step for step, _ in model.steps] == ["scale", name]
    assert is_classifier(model)
    assert isinstance(check_cv(5, data[1], classifier=is_classifier(model)), StratifiedKFold)


def test_stacking_exposes_base_and_meta_parameters() -> None:
    model = make_model("stacking", {"knn__n_neighbors": 9, "svm__C": 10.0, "final_estimator__C": 0.5})
    params = model.get_params()
    assert params["stacking__knn__n_neighbors"] == 9
    assert params["stacking__svm__C"] == 10.0
    assert params["stacking__final_estimator__C"] == 0.5
    assert params["stacking__nn__random_state"] == 0
    assert params["stacking__cv"].get_n_splits() == 5
    assert params["stacking__cv"].random_state == 0
    model.set_params(stacking__nn__units=16)
    assert model[-1].named_estimators["nn"].units == 16


def test_grid_search_tunes_the_pipeline_through_step_names(data) -> None:
    X, y = data
    grid = {"knn__n_neighbors": [1, 5], "knn__weights": ["distance", inverse_square]}
    search = GridSearchCV(make_model("knn"), grid, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_[-1].n_neighbors in (1, 5)


@pytest.mark.parametrize("name", ["nn", "stacking"])
def test_same_random_state_gives_identical_probabilities(name, data, fitted_stack) -> None:
    """Equal bits, on any CPU: both fits run in this process, so on the same BLAS and TensorFlow kernels,
    with the same shapes and one thread per pool (the pipeline's ``single_threaded``, TensorFlow's
    ``configure_tensorflow``), so every sum runs in the same order."""
    X, y = data
    first = fitted_stack if name == "stacking" else make_model(name, SMALL_PARAMS[name]).fit(X, y)
    second = make_model(name, SMALL_PARAMS[name]).fit(X, y)
    assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_random_state_matters_and_global_generators_are_left_alone(data) -> None:
    X, y = data
    before = np.random.get_state()[1].copy()
    seed0 = make_model("nn", SMALL_NN, random_state=0).fit(X, y).predict_proba(X)
    seed1 = make_model("nn", SMALL_NN, random_state=1).fit(X, y).predict_proba(X)
    assert not np.array_equal(seed0, seed1)
    assert_array_equal(np.random.get_state()[1], before)


def test_fitted_stack_round_trips_through_joblib_and_pickle(fitted_stack, data, tmp_path) -> None:
    """Equal bits: the same weights (the network's pickle in float32, exactly its float32 weights) in
    the same process, shapes and thread count."""
    X, _ = data
    expected = fitted_stack.predict_proba(X)
    joblib.dump(fitted_stack, tmp_path / "stack.joblib")
    assert_array_equal(joblib.load(tmp_path / "stack.joblib").predict_proba(X), expected)
    assert_array_equal(pickle.loads(pickle.dumps(fitted_stack)).predict_proba(X), expected)


def test_unpickled_stack_predicts_without_tensorflow_keeps_network(fitted_stack, data, tmp_path) -> None:
    """Serving loads a pickled stack: its network's Keras model is unpickled only when asked for.

    The child's probabilities equal this process's bit for bit: same machine (so the same BLAS kernels),
    same weights and rows, and the pipeline runs one BLAS thread in both processes. Keras' own float32
    output is within the network's float32 and float64 forward-error bounds of predict_proba's.
    """
    X, _ = data
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", fitted_stack.predict_proba(X))
    joblib.dump(fitted_stack, tmp_path / "stack.joblib")
    code = f"""
import sys, joblib, numpy as np
stack = joblib.load({str(tmp_path / "stack.joblib")!r})
X = np.load({str(tmp_path / "X.npy")!r})
np.testing.assert_array_equal(stack.predict_proba(X), np.load({str(tmp_path / "expected.npy")!r}))
assert "tensorflow" not in sys.modules, "predicting imported TensorFlow"
nn = stack[-1].named_estimators_["nn"]
np.save({str(tmp_path / "network.npy")!r}, nn.model_(stack[:-1].transform(X)).numpy())
again = joblib.load({str(tmp_path / "stack.joblib")!r})
import pickle
np.testing.assert_array_equal(pickle.loads(pickle.dumps(stack)).predict_proba(X), again.predict_proba(X))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    nn, rows = fitted_stack[-1].named_estimators_["nn"], fitted_stack[:-1].transform(X)
    bound = network_bound(nn, rows, np.float32) + network_bound(nn, rows, np.float64)
    assert (np.abs(np.load(tmp_path / "network.npy") - nn.predict_proba(rows)) <= bound).all()


def test_importing_models_does_not_import_tensorflow() -> None:
    code = "import sys, genre.models; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("forest", None, ["forest", "knn, svm, nn, stacking"]),
        ("knn", {"n_neighbours": 3}, ["knn", "'n_neighbours'", "did you mean 'n_neighbors'"]),
        ("knn", {"n_neighbors": 0}, ["knn", "'n_neighbors'", "range [1, inf)"]),
        ("knn", {"weights": "gaussian"}, ["knn", "'weights'", "gaussian"]),
        ("svm", {"C": -1.0}, ["svm", "'C'", "Got -1.0"]),
        ("svm", {"kernel": "cubic"}, ["svm", "'kernel'", "cubic"]),
        ("svm", {"gamma": -0.1}, ["svm", "'gamma'"]),
        ("nn", {"dropout": 1.0}, ["nn", "'dropout'", "range [0.0, 1.0)"]),
        ("nn", {"learning_rate": "1e-4"}, ["nn", "'learning_rate'", "float"]),
        ("nn", {"validation_fraction": 0.0}, ["nn", "'validation_fraction'"]),
        ("stacking", {"knn__n_neighbors": -2}, ["stacking", "'knn__n_neighbors'"]),
        ("stacking", {"final_estimator__C": 0}, ["stacking", "'final_estimator__C'"]),
        ("stacking", {"svm__kernel": "cubic"}, ["stacking", "'svm__kernel'", "cubic"]),
    ],
)
def test_bad_configuration_raises_config_error_naming_model_and_parameter(name, params, words) -> None:
    with pytest.raises(ConfigError) as raised:
        make_model(name, params)
    for word in words:
        assert word in str(raised.value)


def test_n_neighbors_larger_than_the_training_rows_fails_at_fit(data) -> None:
    X, y = data
    model = make_model("knn", {"n_neighbors": 50})
    with pytest.raises(ConfigError, match=r"n_neighbors=50 exceeds the training rows \(n_samples = 40\)"):
        model.fit(X[:40], y[:40])


def test_inverse_square_alias_and_zero_distances() -> None:
    model = make_model("knn", {"weights": "inverse_square"})
    assert model.get_params()["knn__weights"] is inverse_square
    weights = inverse_square(np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]]))
    assert_array_equal(weights, [[1.0, 0.25, 0.0625], [1.0, 1.0, 0.0]])


def _noise(n_samples: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Random labels: a network can only memorise them, so the held-out loss soon stops improving."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(n_samples, 20)), rng.integers(0, 3, size=n_samples)


def test_early_stopping_stops_on_a_plateau_and_restores_the_best_epoch() -> None:
    X, y = _noise()
    common = {"hidden_layers": 1, "units": 64, "learning_rate": 1e-2, "random_state": 0}
    stopped = KerasMLPClassifier(epochs=200, patience=5, **common).fit(X, y)
    val_loss = stopped.history_["val_loss"]
    assert stopped.stopped_epoch_ < 200
    assert stopped.best_epoch_ == int(np.argmin(val_loss)) + 1
    assert stopped.stopped_epoch_ == stopped.best_epoch_ + 5
    assert set(stopped.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == stopped.stopped_epoch_ for values in stopped.history_.values())

    # The same seed, trained for exactly best_epoch_ epochs and keeping its last weights, follows the
    # same path: if the stopped model restored its best weights, the two predict identically (one
    # process, one thread per pool, the same shapes: every sum in the same order, on any CPU).
    best = KerasMLPClassifier(epochs=stopped.best_epoch_, restore_best_weights=False, **common).fit(X, y)
    assert best.stopped_epoch_ == stopped.best_epoch_
    assert_array_equal(stopped.predict_proba(X), best.predict_proba(X))


def test_training_loop_matches_keras_fit() -> None:
    """fit's own compiled loop computes what model.fit would: same losses, same weights, same Adam state.

    With one batch per epoch the shuffling order cannot matter, so a Keras model built from the same seed
    and trained by model.fit must end up where ours does, up to float rounding.
    """
    import keras

    X, y = _noise(60)
    ours = KerasMLPClassifier(
        hidden_layers=2,
        units=16,
        learning_rate=1e-2,
        batch_size=60,
        epochs=6,
        validation_fraction=None,
        random_state=0,
    ).fit(X, y)

    # Rebuilt from the fitted network's config, whose initialisers carry their seeds: the same start.
    reference = keras.Sequential.from_config(ours.model_.get_config())
    reference.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = reference.fit(
        X.astype(np.float32), y, batch_size=60, epochs=6, shuffle=False, verbose=0
    ).history

    # Not a dtype bound but measured: the two loops order their float32 sums differently, and Adam, which
    # divides each gradient by its running RMS, amplifies those differences step by step (by as much as
    # the learning rate where a gradient is near zero), so no forward-error bound holds past the first
    # step. Measured after 6 steps: 2.1e-6 relative on the losses, 1.7e-5 on the probabilities; five
    # times that is allowed, far below what a wrong loss, reduction or update changes (1e-3 and more).
    np.testing.assert_allclose(ours.history_["loss"], history["loss"], rtol=1e-5)
    assert_array_equal(ours.history_["accuracy"], history["accuracy"])  # counts of rows over 60
    np.testing.assert_allclose(
        ours.predict_proba(X), reference(X.astype(np.float32)).numpy(), rtol=1e-4, atol=1e-6
    )
    assert int(ours.model_.optimizer.iterations.numpy()) == 6


def test_fits_sharing_compiled_functions_stay_independent_and_deterministic() -> None:
    """Fits of one shape share compiled functions; a fit of another shape, or with dropout, in between
    must not leak state (weights, Adam moments, dropout seeds) from one fit into the next. Equal bits:
    one process, TensorFlow on one thread per pool, the same shapes."""
    X, y = _noise(120)
    params = {"hidden_layers": 2, "units": 16, "dropout": 0.3, "learning_rate": 1e-2, "epochs": 4}
    first = KerasMLPClassifier(**params, random_state=0).fit(X, y).predict_proba(X)
    KerasMLPClassifier(**params, random_state=1).fit(X, y)
    KerasMLPClassifier(**{**params, "units": 8}, random_state=0).fit(X, y)
    again = KerasMLPClassifier(**params, random_state=0).fit(X, y)
    assert_array_equal(again.predict_proba(X), first)
    assert int(again.model_.optimizer.iterations.numpy()) == 4 * 4  # 4 epochs of 4 batches of 32 rows


def test_importing_tensorflow_through_models_prints_nothing() -> None:
    code = "from genre.models import import_keras; import_keras()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr == ""


def test_without_validation_trains_every_epoch_on_every_row() -> None:
    X, y = _noise(60)
    model = KerasMLPClassifier(hidden_layers=1, units=4, epochs=4, validation_fraction=None).fit(X, y)
    assert model.stopped_epoch_ == model.best_epoch_ == 4
    assert set(model.history_) == {"loss", "accuracy"}


class _PrunedError(Exception):
    pass


def test_epoch_callback_sees_every_epoch_and_can_abort_fit() -> None:
    X, y = _noise(60)
    seen: list[tuple[int, dict[str, float]]] = []

    def record(epoch: int, logs: dict[str, float]) -> None:
        seen.append((epoch, logs))

    model = KerasMLPClassifier(hidden_layers=1, units=4, epochs=3, epoch_callback=record)
    assert clone(model).epoch_callback is record
    model.fit(X, y)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert seen[-1][1]["val_loss"] == model.history_["val_loss"][-1]

    def prune(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 2:
            raise _PrunedError

    with pytest.raises(_PrunedError):
        model.set_params(epoch_callback=prune).fit(X, y)


def test_single_class_and_unsplittable_validation_are_clear_errors() -> None:
    X, y = _noise(30)
    with pytest.raises(ValueError, match="at least 2 classes"):
        KerasMLPClassifier(epochs=1).fit(X, np.zeros(30))
    y[0] = 3  # a class of one row cannot be on both sides of a stratified split
    with pytest.raises(ValueError, match="stratified validation set from 30 rows with 4 classes"):
        KerasMLPClassifier(epochs=1).fit(X, y)
    assert KerasMLPClassifier(epochs=1, validation_fraction=None).fit(X, y).stopped_epoch_ == 1


def test_numpy_forward_pass_is_the_networks() -> None:
    """predict_proba runs on coefs_/intercepts_ in NumPy; it must be what the Keras network computes."""
    import keras

    X, y = make_classification(n_samples=120, n_features=12, n_informative=6, n_classes=3, random_state=1)
    # A learning rate that moves the biases far from their zero start, so a forgotten one shows.
    params = {"hidden_layers": 3, "units": 16, "dropout": 0.3, "epochs": 5, "learning_rate": 1e-2}
    clf = KerasMLPClassifier(**params, random_state=0).fit(X, y)
    network = keras.ops.convert_to_numpy(clf.model_(X.astype(np.float32), training=False))
    # Keras sums in float32 (TensorFlow's CPU kernels, in whatever order they block), predict_proba in
    # float64: each is within its dtype's forward-error bound of the exact network, whatever the CPU.
    tolerance = network_bound(clf, X, np.float32) + network_bound(clf, X, np.float64)
    assert np.all(np.abs(clf.predict_proba(X) - network) <= tolerance)
    assert [w.shape for w in clf.coefs_] == [(12, 16), (16, 16), (16, 16), (16, 3)]


def test_a_rows_probabilities_do_not_depend_on_its_batch_on_any_cpu() -> None:
    """The default network's shape (57 inputs, 5 x Dense(300), 10 classes): a row alone, in a small
    batch and in the whole batch goes through GEMM kernels that block differently, so the sums run in
    different orders. In float64 the two results are each within the forward-error bound of exact
    arithmetic, and that bound, which holds for any order (any CPU, any OpenBLAS kernel), is inside
    scikit-learn's tolerance for float64 output (check_methods_subset_invariance: rtol=1e-7,
    atol=1e-7); float32 sums, as predict_proba ran before, did not stay inside it on AVX-512 Haswell
    kernels."""
    X, y = make_classification(n_samples=300, n_features=57, n_informative=20, n_classes=10, random_state=0)
    clf = KerasMLPClassifier(epochs=1, validation_fraction=None, random_state=0).fit(X, y)
    assert [w.shape for w in clf.coefs_] == [(57, 300), *[(300, 300)] * 4, (300, 10)]
    whole = clf.predict_proba(X)
    alone = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(0, 300, 7)])
    sevens = np.vstack([clf.predict_proba(X[i : i + 7]) for i in range(0, 300, 7)])[::7]
    bound = 2 * network_bound(clf, X[::7], np.float64)  # two paths, each within the bound
    assert np.all(np.abs(alone - whole[::7]) <= bound)
    assert np.all(np.abs(sevens - whole[::7]) <= bound)
    assert np.all(bound <= 1e-7 + 1e-7 * whole[::7])  # scikit-learn's float64 tolerance, on any CPU


def test_weights_pickle_in_float32_and_load_in_float64(data) -> None:
    """The network's weights are float32: pickles keep them so (the size and layout of pickles written
    before predict_proba computed in float64, which therefore load the same way), and a loaded
    classifier holds them in float64 again, bit for bit; pickling leaves the live classifier alone."""
    X, y = data
    clf = KerasMLPClassifier(**TINY_NN, random_state=0).fit(X, y)
    assert {w.dtype for w in [*clf.coefs_, *clf.intercepts_]} == {np.dtype(np.float64)}
    state = clf.__getstate__()
    assert {w.dtype for w in [*state["coefs_"], *state["intercepts_"]]} == {np.dtype(np.float32)}
    assert "model_" in clf.__dict__ and clf.coefs_[0].dtype == np.float64  # the state was a copy
    loaded = pickle.loads(pickle.dumps(clf))
    assert {w.dtype for w in [*loaded.coefs_, *loaded.intercepts_]} == {np.dtype(np.float64)}
    for ours, theirs in zip(clf.coefs_ + clf.intercepts_, loaded.coefs_ + loaded.intercepts_, strict=True):
        assert_array_equal(ours, theirs)
    # Same weights, same process, same shapes and thread count: the same BLAS calls give the same bits.
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_log_variances_logs_only_the_variance_columns_by_name() -> None:
    import pandas as pd

    from genre.models import LogVariances

    frame = pd.DataFrame({"rms_mean": [0.5, 2.0], "rms_var": [1.0, 100.0], "tempo_var": [0.0, 1e-3]})
    step = LogVariances().fit(frame)
    out = step.transform(frame)
    assert_array_equal(out[:, 0], [0.5, 2.0])  # passed through untouched
    # NumPy's log and exp are within a few ulps (4 covers its SIMD loops and libm, which differ by CPU
    # and by array layout); exp(log x) also carries log's error, |log x| times larger, as a relative one.
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(out[:, 1], np.log([1.0, 100.0]), rtol=8 * eps, atol=8 * eps)
    assert np.isfinite(out).all()  # a zero variance is floored, not -inf
    np.testing.assert_allclose(
        step.inverse_transform(out)[:, 1], [1.0, 100.0], rtol=8 * eps * (1 + np.log(100.0))
    )
    with pytest.raises(ValueError, match="needs a DataFrame"):
        LogVariances().fit(frame.to_numpy())


def test_make_model_puts_the_transform_before_the_scaler() -> None:
    assert [name for name, _ in make_model("svm", transform="logvar").steps] == ["logvar", "scale", "svm"]
    assert [name for name, _ in make_model("svm").steps] == ["scale", "svm"]
    with pytest.raises(ConfigError, match="unknown transform 'box-cox'"):
        make_model("svm", transform="box-cox")


def test_svm_calibrates_on_small_classes_and_names_a_class_too_small() -> None:
    # Three rows of one class: five calibration folds are impossible, three are not.
    X, y = make_classification(60, 8, n_informative=5, n_classes=3, random_state=0)
    keep = np.flatnonzero(y != 2).tolist() + np.flatnonzero(y == 2)[:3].tolist()
    model = CalibratedSVC().fit(X[keep], y[keep])
    assert model.predict_proba(X).shape == (60, 3)
    assert len(model.calibrated_.calibrated_classifiers_) == 1  # one SVC, calibrated out of fold
    one = np.flatnonzero(y != 2).tolist() + [int(np.flatnonzero(y == 2)[0])]
    with pytest.raises(ValueError, match="class 2 has 1 sample"):
        CalibratedSVC().fit(X[one], y[one])


def test_the_stack_on_both_feature_sets_gives_each_base_its_own_columns() -> None:
    """57 GTZAN columns then 100 musicnn ones: knn, svm and nn see the first, svm_musicnn the second."""
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 40)
    gtzan = rng.normal(size=(120, 57))
    musicnn = rng.normal(size=(120, 100)) + (y == "b")[:, None] * 3.0  # only musicnn tells b apart
    X = pd.DataFrame(np.hstack([gtzan, musicnn]), columns=[*FEATURE_COLUMNS, *MUSICNN_COLUMNS])
    model = make_model("stacking", SMALL_STACK, features="both").fit(X, y)
    stack = model[-1]
    assert [name for name, _ in stack.estimators] == ["knn", "svm", "nn", "svm_musicnn"]
    assert {name: est.n_features_in_ for name, est in stack.named_estimators_.items()} == {
        "knn": 57,
        "svm": 57,
        "nn": 57,
        "svm_musicnn": 100,
    }
    proba = model.predict_proba(X)
    assert proba.shape == (120, 3) and model.score(X, y) > 0.6
    musicnn_only = stack.named_estimators_["svm_musicnn"].predict(model[:-1].transform(X)[:, 57:])
    b = list(stack.classes_).index("b")  # base models learn the stack's encoded labels
    assert (musicnn_only[y == "b"] == b).mean() > 0.9
    with pytest.raises(ConfigError, match=r"unknown features 'mfcc'"):
        make_model("svm", features="mfcc")
    assert (
        make_model("stacking", {"svm_musicnn__C": 0.5}, features="both")[-1].get_params()["svm_musicnn__C"]
        == 0.5
    )
    with pytest.raises(ConfigError, match=r"no parameter 'svm_musicnn__C'"):
        make_model("stacking", {"svm_musicnn__C": 0.5})


def test_a_stack_can_cut_its_inner_folds_as_runs_of_neighbouring_tracks() -> None:
    """``cv="contiguous"``: each inner fold holds whole runs of every class's tracks in name order."""
    rng = np.random.default_rng(1)
    tracks = np.repeat([f"{g}.{i:05d}" for g in ("jazz", "rock") for i in range(10)], 2)
    y = np.array([t.split(".")[0] for t in tracks])
    X = pd.DataFrame(rng.normal(size=(40, 57)) + (y == "rock")[:, None], columns=list(FEATURE_COLUMNS))
    model = make_model("stacking", {**SMALL_STACK, "cv": "contiguous"})
    stack = fit_model(model, Dataset.from_rows(X, y, tracks, source="t", windowed=True))[-1]
    for k, (_, test) in enumerate(stack.folds_):
        held = sorted(set(tracks[test]))
        assert held == [f"{g}.{i:05d}" for g in ("jazz", "rock") for i in (2 * k, 2 * k + 1)]
    assert "ContiguousTrackFolds" in model_params(model)["model.stacking__cv"]
