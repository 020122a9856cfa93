"""Where a prediction's time goes, in-process: each base model, the stack, the served wrapper, and the
scoring server's own steps around it.

Fits the default stack on ``--data`` (the embedded data, or a feature CSV such as GTZAN's), then times
``predict_proba`` of each base model (on scaled rows) through scikit-learn and compiled
(``genre.serving.compiled``), of the whole stack through scikit-learn with the native thread pools at
their defaults and at one thread each, compiled (what ``GenreClassifier`` runs), ``GenreClassifier.predict``
(what the served model runs: the request's checks, the model, the answer), and the steps
``mlflow models serve`` adds for a request of the same rows, called as its scoring server calls them:
parsing a JSON ``dataframe_split`` body, a CSV body and a Parquet body, enforcing the signature, and
encoding the answer. Means of ``--repeats`` calls after one warm-up.
Prints JSON, then a markdown table. The serving benchmark (``serving_speed.py``) measures the same through
the HTTP server.

    python benchmarks/predict_profile.py [--data embedded|PATH.csv] [--rows 1000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable

import pandas as pd
from mlflow.models import Model
from mlflow.models.utils import _enforce_schema
from mlflow.pyfunc import scoring_server
from threadpoolctl import threadpool_limits

from genre.data.schema import FEATURE_COLUMNS
from genre.evaluation import fit_model, markdown_table
from genre.features import load_data
from genre.models import make_model
from genre.serving import GenreClassifier, signature, windowing
from genre.serving.compiled import compile_model


def milliseconds(call: Callable[[], object], repeats: int) -> float:
    """Mean wall time of ``call`` over ``repeats`` runs, after one warm-up call."""
    call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    dataset = load_data(args.data)
    stack = fit_model(make_model("stacking"), dataset)
    rows = dataset.X.sample(args.rows, replace=True, random_state=0).reset_index(drop=True)
    scaled = stack[:-1].transform(rows)
    timings = {}
    with threadpool_limits(1):
        for name, est in stack[-1].named_estimators_.items():
            timings[f"{name} predict_proba"] = milliseconds(
                lambda e=est: e.predict_proba(scaled), args.repeats
            )
            compiled = compile_model(est)
            timings[f"{name} compiled"] = milliseconds(
                lambda c=compiled: c.predict_proba(scaled), args.repeats
            )
    timings["stack predict_proba, default thread pools"] = milliseconds(
        lambda: stack.predict_proba(rows), args.repeats
    )
    with threadpool_limits(1):
        timings["stack predict_proba, one thread per pool"] = milliseconds(
            lambda: stack.predict_proba(rows), args.repeats
        )
    served = GenreClassifier(stack, **windowing(dataset.windowed))
    values = rows.loc[:, served.columns].to_numpy()
    timings["stack compiled (GenreClassifier.predict_proba)"] = milliseconds(
        lambda: served.predict_proba(values), args.repeats
    )
    timings["GenreClassifier.predict"] = milliseconds(lambda: served.predict(rows), args.repeats)

    # The scoring server's steps (mlflow/pyfunc/scoring_server), on the same rows and signature.
    metadata = Model(signature=signature())
    schema = metadata.get_input_schema()
    body = json.dumps(
        {"dataframe_split": {"columns": list(FEATURE_COLUMNS), "data": rows.to_numpy().tolist()}}
    )
    csv = rows.to_csv(index=False)
    timings["MLflow: parse JSON dataframe_split"] = milliseconds(
        lambda: scoring_server._parse_json_data(body.encode(), metadata, schema), args.repeats
    )
    timings["MLflow: parse CSV body"] = milliseconds(
        lambda: scoring_server.parse_csv_input(io.StringIO(csv), schema), args.repeats
    )
    parquet = rows.to_parquet(index=False)
    timings["MLflow: parse Parquet body"] = milliseconds(
        lambda: scoring_server.parse_parquet_input(io.BytesIO(parquet)), args.repeats
    )
    request = scoring_server.parse_csv_input(io.StringIO(csv), schema)
    timings["MLflow: enforce the signature"] = milliseconds(
        lambda: _enforce_schema(request, schema), args.repeats
    )
    answer = served.predict(rows)
    timings["MLflow: encode the answer"] = milliseconds(
        lambda: scoring_server.predictions_to_json(answer, io.StringIO()), args.repeats
    )
    print(json.dumps({"data": dataset.name, "rows": args.rows, "milliseconds": timings}, indent=1))
    table = pd.DataFrame({"step": list(timings), "ms": list(timings.values())})
    table["rows/s"] = args.rows / table["ms"] * 1000
    print(markdown_table(table, floatfmt=".1f"))


if __name__ == "__main__":
    main()
