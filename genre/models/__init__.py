"""The four genre classifiers as scikit-learn estimators: ``knn``, ``svm``, ``nn`` and ``stacking``.

``make_model(name, params)`` (``catalog``) returns an unfitted ``SingleThreadedPipeline(StandardScaler,
model)``. Scaling sits inside the pipeline so that every cross-validation fold fits its own scaler on its
own training rows; and because each piece is a plain estimator, ``cross_validate``, ``GridSearchCV`` and
``StackingClassifier`` compose the models unchanged. Hyperparameters are validated against
scikit-learn's own constraints before any training starts and a bad one raises
:class:`genre.errors.ConfigError`.

Three small estimators of our own fill what scikit-learn lacks here:

* :class:`KNNClassifier` -- ``KNeighborsClassifier`` that rejects ``n_neighbors`` larger than the
  training set at ``fit`` (scikit-learn only notices at ``predict``, after CV has spent the fit).
* :class:`CalibratedSVC` -- ``SVC`` with probabilities from temperature scaling, because
  ``SVC(probability=True)`` is deprecated in scikit-learn 1.9; it predicts through a :class:`VectorizedSVC`,
  whose decision function is a few NumPy matrix products instead of libsvm's row-by-row loop.
* :class:`KerasMLPClassifier` -- a Keras 3 MLP; scikeras reports ``is_classifier() is False`` on
  scikit-learn 1.9, which silently turns integer ``cv=`` into unstratified ``KFold``.

TensorFlow is imported only when a network is trained or its Keras model is asked for
(``keras_training``), so importing this package, using ``knn`` or ``svm``, or loading and predicting
with a fitted stack never pays its multi-second start-up.
"""

from genre.models.catalog import FEATURES, MODEL_NAMES, check_params, describe, make_model, stack_bases
from genre.models.keras_training import import_keras
from genre.models.neighbors import KNNClassifier, inverse_square
from genre.models.network import KerasMLPClassifier
from genre.models.pipeline import SingleThreadedPipeline
from genre.models.stacking import GroupedStackingClassifier
from genre.models.svm import CalibratedSVC, VectorizedSVC
from genre.models.transforms import TRANSFORMS, LevelFree, LogVariances

__all__ = [
    "FEATURES",
    "MODEL_NAMES",
    "TRANSFORMS",
    "CalibratedSVC",
    "GroupedStackingClassifier",
    "KNNClassifier",
    "KerasMLPClassifier",
    "LevelFree",
    "LogVariances",
    "SingleThreadedPipeline",
    "VectorizedSVC",
    "check_params",
    "describe",
    "import_keras",
    "inverse_square",
    "make_model",
    "stack_bases",
]
