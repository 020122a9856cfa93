# ruff: noqa: N803 - X is scikit-learn's name
"""TensorFlow for ``KerasMLPClassifier``: imported on first use, one compiled training loop per network
shape, and Adam as TensorFlow's fused kernel."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from genre.threads import configure_tensorflow

__all__ = ["Trainer", "import_keras", "trainer_for"]

#: Trainers by network shape, kept across fits: tracing and first running one costs about 0.2 s, and a
#: cross-validation, a stack or a search fits the same shape dozens of times. The oldest goes beyond 8.
_TRAINERS: OrderedDict[tuple[Any, ...], Trainer] = OrderedDict()
_TRAINERS_LOCK = threading.Lock()


def trainer_for(keras: Any, tf: Any, key: tuple[Any, ...], build: Callable[[], Any]) -> Trainer:
    """The cached ``Trainer`` for ``key`` (the network's shape, then the batch size); ``build`` makes the
    network if there is none yet."""
    with _TRAINERS_LOCK:
        if key not in _TRAINERS:
            _TRAINERS[key] = Trainer(keras, tf, build(), batch_size=key[-1])
        _TRAINERS.move_to_end(key)
        while len(_TRAINERS) > 8:
            _TRAINERS.popitem(last=False)
        return _TRAINERS[key]


class Trainer:
    """A working copy of one network shape, with compiled functions that train it for many epochs.

    ``train_epochs(orders, X, y)`` trains one epoch per row of ``orders`` (the row order of that epoch):
    an Adam step on each ``batch_size`` rows, and per epoch what ``model.fit`` logs, ``loss`` and
    ``accuracy`` averaged over the rows as each batch was trained on. ``train_epochs_stopping`` also
    scores the held-out ``(X_val, y_val)`` after each epoch and applies Keras' early stopping, keeping
    the best epoch's weights (``restore_best`` puts them back) and stopping ``patience`` epochs after the
    best; its state (best loss and epoch) carries from one call to the next. Each is one ``tf.function``
    for any number of epochs and rows (graph loops over epochs and batches), so Python runs once per
    call instead of several times per batch as in ``model.fit`` (its callbacks, its per-epoch iterators)
    or twice per epoch. The functions are traced once per shape, not per fit: a fit ``load``s its
    freshly initialised network's state into ``model``, trains, and ``store``s the result back, under
    ``lock``.
    """

    def __init__(self, keras: Any, tf: Any, model: Any, batch_size: int) -> None:
        self.tf, self.model, self.lock = tf, model, threading.Lock()
        variables = model.trainable_variables
        self._adam = _FusedAdam(tf, model.optimizer, variables)
        n_features = model.input_shape[-1]
        data = [tf.TensorSpec([None, n_features], tf.float32), tf.TensorSpec([None], tf.int32)]

        def scores(y_true: Any, proba: Any) -> tuple[Any, Any]:
            """Per-row cross-entropy and 0/1 accuracy, as the compiled loss and "accuracy" compute them."""
            loss = keras.losses.sparse_categorical_crossentropy(y_true, proba)
            return loss, keras.metrics.sparse_categorical_accuracy(y_true, proba)

        def train_epoch(order: Any, X: Any, y: Any) -> tuple[Any, Any]:
            """One epoch: an Adam step per ``batch_size`` rows of ``order``; mean loss and accuracy."""
            n_rows = tf.shape(order, out_type=tf.int64)[0]
            total_loss, total_correct = tf.constant(0.0), tf.constant(0.0)
            for start in tf.range(0, n_rows, batch_size):
                batch = order[start : start + batch_size]
                x_batch, y_batch = tf.gather(X, batch), tf.gather(y, batch)
                with tf.GradientTape() as tape:
                    loss, correct = scores(y_batch, model(x_batch, training=True))
                    mean_loss = tf.reduce_mean(loss)
                self._adam.apply(tape.gradient(mean_loss, variables))
                total_loss += tf.reduce_sum(loss)
                total_correct += tf.reduce_sum(correct)
            n_rows = tf.cast(n_rows, tf.float32)
            return total_loss / n_rows, total_correct / n_rows

        def score(X: Any, y: Any) -> tuple[Any, Any]:
            loss, correct = scores(y, model(X, training=False))
            return tf.reduce_mean(loss), tf.reduce_mean(correct)

        weights = model.weights
        self._best = [tf.Variable(tf.zeros_like(w), trainable=False) for w in weights]
        epochs = tf.TensorSpec([None, None], tf.int64)
        number, real, flag = (
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float64),
            tf.TensorSpec([], tf.bool),
        )

        def series() -> Any:
            return tf.TensorArray(tf.float32, size=0, dynamic_size=True)

        @tf.function(input_signature=[epochs, *data])
        def train_epochs(orders: Any, X: Any, y: Any) -> dict[str, Any]:
            losses, accuracies = series(), series()
            for i in tf.range(tf.shape(orders)[0]):
                loss, accuracy = train_epoch(orders[i], X, y)
                losses, accuracies = losses.write(i, loss), accuracies.write(i, accuracy)
            return {"loss": losses.stack(), "accuracy": accuracies.stack()}

        @tf.function(input_signature=[epochs, *data, *data, number, real, number, number, real, flag])
        def train_epochs_stopping(
            orders: Any,
            X: Any,
            y: Any,
            X_val: Any,
            y_val: Any,
            first: Any,
            best_loss: Any,
            best_epoch: Any,
            patience: Any,
            min_delta: Any,
            keep_best: Any,
        ) -> tuple[dict[str, Any], Any, Any, Any]:
            losses, accuracies, val_losses, val_accuracies = series(), series(), series(), series()
            stopped = tf.constant(False)
            for i in tf.range(tf.shape(orders)[0]):
                epoch = first + i
                loss, accuracy = train_epoch(orders[i], X, y)
                val_loss, val_accuracy = score(X_val, y_val)
                losses, accuracies = losses.write(i, loss), accuracies.write(i, accuracy)
                val_losses, val_accuracies = (
                    val_losses.write(i, val_loss),
                    val_accuracies.write(i, val_accuracy),
                )
                # Keras' EarlyStopping: improving means beating the best loss by more than min_delta
                # (in float64, as Python compared the float32 losses); the first epoch always improves,
                # even on a NaN loss; training stops after `patience` epochs without.
                loss = tf.cast(val_loss, tf.float64)
                if tf.logical_or(tf.equal(epoch, 1), loss + min_delta < best_loss):
                    best_loss, best_epoch = loss, epoch
                    if keep_best:
                        for kept, weight in zip(self._best, weights, strict=True):
                            kept.assign(weight)
                elif epoch - best_epoch >= patience:
                    stopped = tf.constant(True)
                    break
            history = {
                "loss": losses.stack(),
                "accuracy": accuracies.stack(),
                "val_loss": val_losses.stack(),
                "val_accuracy": val_accuracies.stack(),
            }
            return history, best_loss, best_epoch, stopped

        @tf.function
        def restore_best() -> None:
            for kept, weight in zip(self._best, weights, strict=True):
                weight.assign(kept)

        self.train_epochs, self.train_epochs_stopping, self.restore_best = (
            train_epochs,
            train_epochs_stopping,
            restore_best,
        )

    def load(self, model: Any) -> None:
        """Start from ``model``'s state (weights, dropout seeds, learning rate) with a fresh Adam."""
        for mine, theirs in zip(self.model.variables, model.variables, strict=True):
            mine.assign(theirs)
        self._adam.reset(float(model.optimizer.learning_rate.numpy()))

    def store(self, model: Any) -> None:
        """Copy the trained state, Adam's included, into ``model``."""
        for mine, theirs in zip(self.model.variables, model.variables, strict=True):
            theirs.assign(mine)
        self._adam.copy_to(model.optimizer, model.trainable_variables)


class _FusedAdam:
    """The model's ``keras.optimizers.Adam`` step, run as TensorFlow's fused ``ApplyAdam`` kernel per weight.

    Same arithmetic (``m += (g - m)(1 - beta_1)``, ``v += (g**2 - v)(1 - beta_2)``,
    ``w -= lr sqrt(1 - beta_2**t) / (1 - beta_1**t) m / (sqrt(v) + epsilon)``), same hyperparameters and the
    optimizer's own state (``iterations`` and its moment slots); ``copy_to`` hands that state to the fitted
    model's Adam, which then holds what ``model.fit`` would leave (it pickles without warnings and could
    train on). But one kernel per tensor instead of about ten ops traces 0.2 s faster and on its own runs
    twice as fast (14 ms instead of 31 ms for an epoch's 26 updates of the default network's 360k weights).
    """

    def __init__(self, tf: Any, optimizer: Any, variables: list[Any]) -> None:
        if type(optimizer).__name__ != "Adam" or optimizer.amsgrad:
            raise TypeError(f"_FusedAdam implements Adam without amsgrad, not {optimizer!r}")
        optimizer.build(variables)  # its slots must exist before tracing: a tf.function cannot create them
        self._tf, self._optimizer, self._variables = tf, optimizer, variables
        # Adam's moment slots, one per variable in ``variables``' order (Keras 3's attribute names).
        self._moments = list(zip(optimizer._momentums, optimizer._velocities, strict=True))
        self._beta1, self._beta2 = tf.constant(optimizer.beta_1), tf.constant(optimizer.beta_2)
        self._epsilon = tf.constant(optimizer.epsilon)

    def reset(self, learning_rate: float) -> None:
        """Back to step 0 with zero moments, at ``learning_rate``."""
        self._optimizer.iterations.assign(0)
        self._optimizer.learning_rate.assign(learning_rate)
        for m, v in self._moments:
            m.assign(self._tf.zeros_like(m))
            v.assign(self._tf.zeros_like(v))

    def copy_to(self, optimizer: Any, variables: list[Any]) -> None:
        """Give ``optimizer``, an Adam for ``variables`` (shaped as this one's), this one's state."""
        optimizer.build(variables)
        optimizer.iterations.assign(self._optimizer.iterations)
        theirs = zip(optimizer._momentums, optimizer._velocities, strict=True)
        for (m, v), (their_m, their_v) in zip(self._moments, theirs, strict=True):
            their_m.assign(m)
            their_v.assign(v)

    def apply(self, gradients: list[Any]) -> None:
        """One Adam step of every variable along its gradient (call inside a ``tf.function``)."""
        tf, optimizer = self._tf, self._optimizer
        optimizer.iterations.assign_add(1)
        step = tf.cast(optimizer.iterations, tf.float32)
        learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
        beta1_power, beta2_power = tf.pow(self._beta1, step), tf.pow(self._beta2, step)
        for variable, gradient, (m, v) in zip(self._variables, gradients, self._moments, strict=True):
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=beta1_power,
                beta2_power=beta2_power,
                lr=learning_rate,
                beta1=self._beta1,
                beta2=self._beta2,
                epsilon=self._epsilon,
                grad=gradient,
            )


#: Lines TensorFlow writes to stderr while loading, before its logging honours ``TF_CPP_MIN_LOG_LEVEL``.
_TF_STARTUP_NOISE: tuple[bytes, ...] = (
    b"All log messages before absl::InitializeLog() is called are written to STDERR",
    b"oneDNN custom operations are on",
)


def import_keras() -> tuple[Any, Any]:
    """Keras and TensorFlow, imported on first use (several seconds) rather than with this module.

    Code about to unpickle a fitted network (loading a logged model) calls it first, so the import
    happens here, quietly, rather than inside the unpickler.

    TensorFlow's start-up notes are kept off the terminal: its C++ logging is set to warnings-and-up hidden
    too (``TF_CPP_MIN_LOG_LEVEL=2``, unless already set), and the oneDNN note it prints before that
    setting takes effect is filtered out of the import's stderr; anything else printed there is kept.
    One thread at a time: the filter swaps the process's file descriptor 2.
    """
    with _IMPORT_LOCK:
        first_import = "tensorflow" not in sys.modules
        if first_import:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _stderr_without(_TF_STARTUP_NOISE) if first_import else nullcontext():
            import keras
            import tensorflow as tf

        if first_import:
            configure_tensorflow(tf)
    return keras, tf


_IMPORT_LOCK = threading.Lock()


@contextmanager
def _stderr_without(noise: tuple[bytes, ...]) -> Iterator[None]:
    """Capture file descriptor 2 during the block, then write back the lines containing none of ``noise``."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().splitlines(keepends=True)
            kept = b"".join(line for line in lines if not any(part in line for part in noise))
            if kept:
                os.write(2, kept)
