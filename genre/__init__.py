"""genre: MLflow-tracked music genre classification on GTZAN-style librosa features.

Importing the package is cheap: librosa, TensorFlow and MLflow are imported by the modules that
need them (``genre.features``, ``genre.models``, ``genre.jobs``), not here.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
