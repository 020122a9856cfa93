"""Training: one MLflow run per model under one protocol, and the comparison of every model at once."""

from genre.training.runs import TrainResult, train_run

__all__ = ["TrainResult", "train_run"]
