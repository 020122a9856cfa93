# ruff: noqa: N803, N806 - X is scikit-learn's name for the rows
"""How far two evaluations of the same arithmetic may be apart: the bounds float comparisons are held to.

A number computed along two paths (a batch and a subset of it, two BLAS kernels or thread counts, two
processes, our code and a library's) is either pinned to the same bits, and the test says what pins it,
or held to a bound derived here from its dtype's unit roundoff ``u`` (eps / 2) and the size of its sums.
One rule underlies them all (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 3.1
and 4.2): a sum of ``n`` terms evaluated in any order, with or without FMA, is within ``n u`` times the
sum of the terms' magnitudes of the exact sum (``gamma_n = n u / (1 - n u)``, which is ``n u`` to a part
in 1e9 for the sums here), so two evaluations are at most ``2 n u sum|terms|`` apart. A BLAS kernel
chooses the order by the CPU it was written for and by the operands' shapes, so only such bounds hold
on every x86-64 CPU; a test that needs equal bits pins the kernel (one process), the thread count and
the shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

__all__ = ["network_bound", "probability_bound", "roundoff", "sums_apart", "svc_decision_bound"]


def roundoff(dtype: Any = np.float64) -> float:
    """The unit roundoff ``u`` of ``dtype``: half the distance from 1 to the next float."""
    return float(np.finfo(dtype).eps) / 2


def sums_apart(n: int, magnitude: Any, dtype: Any = np.float64) -> Any:
    """How far two evaluations of one sum of ``n`` terms in ``dtype`` may be, whatever their orders:
    ``2 n u`` times ``magnitude``, the sum of the terms' absolute values. A mean is the sum with one
    more rounding (the division): pass ``n + 1``."""
    return 2 * n * roundoff(dtype) * magnitude


def network_bound(clf: Any, X: np.ndarray, dtype: Any) -> np.ndarray:
    """How far each of a ``KerasMLPClassifier``'s probabilities can be from exact arithmetic on its
    weights when every sum of the forward pass runs in ``dtype`` in any order, on ``X`` rounded to
    float32 (the network's input, the same on every path). Two paths are at most the sum of their
    bounds apart.

    Each Dense layer's outputs are sums of ``n`` inputs times weights plus the bias (``n + 1`` terms,
    each within ``(n + 1) u sum|terms|``). The error a layer's input already carries is carried, in the
    2-norm, by the kernel's spectral norm, and ReLU is 1-Lipschitz and exact, so a row's logits are off
    by at most the sum over layers of each layer's rounding times the spectral norms after it. (The
    elementwise bound, through ``|W|``, grows as the layers' widths to the power of the depth and is
    useless for the default 5 x 300 network.) Softmax: shifting the logits by their maximum rounds each
    by ``u |shifted|``; a logit error of at most ``d`` moves ``p_i`` by at most ``p_i expm1(2 d)``; exp,
    the sum of ``n_classes`` terms and the division add ``(n_classes + 4) u`` relative (exp within two
    ulps, as NumPy's and Eigen's are).
    """
    u = roundoff(dtype)
    hidden = np.asarray(X, dtype=np.float32).astype(np.float64)
    error = np.zeros(len(hidden))  # per row: the 2-norm of the error in the layer's input
    for layer, (kernel, bias) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        terms = np.abs(hidden) @ np.abs(kernel) + np.abs(bias)
        rounding = (kernel.shape[0] + 1) * u * np.linalg.norm(terms, axis=1)
        error = np.linalg.norm(kernel, 2) * error + rounding
        logits = hidden @ kernel + bias
        hidden = np.maximum(logits, 0.0) if layer < len(clf.coefs_) - 1 else logits
    shifted = logits.max(axis=1, keepdims=True) - logits
    logit_error = error[:, None] + u * shifted.max(axis=1, keepdims=True)
    proba = np.exp(-shifted) / np.exp(-shifted).sum(axis=1, keepdims=True)
    return proba * (np.expm1(2 * logit_error) + (logits.shape[1] + 4) * u)


def svc_decision_bound(svc: Any, X: np.ndarray) -> np.ndarray:
    """How far two float64 evaluations of a fitted ``SVC``'s one-vs-one decision values may be apart
    (libsvm's loops against ``VectorizedSVC``'s matrix products), per row and pair.

    A dot product ``x.v`` of ``n`` features in two orders moves by at most ``2 n u |x| |v|`` (the sum of
    the products' magnitudes is at most ``|x| |v|``, Cauchy-Schwarz). The RBF kernel's squared distance
    ``|x|^2 + |v|^2 - 2 x.v`` is three such sums and two additions: ``2 (n + 2) u (|x| + |v|)^2``, and
    ``exp(-gamma d2)`` moves by ``gamma K`` times that. The polynomial kernel ``(gamma x.v + r)^d``
    moves by its derivative, ``d |gamma x.v + r|^(d-1) gamma``, times the dot's move, and the sigmoid
    ``tanh(gamma x.v + r)`` by at most ``gamma`` times it. Each kernel value also takes a few roundings
    of its own (exp, pow, tanh: ``8 u |K|`` covers them). A pair's value sums ``n_support`` kernel values
    times coefficients ``c``: it moves by ``|c|`` times the kernels' moves plus the sum's own reordering.
    """
    u = roundoff(np.float64)
    X = np.asarray(X, dtype=np.float64)
    vectors, coef = svc.support_vectors_, np.abs(svc.pair_coef_)
    n = X.shape[1]
    norms = np.linalg.norm(X, axis=1)[:, None], np.linalg.norm(vectors, axis=1)[None, :]
    dot_moves = 2 * n * u * norms[0] * norms[1]
    kernel = svc._kernel(X)
    if svc.kernel == "rbf":
        moves = svc._gamma * kernel * 2 * (n + 2) * u * (norms[0] + norms[1]) ** 2
    elif svc.kernel == "linear":
        moves = dot_moves
    elif svc.kernel == "poly":
        inner = np.abs(svc._gamma * (X @ vectors.T) + svc.coef0)
        moves = svc.degree * inner ** (svc.degree - 1) * svc._gamma * dot_moves
    else:
        assert svc.kernel == "sigmoid", svc.kernel
        moves = svc._gamma * dot_moves
    moves = moves + 8 * u * np.abs(kernel)
    return moves @ coef + sums_apart(len(vectors) + 1, np.abs(kernel) @ coef + np.abs(svc._intercept_))


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
    # of one class: the k-th weight then moves by the gap too. Across classes the answer would jump,
    # unless the two are copies of one feature row (GTZAN has two such copies under two genres): their
    # distances are then the same operations on the same values, a tie on every path, which both paths
    # must break alike (the comparison itself checks that: a different choice moves a whole weight).
    close = squared[:, k] - squared[:, k - 1] <= moved[:, k] + moved[:, k - 1]
    labels = knn._y[nearest]
    copies = (knn._fit_X[nearest[:, k]] == knn._fit_X[nearest[:, k - 1]]).all(axis=1)
    same = (labels[:, k] == labels[:, k - 1]) | copies
    assert same[close].all(), "a near tie between two classes"
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


def _bound(estimator: Any, S: np.ndarray) -> np.ndarray:
    """How far ``estimator``'s probabilities of ``S`` may move, per row (all classes), up to the last
    elementwise roundings."""
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


def probability_bound(estimator: Any, X: Any) -> np.ndarray:
    """How far two float64 evaluations of a fitted genre model's probabilities of ``X`` may be apart, per
    row (every class), whatever the order of their sums: the compiled model against scikit-learn's, one
    batch against another, one CPU's kernels against another's. A k-NN, a calibrated SVM, a network, a
    stack of them, each behind elementwise steps (scaler, log-variances, level-free) that give the same
    bits on both paths.

    Each estimator's sums are bounded as ``sums_apart`` says and carried through the model by each
    step's largest derivative: 1 for ReLU and for the softmax's and a normalisation's share of a move (no
    probability moves more than twice its inputs' largest relative or absolute move), 1/3 for the
    one-vs-rest transform ``x / (3 (|x| + 1))``, the meta-learner's absolute coefficients for its inputs.
    Where the model is discontinuous (which k training rows are nearest, which class wins an SVM pair)
    no such bound holds, so the bound first asserts the rows are not within it of such an edge.
    """
    return _bound(estimator, X) + ULPS
