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
from scipy.special import expit
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
from tests.rounding import network_bound, roundoff, sums_apart, svc_decision_bound

#: A stack that fits in seconds; two hidden layers, so the network's loop runs more than once.
SMALL_STACK = {"nn__hidden_layers": 2, "nn__units": 48, "nn__epochs": 30, "nn__patience": 5}
#: The elementwise operations after the last sum (exp, a row's sum of a few probabilities, a division)
#: round their slightly different inputs each to its nearest float: a few ulps of a probability <= 1.
ULPS = 16 * roundoff()


def _knn_bound(knn, S: np.ndarray) -> np.ndarray:
    """Per row. A squared distance ``|y|^2 - 2 x.y + |x|^2`` is three sums of ``n_features`` terms and
    two additions, so it moves by at most ``2 (n_features + 2) u (|x| + |y|)^2``; a distance by that over
    ``2 d^2`` relatively, a ``1/d^p`` weight ``p`` times as much, and a class's share of the weights by at
    most twice the largest relative move of a weight."""
    distances, nearest = knn.kneighbors(S, n_neighbors=knn.n_neighbors + 1)
    spread = np.linalg.norm(S, axis=1)[:, None] + np.linalg.norm(knn._fit_X[nearest], axis=2)
    moved = sums_apart(S.shape[1] + 2, spread**2)  # how far each squared distance may move
    squared = distances**2
    k = knn.n_neighbors
    # The k-th and (k+1)-th nearest may swap when their squared distances are closer than their moves
    # (GTZAN repeats some tracks exactly: copies are equally far from every row). Harmless when they are
    # of one class: the k-th weight then moves by the gap too. Across classes the answer would jump.
    close = squared[:, k] - squared[:, k - 1] <= moved[:, k] + moved[:, k - 1]
    labels = knn._y[nearest]
    assert (labels[close, k] == labels[close, k - 1]).all(), "a near tie between two classes"
    moved[close, k - 1] += squared[close, k] - squared[close, k - 1] + moved[close, k]
    power = {"uniform": 0, "distance": 1}.get(knn.weights, 2)  # inverse_square: 1/d^2
    with np.errstate(divide="ignore"):
        return 2 * power * (moved[:, :k] / (2 * squared[:, :k])).max(axis=1)


def _svm_bound(svm, S: np.ndarray) -> np.ndarray:
    """Per row. A pair's decision value moves by at most ``svc_decision_bound``; a class's one-vs-rest
    value sums its ``n_classes - 1`` pairs' confidences (in the same order on both paths) and squashes
    them by ``x / (3 (|x| + 1))``: a third of those pairs' moves, while no pair's vote can flip
    (asserted). Temperature scaling's softmax moves a probability by at most twice ``beta`` times the
    largest move of a value; sigmoid calibrators as below."""
    (calibrated,) = svm.calibrated_.calibrated_classifiers_
    svc = calibrated.estimator
    pairs = svc_decision_bound(svc, S)
    n_classes = len(svc.classes_)
    if n_classes == 2:
        moved = pairs[:, 0]
    else:
        assert (np.abs(svc._decision_function(S)) > pairs).all(), "an SVM pair's vote could flip"
        classes = np.zeros((pairs.shape[1], n_classes))
        order = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
        for p, pair in enumerate(order):
            classes[p, list(pair)] = 1.0
        moved = (pairs @ classes).max(axis=1) / 3
    if calibrated.method == "temperature":
        return 2 * calibrated.calibrators[0].beta_ * moved
    slope = max(abs(c.a_) for c in calibrated.calibrators)
    if n_classes == 2:  # one sigmoid of slope a: p moves by at most a / 4 times the value's move
        return slope / 4 * moved
    # q_c = expit(-(a_c f_c + b_c)) each move by at most a / 4 times that; p_c = q_c / sum(q) then by
    # (1 + n_classes) times the largest move of a q over sum(q).
    values = svc.decision_function(S)
    q = expit(-(values * [c.a_ for c in calibrated.calibrators] + [c.b_ for c in calibrated.calibrators]))
    return (1 + n_classes) * slope / 4 * moved / q.sum(axis=1)


def _network_bound(network, S: np.ndarray) -> np.ndarray:
    """Per row: each path within ``network_bound`` of exact arithmetic in the dtype it computes in (its
    weights'), so the two within twice that."""
    return 2 * network_bound(network, S, np.result_type(*network.coefs_)).max(axis=1)


def _stack_bound(stack, S: np.ndarray) -> np.ndarray:
    """Per row: each base's bound on its columns of the meta-learner's input, carried through the
    logistic regression's absolute coefficients, plus the reordering of the regression's own sum."""
    names = [name for name, est in stack.estimators if est != "drop"]
    spans = stack.columns or {}
    inputs, moves = [], []
    for name, base in zip(names, stack.estimators_, strict=True):
        rows = S if name not in spans else S[:, spans[name][0] : spans[name][1]]
        proba = base.predict_proba(rows)
        width = proba.shape[1] - (1 if len(stack.classes_) == 2 else 0)
        inputs.append(proba[:, -width:])
        moves.append(np.repeat(_bound(base, rows)[:, None], width, axis=1))
    Z, dZ = np.hstack(inputs), np.hstack(moves)
    coef = np.abs(stack.final_estimator_.coef_)
    moved = dZ @ coef.T + sums_apart(
        Z.shape[1] + 1, np.abs(Z) @ coef.T + np.abs(stack.final_estimator_.intercept_)
    )
    return 2 * moved.max(axis=1)  # the softmax moves a probability by at most twice its logits' move


def _bound(estimator, S: np.ndarray) -> np.ndarray:
    """How far ``estimator``'s probabilities of ``S`` may move, per row (all classes)."""
    if hasattr(estimator, "steps"):
        for _, step in estimator.steps[:-1]:
            S = step.transform(S)  # elementwise: the same bits on both paths
        estimator = estimator.steps[-1][1]
    name = type(estimator).__name__
    if name == "KNNClassifier":
        return _knn_bound(estimator, S)
    if name == "CalibratedSVC":
        return _svm_bound(estimator, S)
    if name == "KerasMLPClassifier":
        return _network_bound(estimator, S)
    assert name == "GroupedStackingClassifier", name
    return _stack_bound(estimator, S)


def _assert_same_probabilities(model, X: pd.DataFrame) -> float:
    """The compiled model's probabilities of ``X`` against the model's own, within the derived bound per
    row; returns the largest difference seen as a share of its bound."""
    with single_threaded():
        expected = model.predict_proba(X)
        compiled = compile_model(model, list(X.columns)).predict_proba(X.to_numpy(dtype=np.float64))
        bound = _bound(model, X) + ULPS
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
        np.testing.assert_allclose(
            compiled.predict_proba(X.to_numpy()), model.predict_proba(reversed_), rtol=0, atol=1e-12
        )
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
    np.testing.assert_array_equal(classifier.predict_proba(X.head(5)), model.predict_proba(X.head(5)))


def test_a_knn_of_another_metric_is_not_compiled(frame):
    X, y = frame
    model = make_model("knn", {"p": 1}).fit(X, y)
    assert compile_or_none(model, list(X.columns)) is None
