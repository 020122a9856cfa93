# ruff: noqa: N803, N806 - X and X_train are scikit-learn's names, part of the estimator API
"""The Keras multilayer perceptron as a scikit-learn classifier: ``KerasMLPClassifier``."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.utils import check_random_state

# scikit-learn's constraint checking has no public entry point in 1.9 (the version is pinned); it is the
# same code its own estimators run in ``fit``, so configurations fail with the messages users know.
from sklearn.utils._param_validation import (
    Interval,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from genre.models.keras_training import Trainer, import_keras, trainer_for

__all__ = ["KerasMLPClassifier"]


class KerasMLPClassifier(ClassifierMixin, BaseEstimator):
    """A Keras 3 multilayer perceptron as a scikit-learn classifier, with early stopping.

    ``n_features -> hidden_layers x Dense(units, relu) [+ Dropout] -> Dense(n_classes, softmax)``,
    trained with Adam on sparse categorical cross-entropy. ``fit`` holds out a stratified
    ``validation_fraction`` of its training rows (of its ``groups``, when given: whole tracks of windowed
    data) and stops when their loss has not improved by ``min_delta`` for ``patience`` epochs, keeping
    the best epoch's weights; the held-out rows are never trained on, so early stopping never looks at
    a CV fold's test rows.

    Parameters
    ----------
    hidden_layers : int, default=5
        Number of hidden layers (0 gives multinomial logistic regression).
    units : int, default=300
        Width of each hidden layer.
    dropout : float, default=0.0
        Dropout rate after each hidden layer, in [0, 1).
    learning_rate : float, default=1e-4
        Adam's learning rate.
    batch_size : int, default=32
        Rows per gradient step.
    epochs : int, default=300
        Upper bound on training epochs; early stopping usually ends training sooner.
    patience : int, default=20
        Epochs without improvement of the validation loss before training stops.
    min_delta : float, default=0.0
        Smallest decrease of the validation loss that counts as an improvement.
    validation_fraction : float or None, default=0.1
        Share of the training rows held out (stratified, and at least one row per class) for early
        stopping, in (0, 1). ``None`` trains on every row for exactly ``epochs`` epochs.
    restore_best_weights : bool, default=True
        Keep the weights of the epoch with the lowest validation loss rather than the last epoch's.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, weight initialisation, dropout and batch shuffling. With an int, two
        fits give identical weights and predictions.
    verbose : int, default=0
        0 is silent; otherwise ``fit`` prints one line per epoch with its losses and accuracies.
    epoch_callback : callable or None, default=None
        Called as ``epoch_callback(epoch, logs)`` after every epoch, ``epoch`` counting from 1 and
        ``logs`` mapping ``"loss"``, ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"`` to floats: the
        hook for per-epoch logging and for pruning a tuning trial (raise to abort ``fit``). Pass a
        function or closure: ``clone`` deep-copies other callables, such as bound methods' objects.

    Attributes
    ----------
    model_ : keras.Model
        The trained network.
    coefs_ : list of ndarray
        Its Dense layers' kernels, input to output (as in ``MLPClassifier``); ``predict_proba`` uses them.
        The network's float32 values, held as float64 (see Notes).
    intercepts_ : list of ndarray
        Its Dense layers' biases, float64 likewise.
    classes_ : ndarray of shape (n_classes,)
        Class labels; output unit ``i`` is ``classes_[i]``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    history_ : dict of str to list of float
        Per-epoch ``loss`` and ``accuracy`` on the training rows, and ``val_loss`` and ``val_accuracy``
        on the held-out rows when ``validation_fraction`` is set.
    stopped_epoch_ : int
        Number of epochs trained (``epochs`` unless early stopping ended training sooner).
    best_epoch_ : int
        The epoch (from 1) whose weights the model holds.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : the same idea without Keras.

    Notes
    -----
    ``fit`` trains with a loop of its own rather than ``model.fit``: each epoch is one compiled
    TensorFlow function over the shuffled batches, then the held-out rows, and Python only keeps the
    history and the early-stopping score. The loss, metrics, Adam update and stopping rule are Keras'
    (the network after ``fit`` matches ``model.fit``'s on the same batches to float rounding), in a
    third to 40% of the time (GTZAN, default network: 4.6 s -> 1.7 s per fit on 900 rows, 2.45 s ->
    0.72 s on 270): ``model.fit``'s per-epoch and per-batch Python overhead was most of its cost for
    networks this small.

    A pickled classifier keeps its network as Keras' own pickle, unpickled on first use of ``model_``:
    ``predict_proba`` needs only the weights, so loading a fitted stack to serve it does not import
    TensorFlow (about 4.4 s of a server's start-up here).

    The compiled functions are kept per network shape and batch size (the last 8), so the dozens of fits
    of a cross-validation or a stack trace them once; each fit loads its own freshly initialised network
    into them and takes the result back. ``random_state`` seeds each layer's initialiser and dropout,
    the validation split and a NumPy generator that shuffles the batches; no global generator (Python's,
    NumPy's, TensorFlow's or Keras') is used or changed. ``predict_proba`` runs the forward pass in NumPy
    on the trained weights rather than through ``model.predict`` (tens of milliseconds of set-up per
    call) or even the network itself (~7 ms per call): a served request is often a single row.

    The network trains and stores its weights in float32; ``predict_proba`` computes in float64, on
    those weights upcast once (exactly) when ``fit`` ends or a pickle loads, and on ``X`` rounded to
    float32 as the network's input is. The reason is batch invariance: BLAS multiplies a batch with
    kernels whose blocking, and so summation order, depend on the batch's size and on the CPU. In
    float32 that moved a row's probabilities between a batch and the row alone by more than the
    float64 they are returned in promises, and than scikit-learn's ``check_methods_subset_invariance``
    allows; in float64 they move only at float64 rounding, so a row gets the same probabilities,
    within float64's precision, whether it is served alone, in a batch or scored in cross-validation.
    They differ from ``model_``'s own float32 output at float32 rounding.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=100, n_classes=3, n_informative=4, random_state=0)
    >>> clf = KerasMLPClassifier(hidden_layers=1, units=8, epochs=3, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape, clf.stopped_epoch_
    ((2, 3), 3)
    """

    __metadata_request__fit = {"groups": True}  # scikit-learn's default request: routed groups

    _parameter_constraints: dict = {
        "hidden_layers": [Interval(Integral, 0, None, closed="left")],
        "units": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "min_delta": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "restore_best_weights": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "epoch_callback": [callable, None],
    }

    def __init__(
        self,
        *,
        hidden_layers: int = 5,
        units: int = 300,
        dropout: float = 0.0,
        learning_rate: float = 1e-4,
        batch_size: int = 32,
        epochs: int = 300,
        patience: int = 20,
        min_delta: float = 0.0,
        validation_fraction: float | None = 0.1,
        restore_best_weights: bool = True,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        epoch_callback: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.hidden_layers = hidden_layers
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.min_delta = min_delta
        self.validation_fraction = validation_fraction
        self.restore_best_weights = restore_best_weights
        self.random_state = random_state
        self.verbose = verbose
        self.epoch_callback = epoch_callback

    def fit(self, X: Any, y: Any, groups: Any = None) -> KerasMLPClassifier:
        """Build the network for ``X``'s width and ``y``'s classes, and train it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), optional
            Rows that must stay on one side of the early-stopping split, such as the 3-s windows of one
            track: the held-out rows are then about ``validation_fraction`` of the groups (stratified),
            so the validation loss is measured on tracks the network has not trained on. Without
            groups, or when every group is a single row (then holding out groups is holding out rows),
            rows are held out one by one. The network requests ``groups`` in scikit-learn's metadata
            routing, so pipelines, stacks, cross-validations and searches hand it the track groups.

        Raises
        ------
        ValueError
            If ``y`` has a single class, or a class has too few rows (or groups) to appear on both
            sides of the stratified validation split.
        """
        self._validate_params()
        self.__dict__.pop("_pickled_model", None)  # a network unpickled earlier is not this fit's
        X, y = validate_data(self, X, y, dtype=np.float32)
        if groups is not None:
            groups = np.asarray(groups)
            check_consistent_length(X, groups)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"KerasMLPClassifier needs at least 2 classes to train; y has one class, {self.classes_[0]!r}"
            )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        X_train, y_train, validation = self._split(X, y_index, groups, seed)

        keras, tf = import_keras()
        self.model_ = self._build(keras, X.shape[1], seed)
        shape = (X.shape[1], len(self.classes_), self.hidden_layers, self.units, self.dropout)
        trainer = trainer_for(keras, tf, (*shape, self.batch_size), lambda: self._build(keras, X.shape[1], 0))
        with trainer.lock:
            trainer.load(self.model_)
            self._train(trainer, (X_train, y_train), validation, seed)
            trainer.store(self.model_)
        dense = [layer.get_weights() for layer in self.model_.layers if layer.__class__.__name__ == "Dense"]
        self._set_weights([kernel for kernel, _ in dense], [bias for _, bias in dense])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (float64, rows summing to 1), columns in the order of ``classes_``.

        The forward pass runs in NumPy on the trained weights (``coefs_``, ``intercepts_``; dropout is
        off at inference), which is the network ``model_`` computes on ``X`` rounded to its float32
        input, but in float64 (see Notes): a row's probabilities do not depend, beyond float64 rounding,
        on the batch it comes in. Calling TensorFlow costs ~7 ms per call, most of a served one-row
        request, against ~0.1 ms here.
        """
        check_is_fitted(self)
        # The float32 rounding the network's input layer applies, then float64 from there on.
        hidden = validate_data(self, X, reset=False, dtype=np.float32).astype(np.float64)
        for kernel, bias in zip(self.coefs_[:-1], self.intercepts_[:-1], strict=True):
            hidden = hidden @ kernel  # bias and ReLU in place: a 1000-row batch allocates 3x less
            hidden += bias
            np.maximum(hidden, 0.0, out=hidden)
        logits = hidden @ self.coefs_[-1]
        logits += self.intercepts_[-1]
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits, out=logits)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        """The state to pickle, with the network as Keras' pickle of it (bytes), left as is when unused,
        and the weights in the network's float32: ``coefs_`` and ``intercepts_`` hold float32 values, so
        the cast is exact and a pickle has the size and layout of earlier versions' (which load too)."""
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        if "model_" in state:
            state["_pickled_model"] = pickle.dumps(state.pop("model_"))
        for name in ("coefs_", "intercepts_"):
            if name in state:
                state[name] = [weights.astype(np.float32) for weights in state[name]]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled classifier, its float32 weights held in float64 for ``predict_proba``."""
        super().__setstate__(state)
        if "coefs_" in state:
            self._set_weights(state["coefs_"], state["intercepts_"])

    def __getattr__(self, name: str) -> Any:
        """``model_`` after unpickling: the network, unpickled now (importing TensorFlow), then kept."""
        pickled = self.__dict__.get("_pickled_model")
        if name != "model_" or pickled is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        import_keras()  # quietly, before Keras' unpickler imports it
        self.model_ = pickle.loads(pickled)
        del self._pickled_model
        return self.model_

    def _set_weights(self, kernels: list[np.ndarray], biases: list[np.ndarray]) -> None:
        """Keep the network's float32 weights as ``coefs_`` and ``intercepts_`` in float64 (an exact cast,
        done once per fit or load) so ``predict_proba`` computes in float64 without converting them."""
        self.coefs_ = [np.asarray(kernel, dtype=np.float64) for kernel in kernels]
        self.intercepts_ = [np.asarray(bias, dtype=np.float64) for bias in biases]

    def _split(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, seed: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """Training rows, their labels, and the stratified held-out (X, y) for early stopping or None."""
        if self.validation_fraction is None:
            return X, y, None
        if groups is not None and len(np.unique(groups)) < len(groups):
            return self._split_groups(X, y, groups, seed)
        # At least one row per class, so a small CV fold still gets a stratified validation set.
        n_validation = max(math.ceil(self.validation_fraction * len(y)), len(self.classes_))
        try:
            X_train, X_val, y_train, y_val = train_test_split(
                X, y, test_size=n_validation, stratify=y, random_state=seed
            )
        except ValueError as error:
            raise ValueError(
                f"KerasMLPClassifier cannot hold out a stratified validation set from {len(y)} rows with "
                f"{len(self.classes_)} classes ({error}); use more rows or validation_fraction=None"
            ) from error
        return X_train, y_train, (X_val, y_val)

    def _split_groups(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``_split`` keeping each group on one side: a fold of stratified group k-fold, k = 1/fraction.

        A group may hold rows of several classes (GTZAN repeats one recording under two genres, and the
        data layer groups the copies so no split separates them); it still goes whole to one side.
        """
        groups_per_class = pd.Series(groups).groupby(y).nunique()
        if groups_per_class.min() < 2:
            raise ValueError(
                "KerasMLPClassifier cannot hold out whole groups for early stopping: class "
                f"{str(self.classes_[groups_per_class.idxmin()])!r} has a single group; every class needs "
                "2 or more groups"
            )
        # k = 1 / fraction folds hold out one fold; with fewer groups than k in a class (a few tracks per
        # genre, inside a stack's inner fold), as many folds as that class has groups.
        n_splits = max(2, min(round(1 / self.validation_fraction), int(groups_per_class.min())))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train, validation = next(splitter.split(X, y, groups))
        return X[train], y[train], (X[validation], y[validation])

    def _build(self, keras: Any, n_features: int, seed: int) -> Any:
        # Every random layer gets its own seed, drawn from `seed`: no global generator is touched (Keras'
        # set_random_seed would also clear TensorFlow's cache of compiled functions, costing ~0.1 s a fit).
        seeds = iter(int(s) for s in np.random.SeedSequence(seed).generate_state(2 * self.hidden_layers + 1))
        layers = [keras.Input(shape=(n_features,))]
        for _ in range(self.hidden_layers):
            init = keras.initializers.GlorotUniform(seed=next(seeds))
            layers.append(keras.layers.Dense(self.units, activation="relu", kernel_initializer=init))
            if self.dropout:
                layers.append(keras.layers.Dropout(self.dropout, seed=next(seeds)))
        init = keras.initializers.GlorotUniform(seed=next(seeds))
        layers.append(keras.layers.Dense(len(self.classes_), activation="softmax", kernel_initializer=init))
        model = keras.Sequential(layers)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def _train(
        self,
        trainer: Trainer,
        training: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None,
        seed: int,
    ) -> None:
        """Train ``trainer``'s network on a fresh shuffle of the rows each epoch, recording ``history_``;
        with held-out rows, stop and restore weights as Keras' ``EarlyStopping(monitor="val_loss")`` does.

        The epochs run inside TensorFlow, many per call (``Trainer``); the shuffles are drawn here from
        the fit's generator, epoch after epoch. With an ``epoch_callback`` or ``verbose``, calls hold
        ``_CALLBACK_EPOCHS`` epochs, and the callback hears of each epoch when its call returns.
        """
        tf = trainer.tf
        X, y = tf.constant(training[0]), tf.constant(training[1], dtype=tf.int32)
        rng = np.random.default_rng(seed)
        per_call = _CALLBACK_EPOCHS if self.epoch_callback is not None or self.verbose else self.epochs
        self.history_: dict[str, list[float]] = {}
        best_loss, best_epoch, stopped, epoch = math.inf, 0, False, 0
        while epoch < self.epochs and not stopped:
            count = min(per_call, self.epochs - epoch)
            orders = tf.constant(np.stack([rng.permutation(len(training[1])) for _ in range(count)]))
            if validation is None:
                history = trainer.train_epochs(orders, X, y)
            else:
                history, best_loss, best_epoch, stopped = trainer.train_epochs_stopping(
                    orders,
                    X,
                    y,
                    tf.constant(validation[0]),
                    tf.constant(validation[1], dtype=tf.int32),
                    tf.constant(epoch + 1, dtype=tf.int32),
                    tf.constant(best_loss, dtype=tf.float64),
                    tf.constant(best_epoch, dtype=tf.int32),
                    tf.constant(self.patience, dtype=tf.int32),
                    tf.constant(self.min_delta, dtype=tf.float64),
                    tf.constant(self.restore_best_weights),
                )
                best_loss, best_epoch, stopped = float(best_loss), int(best_epoch), bool(stopped)
            columns = {key: [float(value) for value in values.numpy()] for key, values in history.items()}
            for offset in range(len(columns["loss"])):
                logs = {key: values[offset] for key, values in columns.items()}
                for key, value in logs.items():
                    self.history_.setdefault(key, []).append(value)
                epoch += 1
                if self.verbose:
                    summary = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())
                    print(f"Epoch {epoch}/{self.epochs} - {summary}")
                if self.epoch_callback is not None:
                    self.epoch_callback(epoch, dict(logs))
        self.stopped_epoch_ = epoch
        self.best_epoch_ = epoch
        if validation is not None and self.restore_best_weights:
            trainer.restore_best()
            self.best_epoch_ = best_epoch


#: Epochs per TensorFlow call when a callback or verbose output wants to hear of them as they go.
_CALLBACK_EPOCHS = 10
