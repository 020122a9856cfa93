"""The four models by name: ``make_model`` builds them with validated hyperparameters, ``check_params``
checks a configuration's parameters the same way."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

# scikit-learn's constraint checking has no public entry point in 1.9 (the version is pinned); it is the
# same code its own estimators run in ``fit``, so configurations fail with the messages users know.
from sklearn.utils._param_validation import (
    InvalidParameterError,
    validate_parameter_constraints,
)

from genre.data.schema import FEATURE_SETS, resolve_features
from genre.errors import ConfigError
from genre.models.folds import ContiguousTrackFolds
from genre.models.neighbors import KNNClassifier, inverse_square
from genre.models.network import KerasMLPClassifier
from genre.models.pipeline import SingleThreadedPipeline
from genre.models.stacking import GroupedStackingClassifier
from genre.models.svm import CalibratedSVC
from genre.models.transforms import TRANSFORMS, LevelFree, LogVariances

__all__ = ["FEATURES", "MODEL_NAMES", "check_params", "describe", "make_model", "stack_bases"]

#: The models ``make_model`` builds, in the order reports list them.
MODEL_NAMES: tuple[str, ...] = ("knn", "svm", "nn", "stacking")

#: What a model's ``features`` may say: one feature set (``gtzan57``, ``musicnn``) or ``both``.
FEATURES: tuple[str, ...] = ("gtzan57", "musicnn", "both")

#: What each model is, in a few words, for run descriptions and model cards.
_DESCRIPTIONS = {
    "knn": "k-nearest neighbours, distance-weighted",
    "svm": "RBF support vector machine with temperature-scaled probabilities",
    "nn": "Keras MLP, n_features -> 5 x Dense(300) -> n_classes, early stopping",
    "stacking": "base models stacked by a logistic regression on track-grouped out-of-fold probabilities",
}

#: The stack's base models for each ``features`` value, as (name, model, feature set). On both sets
#: the 57-feature models keep their names and an SVM of musicnn's tags joins them.
_STACK_BASES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "gtzan57": (("knn", "knn", "gtzan57"), ("svm", "svm", "gtzan57"), ("nn", "nn", "gtzan57")),
    "musicnn": (("knn", "knn", "musicnn"), ("svm", "svm", "musicnn"), ("nn", "nn", "musicnn")),
    "both": (
        ("knn", "knn", "gtzan57"),
        ("svm", "svm", "gtzan57"),
        ("nn", "nn", "gtzan57"),
        ("svm_musicnn", "svm", "musicnn"),
    ),
}


def describe(name: str, features: str = "gtzan57") -> str:
    """What model ``name`` on ``features`` is, in a few words."""
    what = _DESCRIPTIONS.get(name, name)
    if name == "stacking" and features in _STACK_BASES:
        bases = ", ".join(f"{model} on {sets}" for _, model, sets in _STACK_BASES[features])
        what = f"{bases}, stacked by a logistic regression on track-grouped out-of-fold probabilities"
    return f"{what} ({_FEATURE_WORDS.get(features, features)})"


_FEATURE_WORDS = {
    "gtzan57": "the 57 GTZAN features",
    "musicnn": "musicnn's 50 MSD tag probabilities, mean and std",
    "both": "the 57 GTZAN features and musicnn's tags",
}


def stack_bases(features: str = "gtzan57") -> list[tuple[str, str, str]]:
    """The stack's base models on ``features``: (name in the stack, model, feature set) each."""
    return list(_STACK_BASES[_checked_features(features)])


#: String aliases a configuration may use for callable parameter values, by (estimator class, parameter):
#: a YAML file cannot name a function. (Code, e.g. a GridSearchCV grid, passes ``inverse_square`` itself.)
_ALIASES: dict[tuple[type, str], dict[str, Any]] = {
    (KNNClassifier, "weights"): {"inverse_square": inverse_square},
    # The stack's inner folds as runs of neighbouring tracks (see ContiguousTrackFolds).
    (GroupedStackingClassifier, "cv"): {"contiguous": ContiguousTrackFolds(5)},
}


def _knn(random_state: int) -> KNNClassifier:
    # k=5 with 1/d weights: 0.711 on GTZAN (10-fold), within 0.01 of the best k in 3..15, and its
    # probabilities are smoother than k=1-3's for the stacking meta-learner.
    return KNNClassifier(n_neighbors=5, weights="distance")


def _svm(random_state: int) -> CalibratedSVC:
    return CalibratedSVC()


def _nn(random_state: int) -> KerasMLPClassifier:
    return KerasMLPClassifier(random_state=random_state)


def _stacking(random_state: int, features: str = "gtzan57") -> GroupedStackingClassifier:
    # The meta-learner must learn from out-of-fold probabilities that look like the ones it will combine
    # at test time. GTZAN's CSV is sorted by file name, and neighbouring files of a genre often share an
    # artist, so unshuffled inner folds (``cv=5``) hold out whole runs of artists: base models scored
    # 0.56-0.60 out of fold there against 0.71-0.76 on the shuffled outer folds, and the stack learnt from
    # those fell below the SVM (0.753 vs 0.762). Shuffled inner folds mirror the shuffled outer protocol
    # (0.69-0.74 out of fold) and the stack beats every base model. Given the track groups, the stack cuts
    # the same number of shuffled folds over tracks instead (GroupedStackingClassifier).
    # On both feature sets each base sees only its own set's columns (``columns``), in the canonical
    # order the pipeline's input has.
    bases = _STACK_BASES[features]
    layout = resolve_features(features)
    positions, start = {}, 0
    for name in layout:
        positions[name] = (start, start + len(FEATURE_SETS[name]))
        start += len(FEATURE_SETS[name])
    columns = {base: positions[sets] for base, _, sets in bases} if len(layout) > 1 else None
    return GroupedStackingClassifier(
        estimators=[(base, _BUILDERS[model](random_state)) for base, model, _ in bases],
        final_estimator=LogisticRegression(C=1.0, max_iter=1000),
        cv=StratifiedKFold(5, shuffle=True, random_state=random_state),
        stack_method="predict_proba",
        columns=columns,
    )


_BUILDERS: dict[str, Callable[[int], BaseEstimator]] = {
    "knn": _knn,
    "svm": _svm,
    "nn": _nn,
    "stacking": _stacking,
}


def make_model(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    random_state: int = 0,
    transform: str = "standard",
    features: str = "gtzan57",
) -> Pipeline:
    """An unfitted ``SingleThreadedPipeline([("scale", StandardScaler()), (name, estimator)])`` for one of
    ``MODEL_NAMES``.

    The scaler is part of the pipeline so each CV fold standardises with its own training rows' means
    and deviations. ``params`` override the project's defaults, in the estimator's own parameter names;
    each one is checked against scikit-learn's declared constraints here, so a typo or an impossible
    value fails in milliseconds rather than after training. (Constraints between parameters and the data,
    such as ``n_neighbors`` against the training rows, are checked at ``fit``.)

    ======== ==================== =====================================================================
    name     estimator            defaults (and parameter names for ``params``)
    ======== ==================== =====================================================================
    knn      KNNClassifier        ``n_neighbors=5, weights="distance", p=2``; ``weights`` may also be
                                  ``"uniform"`` or ``"inverse_square"`` (1/d**2, :func:`inverse_square`)
    svm      CalibratedSVC        ``C=3.0, kernel="rbf", gamma="scale", degree=3``, temperature-scaled
                                  probabilities
    nn       KerasMLPClassifier   5 x Dense(300, relu), Adam lr 1e-4, batch 32, up to 300 epochs,
                                  early stopping with patience 20 on 10% held out; ``random_state``
    stacking GroupedStacking...   ``knn``, ``svm``, ``nn`` as above, ``LogisticRegression(C=1.0)`` on
                                  their out-of-fold probabilities from 5 shuffled stratified folds
                                  (``cv``; ``"contiguous"``: runs of neighbouring tracks); base-model
                                  parameters as ``knn__n_neighbors``, ``svm__C``,
                                  ``nn__epochs``, the meta-learner's as ``final_estimator__C``
    ======== ==================== =====================================================================

    In the returned pipeline the same parameters carry the step name: ``knn__n_neighbors``, or
    ``stacking__svm__C``, for ``set_params`` and ``GridSearchCV`` grids.

    Parameters
    ----------
    name : {"knn", "svm", "nn", "stacking"}
        Which model.
    params : mapping of str to object, optional
        Hyperparameters to override, e.g. ``{"n_neighbors": 7}`` for ``knn``.
    random_state : int, default=0
        Seed of the network (alone or in the stack) and of the stack's inner folds, unless ``params``
        sets them; ``knn`` and ``svm`` are deterministic.
    transform : {"standard", "logvar", "levelfree"}, default="standard"
        ``"logvar"`` puts :class:`LogVariances` (step ``logvar``) before the scaler, ``"levelfree"``
        :class:`LevelFree` (step ``levelfree``: the same song louder or quieter gives the same row).
    features : {"gtzan57", "musicnn", "both"}, default="gtzan57"
        The feature sets the model is given (its ``X`` holds their columns in canonical order). A
        single model uses every column; the stack on ``both`` gives the 57-feature ``knn``, ``svm``
        and ``nn`` their columns and an SVM ``svm_musicnn`` (parameters ``svm_musicnn__C``...) the
        musicnn ones.

    Returns
    -------
    Pipeline
        Unfitted; ``pipeline[-1]`` is the estimator, named ``name``.

    Raises
    ------
    ConfigError
        Unknown model name or parameter, or a value the parameter cannot take.

    Examples
    --------
    >>> make_model("knn", {"n_neighbors": 7, "weights": "inverse_square"}).get_params()["knn__n_neighbors"]
    7
    >>> make_model("svm", {"C": -1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    genre.errors.ConfigError: svm model, parameter 'C': The 'C' parameter of CalibratedSVC must be a float...
    """
    if transform not in TRANSFORMS:
        raise ConfigError(f"unknown transform {transform!r}; expected one of {', '.join(TRANSFORMS)}")
    estimator = _build(name, random_state, features)
    estimator.set_params(**_checked_params(name, estimator, params or {}))
    steps = {"logvar": [("logvar", LogVariances())], "levelfree": [("levelfree", LevelFree())]}.get(
        transform, []
    )
    return SingleThreadedPipeline([*steps, ("scale", StandardScaler()), (name, estimator)])


def _checked_features(features: str) -> str:
    if features not in FEATURES:
        raise ConfigError(f"unknown features {features!r}; expected one of {', '.join(FEATURES)}")
    return features


def _build(name: str, random_state: int, features: str) -> BaseEstimator:
    """Model ``name`` with the project's defaults (the stack's bases depend on ``features``)."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    features = _checked_features(features)
    return _stacking(random_state, features) if name == "stacking" else _BUILDERS[name](random_state)


def check_params(name: str, params: Mapping[str, Any], features: str = "gtzan57") -> dict[str, Any]:
    """``params`` for model ``name``, validated as ``make_model`` does, with string aliases resolved.

    What a search hands to ``GridSearchCV`` or ``set_params``: a YAML grid can only say
    ``weights: inverse_square``, the estimator needs the function.

    Raises
    ------
    ConfigError
        Unknown model name or parameter, or a value the parameter cannot take.

    Examples
    --------
    >>> check_params("knn", {"weights": "inverse_square"})["weights"].__name__
    'inverse_square'
    """
    return _checked_params(name, _build(name, 0, features), params)


def _checked_params(name: str, estimator: BaseEstimator, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with aliases resolved, each validated against its owning estimator's constraints."""
    available = estimator.get_params(deep=True)
    checked = {}
    for key, value in params.items():
        if key not in available:
            close = difflib.get_close_matches(key, available, n=3)
            hint = (
                f"did you mean {' or '.join(map(repr, close))}?" if close else f"one of {sorted(available)}"
            )
            raise ConfigError(f"{name} model has no parameter {key!r}; {hint}")
        owner_key, _, local = key.rpartition("__")
        owner = available[owner_key] if owner_key else estimator
        if isinstance(value, str):
            value = _ALIASES.get((type(owner), local), {}).get(value, value)
        constraints = getattr(owner, "_parameter_constraints", {})
        if local in constraints:
            try:
                validate_parameter_constraints(
                    {local: constraints[local]}, {local: value}, caller_name=type(owner).__name__
                )
            except InvalidParameterError as error:
                raise ConfigError(f"{name} model, parameter {key!r}: {error}") from error
        checked[key] = value
    return checked
