# ruff: noqa: N803, N806 - X is scikit-learn's name for a matrix of rows
"""A fitted genre model compiled into plain NumPy: what the served classifier evaluates per request.

scikit-learn checks its input in every step: the pipeline, the stack, each base model and the
calibrator validate, convert and copy the same rows again, which was most of a one-row request's time.
A served request is validated once, at the edge (``GenreClassifier`` makes the 400s), so after that a
model is arithmetic on its fitted parameters. ``compile_model`` reads them once, when the model is
loaded, and returns a ``CompiledModel`` whose ``predict_proba`` takes the checked float64 rows and runs
only that arithmetic.

Each step repeats its estimator's own ``transform`` or ``predict_proba`` operation by operation, so it
computes scikit-learn's numbers in scikit-learn's order, except the k-NN's squared distances:
scikit-learn sums them in a Cython reduction over chunks of its own, here they are one matrix product,
so they (and whatever is computed from the k-NN's probabilities) may differ in the last bits.
tests/serving/test_compiled.py holds the two paths to a tolerance derived from that.

Compiled (exact classes: a subclass may predict differently):

* ``Pipeline`` and ``SingleThreadedPipeline`` of the steps below;
* ``StandardScaler``, ``LogVariances`` and ``LevelFree``;
* ``KNeighborsClassifier`` and ``KNNClassifier`` with the Euclidean metric (``p=2``) and uniform,
  ``distance`` or callable weights (``inverse_square``);
* ``CalibratedSVC``: its ``VectorizedSVC``'s kernel expansion and one-vs-rest decision values, and its
  temperature or sigmoid calibration;
* ``KerasMLPClassifier``: its dense layers, in the precision its ``predict_proba`` computes in;
* ``LogisticRegression``;
* ``StackingClassifier`` and ``GroupedStackingClassifier`` stacking these on ``predict_proba``, each
  base on its own columns.

Anything else raises ``NotCompilableError`` naming the step; ``compile_or_none`` logs that once, and the
model is then served through scikit-learn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from genre.models import (
    CalibratedSVC,
    GroupedStackingClassifier,
    KerasMLPClassifier,
    KNNClassifier,
    LevelFree,
    LogVariances,
    SingleThreadedPipeline,
    VectorizedSVC,
)

__all__ = ["CompiledModel", "NotCompilableError", "compile_model", "compile_or_none"]

log = logging.getLogger(__name__)

#: One compiled step: rows in, rows (a transform) or class probabilities (a classifier) out. A step never
#: writes into the array it is given.
Step = Callable[[np.ndarray], np.ndarray]


class NotCompilableError(Exception):
    """A part of a model the compiler does not know; ``step`` is its path (``model.stacking.svm``)."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        super().__init__(f"{step}: {reason}")


class CompiledModel:
    """A fitted model's ``predict_proba`` as NumPy arithmetic on its fitted parameters.

    Parameters
    ----------
    proba : callable
        The compiled model: float64 rows of the served columns, in their order, to probabilities.
    """

    def __init__(self, proba: Step) -> None:
        self._proba = proba

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (float64, columns in the model's ``classes_`` order) of checked rows: a
        float64 array of finite values, one column per served feature, in the order given at compile."""
        return self._proba(X)


def compile_model(estimator: Any, columns: Sequence[str] | None = None) -> CompiledModel:
    """Compile a fitted classifier that is served on ``columns``, in that order (default: the columns it
    was fitted on, in their order).

    Raises
    ------
    NotCompilableError
        A step the compiler does not know, or a model fitted on other columns than ``columns``.
    """
    proba = _classifier(estimator, "model")
    order = None if columns is None else _column_order(estimator, list(columns))
    if order is not None:
        proba = _chain([lambda X: X[:, order], proba])
    return CompiledModel(proba)


def compile_or_none(estimator: Any, columns: Sequence[str]) -> CompiledModel | None:
    """``compile_model``, or None and one warning naming the step when the model is not compilable."""
    try:
        return compile_model(estimator, columns)
    except NotCompilableError as exc:
        log.warning("model not compiled, %s: it predicts through scikit-learn", exc)
        return None


def _column_order(estimator: Any, columns: list[str]) -> np.ndarray | None:
    """Where the estimator's columns sit among ``columns``; None when they are ``columns`` as they are."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        if getattr(estimator, "n_features_in_", len(columns)) != len(columns):
            raise NotCompilableError(
                "model", f"fitted on {estimator.n_features_in_} columns, served on {len(columns)}"
            )
        return None
    names = [str(name) for name in names]
    if names == columns:
        return None
    if sorted(names) != sorted(columns):
        raise NotCompilableError("model", "fitted on other columns than the served ones")
    return np.array([columns.index(name) for name in names])


def _chain(steps: list[Step]) -> Step:
    if len(steps) == 1:
        return steps[0]

    def run(X: np.ndarray) -> np.ndarray:
        for step in steps:
            X = step(X)
        return X

    return run


def _classifier(estimator: Any, step: str) -> Step:
    compiler = _CLASSIFIERS.get(type(estimator))
    if compiler is None:
        raise NotCompilableError(step, f"{type(estimator).__name__} is not a classifier the compiler knows")
    return compiler(estimator, step)


def _transform(estimator: Any, step: str) -> Step:
    compiler = _TRANSFORMS.get(type(estimator))
    if compiler is None:
        raise NotCompilableError(step, f"{type(estimator).__name__} is not a transform the compiler knows")
    return compiler(estimator, step)


def _pipeline(pipeline: Pipeline, step: str) -> Step:
    *transforms, (name, final) = pipeline.steps
    steps = [_transform(t, f"{step}.{n}") for n, t in transforms if t is not None and t != "passthrough"]
    return _chain([*steps, _classifier(final, f"{step}.{name}")])


def _standard_scaler(scaler: StandardScaler, step: str) -> Step:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def transform(X: np.ndarray) -> np.ndarray:
        # scikit-learn's ``X -= mean_; X /= scale_`` on a copy: the same operations.
        if mean is not None:
            X = X - mean
            if scale is not None:
                X /= scale
            return X
        return X / scale if scale is not None else X

    return transform


def _log_variances(logvar: LogVariances, step: str) -> Step:
    columns, floor = logvar.columns_, logvar.floor

    def transform(X: np.ndarray) -> np.ndarray:
        X = X.copy()
        X[:, columns] = np.log(np.maximum(X[:, columns], floor))
        return X

    return transform


def _level_free(levelfree: LevelFree, step: str) -> Step:
    level, means, variances = levelfree.level_, levelfree.means_, levelfree.variances_
    energy, floor, db_per_decade = levelfree.energy_, levelfree.floor, levelfree._DB_PER_DECADE

    def transform(X: np.ndarray) -> np.ndarray:
        X = X.copy()
        gain = np.maximum(X[:, level], floor)
        X[:, means] /= gain[:, None]
        X[:, variances] /= (gain**2)[:, None]
        X[:, energy] -= db_per_decade * np.log10(gain)
        X[:, level] = 1.0
        return X

    return transform


def _neighbors(knn: KNeighborsClassifier, step: str) -> Step:
    """k-NN probabilities: distances by one matrix product, the k nearest by k passes of ``argmin``.

    As scikit-learn's brute-force search does, neighbours are ranked by ``|y|^2 - 2 x.y`` (the query's
    own ``|x|^2`` is the same for all of them) and among exactly equal distances the earlier training
    row wins (``argmin`` returns the first minimum; scikit-learn's heap keeps the first one pushed).
    k passes over a batch's distances cost less than a partial sort for the k (1-30) configurations use.
    """
    weights = knn.weights
    fitted = knn._fit_X
    if (
        knn.effective_metric_ != "euclidean"
        or knn.effective_metric_params_
        or not isinstance(fitted, np.ndarray)
        or fitted.dtype != np.float64
    ):
        raise NotCompilableError(
            step, f"{type(knn).__name__} with metric={knn.metric!r}, p={knn.p}: only Euclidean on float64"
        )
    if knn.outputs_2d_ or not (weights in ("uniform", "distance") or callable(weights)):
        raise NotCompilableError(step, f"{type(knn).__name__} with several outputs or weights={weights!r}")
    k, labels, n_classes = knn.n_neighbors, knn._y, len(knn.classes_)
    neg_twice = -2.0 * fitted.T  # exact: a power of two
    norms = np.einsum("ij,ij->i", fitted, fitted)

    def proba(X: np.ndarray) -> np.ndarray:
        n = len(X)
        rows = np.arange(n)
        ranking = X @ neg_twice
        ranking += norms
        nearest = np.empty((n, k), dtype=np.intp)
        chosen = np.empty((n, k))
        for i in range(k):
            nearest[:, i] = found = ranking.argmin(axis=1)
            chosen[:, i] = ranking[rows, found]
            ranking[rows, found] = np.inf
        chosen += np.einsum("ij,ij->i", X, X)[:, None]
        distances = np.sqrt(np.maximum(chosen, 0.0, out=chosen), out=chosen)
        if weights == "uniform":
            votes = np.ones((n, k))
        elif weights == "distance":  # scikit-learn's _get_weights: a query on training rows takes theirs
            with np.errstate(divide="ignore"):
                votes = 1.0 / distances
            exact = np.isinf(votes)
            exact_rows = exact.any(axis=1)
            votes[exact_rows] = exact[exact_rows]
        else:
            votes = weights(distances)
        if (votes == 0).all(axis=1).any():
            raise ValueError(f"{step}: all neighbours of a row got zero weights")
        # Each class's weights summed neighbour by neighbour, nearest first, as scikit-learn's loop does.
        cells = (rows[:, None] * n_classes + labels[nearest]).ravel()
        summed = np.bincount(cells, weights=votes.ravel(), minlength=n * n_classes).reshape(n, n_classes)
        summed /= summed.sum(axis=1)[:, np.newaxis]
        return summed

    return proba


def _calibrated_svc(model: CalibratedSVC, step: str) -> Step:
    """``CalibratedClassifierCV.predict_proba``: the mean of its calibrated SVCs' probabilities."""
    parts = [
        _calibrated_part(part, len(model.classes_), f"{step}.calibrated_")
        for part in model.calibrated_.calibrated_classifiers_
    ]

    def proba(X: np.ndarray) -> np.ndarray:
        mean = np.zeros((len(X), len(model.classes_)))
        for part in parts:
            mean += part(X)
        mean /= len(parts)
        return mean

    return proba


def _calibrated_part(calibrated: Any, n_classes: int, step: str) -> Step:
    """One ``_CalibratedClassifier``: decision values of the SVC, then the calibrator's probabilities."""
    svc = calibrated.estimator
    if type(svc) is SVC:
        svc = VectorizedSVC.from_svc(svc)
    if type(svc) is not VectorizedSVC or not svc._vectorized or len(svc.classes_) != n_classes:
        raise NotCompilableError(step, f"{type(svc).__name__} with a {svc.kernel!r} kernel is not compiled")
    if n_classes > 2 and svc.decision_function_shape != "ovr":
        raise NotCompilableError(step, "an SVC with decision_function_shape='ovo' is not compiled")
    decision = _svc_decision(svc)
    if calibrated.method == "temperature":
        beta = calibrated.calibrators[0].beta_

        def proba(X: np.ndarray) -> np.ndarray:
            values = decision(X)
            # sklearn.calibration._convert_to_logits: (-d, d) for two classes; one-vs-rest values as
            # they are (they never look like probabilities: their rows sum to about n(n-1)/2 >= 3).
            logits = np.stack([-values, values], axis=1) if values.ndim == 1 else values
            return _clip_above_one(_softmax(beta * logits))

        return proba
    if calibrated.method == "sigmoid":
        slopes = np.array([c.a_ for c in calibrated.calibrators])
        offsets = np.array([c.b_ for c in calibrated.calibrators])

        def proba(X: np.ndarray) -> np.ndarray:
            values = decision(X)
            if values.ndim == 1:
                positive = expit(-(slopes[0] * values + offsets[0]))
                return _clip_above_one(np.stack([1.0 - positive, positive], axis=1))
            probabilities = expit(-(slopes * values + offsets))
            total = probabilities.sum(axis=1)[:, np.newaxis]
            uniform = np.full_like(probabilities, 1 / n_classes)
            return _clip_above_one(np.divide(probabilities, total, out=uniform, where=total != 0))

        return proba
    raise NotCompilableError(step, f"calibration {calibrated.method!r} is not compiled")


def _svc_decision(svc: VectorizedSVC) -> Step:
    """``SVC.decision_function`` as ``VectorizedSVC`` computes it, one-vs-rest for more than two classes.

    scikit-learn's ``_ovr_decision_function`` adds each pair's confidence into its two classes, pair by
    pair in order; every class is in n - 1 pairs, so here those are n - 1 additions of whole columns, in
    the same order (``_pairs``): the same sums.
    """
    vectors, gamma, kernel = svc.support_vectors_, svc._gamma, svc.kernel
    vector_norms = (vectors**2).sum(axis=1)[None, :]
    pair_coef, intercept = svc.pair_coef_, svc._intercept_
    n_classes = len(svc.classes_)
    pairs, signs, firsts = _pairs(n_classes)

    def gram(X: np.ndarray) -> np.ndarray:
        products = X @ vectors.T
        if kernel == "rbf":  # VectorizedSVC._kernel's order: (|x|^2 + |v|^2) - 2 x.v, clipped at 0
            squared = (X**2).sum(axis=1)[:, None] + vector_norms
            products *= 2.0
            squared -= products
            np.maximum(squared, 0.0, out=squared)
            squared *= -gamma
            return np.exp(squared, out=squared)
        if kernel == "linear":
            return products
        if kernel == "poly":
            return (gamma * products + svc.coef0) ** svc.degree
        return np.tanh(gamma * products + svc.coef0)

    def decision(X: np.ndarray) -> np.ndarray:
        values = gram(X) @ pair_coef + intercept
        if n_classes == 2:
            return -values.ravel()
        if svc.decision_function_shape != "ovr":
            return values
        confidences = (-values)[:, pairs] * signs  # (rows, classes, n - 1): each class's pairs, in order
        summed = np.zeros(values.shape[:1] + (n_classes,))
        for t in range(n_classes - 1):
            summed += confidences[:, :, t]
        # A class wins its pair when the pair's decision value is >= 0 and it is the first of the two.
        votes = ((values >= 0)[:, pairs] == firsts).sum(axis=2, dtype=np.float64)
        return votes + summed / (3 * (np.abs(summed) + 1))

    return decision


def _pairs(n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each class, its one-vs-one pairs in libsvm's order, the sign its confidence takes in each
    (-1 as the pair's first class, +1 as the second) and whether it is the first."""
    order = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    pairs = [[p for p, pair in enumerate(order) if c in pair] for c in range(n_classes)]
    firsts = np.array([[order[p][0] == c for p in pairs[c]] for c in range(n_classes)])
    return np.array(pairs, dtype=np.intp).reshape(n_classes, -1), np.where(firsts, -1.0, 1.0), firsts


def _network(network: KerasMLPClassifier, step: str) -> Step:
    """The MLP's forward pass as ``KerasMLPClassifier.predict_proba`` computes it: the input rounded to
    float32 as the network's is, the layers in the dtype of its weights, softmax in float64."""
    kernels, biases = network.coefs_, network.intercepts_
    dtype = np.result_type(*kernels)

    def proba(X: np.ndarray) -> np.ndarray:
        hidden = X.astype(np.float32).astype(dtype, copy=False)
        for kernel, bias in zip(kernels[:-1], biases[:-1], strict=True):
            hidden = hidden @ kernel
            hidden += bias
            np.maximum(hidden, 0.0, out=hidden)
        logits = hidden @ kernels[-1]
        logits += biases[-1]
        logits = logits.astype(np.float64, copy=False)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    return proba


def _logistic(model: LogisticRegression, step: str) -> Step:
    coef_t, intercept = model.coef_.T, model.intercept_
    if len(model.classes_) > 2:
        return lambda X: _softmax(X @ coef_t + intercept)

    def binary(X: np.ndarray) -> np.ndarray:
        positive = expit((X @ coef_t + intercept).ravel())
        return np.stack([1 - positive, positive], axis=1)

    return binary


def _stacking(stack: StackingClassifier, step: str) -> Step:
    """The bases' probabilities side by side (each on its columns), then the meta-learner's."""
    if stack.passthrough or any(method != "predict_proba" for method in stack.stack_method_):
        raise NotCompilableError(step, "a stack with passthrough or stacked on other than predict_proba")
    names = [name for name, est in stack.estimators if est != "drop"]
    spans = getattr(stack, "columns", None) or {}
    drop_first = len(stack.classes_) == 2  # scikit-learn keeps one column of two collinear ones
    bases = [
        (_classifier(est, f"{step}.{name}"), spans.get(name))
        for name, est in zip(names, stack.estimators_, strict=True)
    ]
    final = _classifier(stack.final_estimator_, f"{step}.final_estimator_")

    def proba(X: np.ndarray) -> np.ndarray:
        stacked = []
        for base, span in bases:
            predicted = base(X if span is None else np.ascontiguousarray(X[:, span[0] : span[1]]))
            stacked.append(predicted[:, 1:] if drop_first else predicted)
        return final(np.hstack(stacked))

    return proba


def _softmax(X: np.ndarray) -> np.ndarray:
    """``sklearn.utils.extmath.softmax``, in place."""
    X -= X.max(axis=1).reshape(-1, 1)
    np.exp(X, out=X)
    X /= X.sum(axis=1).reshape(-1, 1)
    return X


def _clip_above_one(proba: np.ndarray) -> np.ndarray:
    """What ``_CalibratedClassifier.predict_proba`` does last: a probability within 1e-5 above 1 is 1."""
    proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
    return proba


_TRANSFORMS: dict[type, Callable[[Any, str], Step]] = {
    StandardScaler: _standard_scaler,
    LogVariances: _log_variances,
    LevelFree: _level_free,
}
_CLASSIFIERS: dict[type, Callable[[Any, str], Step]] = {
    Pipeline: _pipeline,
    SingleThreadedPipeline: _pipeline,
    KNeighborsClassifier: _neighbors,
    KNNClassifier: _neighbors,
    CalibratedSVC: _calibrated_svc,
    KerasMLPClassifier: _network,
    LogisticRegression: _logistic,
    StackingClassifier: _stacking,
    GroupedStackingClassifier: _stacking,
}
