# ruff: noqa: N803 - X is scikit-learn's name, part of the estimator API
"""The stacking ensemble's parts of our own."""

from __future__ import annotations

from typing import Any

from sklearn.linear_model import LogisticRegression

__all__ = ["MetaLogisticRegression"]


class MetaLogisticRegression(LogisticRegression):
    """The stack's meta-learner: ``LogisticRegression`` whose ``fit`` takes and ignores ``groups``.

    ``evaluation.fit_model`` routes the track groups to the networks inside a stack (metadata routing),
    and scikit-learn 1.9's ``StackingClassifier.fit`` hands every fit parameter, routed or not, to its
    final estimator as well, where a plain ``LogisticRegression`` refuses ``groups``. The model is
    ``LogisticRegression``'s, unchanged.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None, groups: Any = None) -> MetaLogisticRegression:
        """``LogisticRegression.fit``; ``groups`` is accepted for the stack's sake and not used."""
        return super().fit(X, y, sample_weight=sample_weight)
