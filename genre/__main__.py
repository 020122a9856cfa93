"""``python -m genre``: the CLI run from a checkout, as the MLproject entry points do.

Entry points call ``python -m genre`` from the project directory rather than an installed ``genre``
script, so ``mlflow run`` always runs the checkout it was given: MLflow names its environments by
their requirements alone, and one environment holding an installed copy of genre would run that copy
for every later checkout.
"""

from genre.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
