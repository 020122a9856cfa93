"""Training: one MLflow run per model under one protocol, and the comparison of every model at once."""

from genre.training.comparison import compare, comparison_note
from genre.training.runs import TrainResult, describe_run, run_name, train_run

__all__ = ["TrainResult", "compare", "comparison_note", "describe_run", "run_name", "train_run"]
