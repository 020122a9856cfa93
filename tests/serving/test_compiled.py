# ruff: noqa: N803, N806 - X and S are matrices of rows, as scikit-learn names them
"""The compiled model (``genre.serving.compiled``) gives scikit-learn's probabilities.

The two paths compute the same arithmetic, but not always in the same order: the k-NN's squared
distances are one matrix product here and a chunked Cython reduction in scikit-learn, and every matrix
product's summation order depends on the BLAS kernel, which depends on the operands' shapes, memory
layout and the CPU. So each comparison is held to a bound derived per row (``tests/rounding.py``) from
float64's unit roundoff ``u`` and the size of the sums -- two evaluations of a sum of ``n`` terms are at
most ``2 n u`` times the sum of the terms' magnitudes apart -- carried through the model by each step's
largest derivative: 1 for ReLU and for the softmax's and a normalisation's share of a move (no
probability moves more than twice its inputs' largest relative or absolute move), 1/3 for the
one-vs-rest transform ``x / (3 (|x| + 1))``, the meta-learner's absolute coefficients for its inputs.

Where the model is discontinuous -- which k training rows are nearest, which class wins an SVM pair --
no such bound holds, so the test first checks the rows are not within the bound of such an edge (on
real GTZAN rows none is that is not harmless). The elementwise steps (scaler, log-variances, level-free)
repeat scikit-learn's operations one for one and give its bits.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GroupShuffleSplit

from genre.data.schema import feature_columns
from genre.evaluation import fit_model
from genre.features import load_data
from genre.models import inverse_square, make_model
from genre.serving import GenreClassifier
from genre.serving.compiled import NotCompilableError, _transform, compile_model, compile_or_none
from genre.threads import single_threaded
from tests.conftest import GTZAN_30, GTZAN_MUSICNN, require
from tests.rounding import probability_bound

#: A stack that fits in seconds; two hidden layers, so the network's loop runs more than once.
SMALL_STACK = {"nn__hidden_layers": 2, "nn__units": 48, "nn__epochs": 30, "nn__patience": 5}


def _assert_same_probabilities(model, X: pd.DataFrame) -> float:
    """The compiled model's probabilities of ``X`` against the model's own, within the derived bound per
    row; returns the largest difference seen as a share of its bound."""
    with single_threaded():
        expected = model.predict_proba(X)
        compiled = compile_model(model, list(X.columns)).predict_proba(X.to_numpy(dtype=np.float64))
        bound = probability_bound(model, X)
    difference = np.abs(compiled - expected).max(axis=1)
    worst = int(np.argmax(difference / bound))
    assert (difference <= bound).all(), f"row {worst}: {difference[worst]:.3g} > bound {bound[worst]:.3g}"
    return float(difference[worst] / bound[worst])


# --- real GTZAN rows ------------------------------------------------------------------------------------


def _held_out(dataset, test_size: float = 0.2):
    """Training and held-out parts, whole track groups (exact repeats) on one side."""
    split = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=0)
    train, test = next(split.split(dataset.X, dataset.y, dataset.groups))
    return dataset.subset(train), dataset.subset(test)


@pytest.fixture(scope="module")
def gtzan():
    return _held_out(load_data(require(GTZAN_30)))


@pytest.mark.gtzan
def test_the_gtzan_stack_compiles_to_its_own_probabilities(gtzan):
    train, test = gtzan
    stack = fit_model(make_model("stacking", SMALL_STACK), train)
    assert _assert_same_probabilities(stack, test.X) <= 1
    classifier = GenreClassifier(stack)
    assert classifier.compiled is not None
    answer = classifier.predict(test.X, layout="columns")
    assert answer["genre"] == stack.predict(test.X).tolist()


@pytest.mark.gtzan
def test_a_stack_of_both_feature_sets_gives_each_base_its_columns():
    dataset = load_data(
        f"{require(GTZAN_30)},{require(GTZAN_MUSICNN)}", features=("gtzan57", "musicnn"), windows=False
    )
    train, test = _held_out(dataset)
    stack = fit_model(make_model("stacking", SMALL_STACK, features="both"), train)
    assert stack[-1].columns and list(test.X.columns) == feature_columns(("gtzan57", "musicnn"))
    _assert_same_probabilities(stack, test.X)


@pytest.mark.gtzan
@pytest.mark.parametrize(
    ("name", "params", "transform"),
    [
        ("knn", {"weights": inverse_square}, "logvar"),
        ("knn", {"weights": "uniform", "n_neighbors": 7}, "standard"),
        ("svm", {"calibration": "sigmoid"}, "levelfree"),
        ("svm", {"kernel": "poly", "degree": 2}, "logvar"),
        ("nn", {"hidden_layers": 1, "units": 32, "epochs": 20}, "standard"),
    ],
)
def test_single_models_and_transforms_on_gtzan(gtzan, name, params, transform):
    train, test = gtzan
    model = fit_model(make_model(name, params, transform=transform), train)
    _assert_same_probabilities(model, test.X)


@pytest.mark.gtzan
def test_a_two_genre_stack_keeps_one_probability_per_base(gtzan):
    """Binary: the stack's meta-learner sees one column per base, the SVM calibrates (-d, d)."""
    train, test = gtzan
    two = np.isin(train.y, ["jazz", "rock"]), np.isin(test.y, ["jazz", "rock"])
    stack = fit_model(make_model("stacking", SMALL_STACK), train.subset(np.flatnonzero(two[0])))
    _assert_same_probabilities(stack, test.X[two[1]])


# --- synthetic rows: the default suite --------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(
        n_samples=240, n_features=57, n_informative=20, n_classes=4, class_sep=2.0, random_state=0
    )
    columns = feature_columns(("gtzan57",))
    X[:, [columns.index(c) for c in columns if c.endswith("_var") or c == "rms_mean"]] **= 2  # positive
    return pd.DataFrame(X, columns=columns), np.array(["blues", "jazz", "metal", "rock"])[y]


def test_elementwise_steps_give_scikit_learns_bits(frame):
    X, y = frame
    for transform in ("standard", "logvar", "levelfree"):
        model = make_model("knn", transform=transform).fit(X, y)
        got = X.to_numpy()
        for name, step in model.steps[:-1]:
            got = _transform(step, name)(got)
        np.testing.assert_array_equal(got, model[:-1].transform(X))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_every_compiled_model_gives_scikit_learns_probabilities(frame, n_classes):
    X, y = frame
    keep = np.isin(y, ["blues", "jazz", "metal", "rock"][:n_classes])
    train, test = X[keep].iloc[::2], X[keep].iloc[1::2]
    for name in ("knn", "svm", "nn", "stacking"):
        params = SMALL_STACK if name == "stacking" else ({"epochs": 20} if name == "nn" else None)
        model = make_model(name, params).fit(train, y[keep][::2])
        _assert_same_probabilities(model, test)


def test_columns_in_another_order_are_put_in_the_models(frame):
    X, y = frame
    reversed_ = X[X.columns[::-1]]
    model = make_model("svm").fit(reversed_, y)
    compiled = compile_model(model, list(X.columns))
    with single_threaded():
        difference = np.abs(compiled.predict_proba(X.to_numpy()) - model.predict_proba(reversed_))
        assert (difference.max(axis=1) <= probability_bound(model, reversed_)).all()
    with pytest.raises(NotCompilableError, match="fitted on other columns"):
        compile_model(model, list(X.columns[:-1]) + ["tempo_x"])


def test_an_unknown_step_falls_back_to_scikit_learn_with_one_warning(frame, caplog):
    X, y = frame
    model = make_model("svm", {"calibration": "isotonic"}).fit(X, y)
    with caplog.at_level(logging.WARNING, logger="genre.serving.compiled"):
        classifier = GenreClassifier(model)
    assert classifier.compiled is None
    assert [record.getMessage() for record in caplog.records] == [
        "model not compiled, model.svm.calibrated_: calibration 'isotonic' is not compiled: it predicts "
        "through scikit-learn"
    ]
    # Equal bits: scikit-learn's own code on the same rows, in this process, one thread per pool.
    np.testing.assert_array_equal(classifier.predict_proba(X.head(5)), model.predict_proba(X.head(5)))


def test_a_knn_of_another_metric_is_not_compiled(frame):
    X, y = frame
    model = make_model("knn", {"p": 1}).fit(X, y)
    assert compile_or_none(model, list(X.columns)) is None
