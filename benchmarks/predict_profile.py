"""Where a 1000-row prediction's time goes, in-process: each base model, the stack, the served wrapper.

Fits the default stack on the embedded data, then times ``predict_proba`` of each base model (on scaled
rows), of the whole stack, ``GenreClassifier.predict`` (what the served model runs) and ``json.dumps``
of its answer. Prints JSON, then a markdown table. The serving benchmark (``serving_speed.py``) measures
the same through the HTTP server.

    python benchmarks/predict_profile.py [--rows 1000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import pandas as pd

from genre.data import load_data
from genre.evaluation import fit_model
from genre.models import make_model
from genre.reports import markdown_table
from genre.serving import GenreClassifier, windowing


def milliseconds(call: Callable[[], object], repeats: int) -> float:
    """Mean wall time of ``call`` over ``repeats`` runs, after one warm-up call."""
    call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    dataset = load_data("embedded")
    stack = fit_model(make_model("stacking"), dataset)
    rows = dataset.X.sample(args.rows, replace=True, random_state=0).reset_index(drop=True)
    scaled = stack[:-1].transform(rows)
    timings = {
        f"{name} predict_proba": milliseconds(lambda e=est: e.predict_proba(scaled), args.repeats)
        for name, est in stack[-1].named_estimators_.items()
    }
    timings["stack predict_proba"] = milliseconds(lambda: stack.predict_proba(rows), args.repeats)
    served = GenreClassifier(stack, **windowing(dataset.windowed))
    timings["GenreClassifier.predict"] = milliseconds(lambda: served.predict(rows), args.repeats)
    answer = served.predict(rows)
    timings["json.dumps of the answer"] = milliseconds(
        lambda: json.dumps({"predictions": answer.to_dict(orient="records")}), args.repeats
    )
    print(json.dumps({"rows": args.rows, "milliseconds": timings}, indent=1))
    table = pd.DataFrame({"step": list(timings), "ms": list(timings.values())})
    table["rows/s"] = args.rows / table["ms"] * 1000
    print(markdown_table(table, floatfmt=".1f"))


if __name__ == "__main__":
    main()
