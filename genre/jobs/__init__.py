"""The jobs behind the ``MLproject`` entry points: one function per entry point.

Each job takes plain Python values (the CLI parses them), does its work through the layers below, and
records it in MLflow. Nothing here needs ``mlflow run``: tests call these functions directly against a
temporary tracking store. The modules are not imported here, so ``genre extract`` (``jobs.extract``)
starts without MLflow, Optuna or TensorFlow:

* ``extract`` -- ``extract_features``;
* ``train`` -- ``knn``, ``svm``, ``nn``, ``stacking``, ``main`` and ``tune_stacking``;
* ``tune`` -- ``tune_grid`` and ``tune_optuna``;
* ``score`` -- ``score`` (Spark).
"""
