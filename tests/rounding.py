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

__all__ = ["network_bound", "roundoff", "sums_apart", "svc_decision_bound"]


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
