"""The same song however it is stored: how often a model keeps its genre when a clip is re-encoded,
resampled, made stereo, louder or quieter, or cut short; and what the level-free transform costs.

    python benchmarks/same_song.py [--json docs/bench/same_song.json] [--jobs 2] [--skip-cost]

Models, each fitted on all the tracks its data holds (whole clips, as a served model of 30-s clips):
the 57-feature stack on ``features_30_sec.csv``, the same with ``transform="levelfree"`` (the recording's
level divided out of the seven features it scales), and the SVM on both feature sets (the 57 features
joined with musicnn's published taggrams, 733 tracks), with and without that transform. Each of the 11
shared clips is rendered in every variant of ``genre.features.variants`` and sent to the model as a
file, as the server receives it; agreement is the share of clips whose genre is the one the model gives
the original file. (The clips are in these models' training data: this measures consistency, not
accuracy.) Then the cost of the transform: CV accuracy under ``grouped`` (10 folds) and the test
accuracy under ``filtered``, standard against level-free. Prints JSON, then markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import soundfile as sf

from genre.errors import GenreError
from genre.evaluation import evaluate, fit_model, markdown_table
from genre.features import load_data
from genre.features.variants import VARIANTS, render
from genre.models import make_model
from genre.serving import GenreClassifier, windowing

GTZAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan"
#: name -> (model, features, transform)
MODELS = {
    "57-feature stack": ("stacking", "gtzan57", "standard"),
    "57-feature stack, level-free": ("stacking", "gtzan57", "levelfree"),
    "svm on both sets": ("svm", "both", "standard"),
    "svm on both sets, level-free": ("svm", "both", "levelfree"),
}


def agreement(models: dict[str, GenreClassifier], clips: list[Path]) -> list[dict]:
    rows = []
    for name, classifier in models.items():
        originals: dict[str, str] = {}
        for variant_name, variant in VARIANTS.items():
            kept = correct = answered = 0
            refused = []
            for clip in clips:
                y, sr = sf.read(clip, dtype="float32")
                try:
                    answer = classifier.predict_audio([render(y, sr, variant)], names=[clip.name]).iloc[0]
                except GenreError as error:
                    refused.append(f"{clip.stem}: {error.kind}")
                    continue
                answered += 1
                originals.setdefault(clip.stem, answer["genre"])
                kept += answer["genre"] == originals[clip.stem]
                correct += answer["genre"] == clip.parent.name
            rows.append(
                {
                    "model": name,
                    "variant": variant_name,
                    "answered": f"{answered}/{len(clips)}",
                    "same_genre": f"{kept}/{answered}" if answered else "-",
                    "agreement": kept / answered if answered else float("nan"),
                    "right_genre": f"{correct}/{answered}" if answered else "-",
                    "refused": "; ".join(refused),
                }
            )
            print(f"{name} / {variant_name}: {rows[-1]['same_genre']}", file=sys.stderr)
    return rows


def cost(clips_30: object, both: object, *, jobs: int) -> list[dict]:
    rows = []
    for name, (model, features, transform) in MODELS.items():
        data = clips_30 if features == "gtzan57" else both
        for protocol in ("grouped", "filtered"):
            started = time.perf_counter()
            summary = evaluate(
                make_model(model, transform=transform, features=features),
                data,
                protocol,
                n_splits=10 if protocol == "grouped" else 5,
                n_jobs=jobs,
            ).summary()
            rows.append(
                {
                    "model": name,
                    "protocol": protocol,
                    "cv_accuracy": summary["cv_accuracy_mean"],
                    "cv_accuracy_std": summary["cv_accuracy_std"],
                    "test_accuracy": summary.get("test_accuracy", float("nan")),
                    "seconds": time.perf_counter() - started,
                }
            )
            print(f"cost {name} {protocol}: {rows[-1]}", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-cost", action="store_true", help="only the agreement table")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    clips_30 = load_data(GTZAN / "features_30_sec.csv")
    both = load_data(f"{GTZAN / 'features_30_sec.csv'},{GTZAN / 'musicnn'}", windows=False)
    models = {}
    for name, (model, features, transform) in MODELS.items():
        data = (clips_30 if features == "gtzan57" else both).with_features(
            ("gtzan57",) if features == "gtzan57" else ("gtzan57", "musicnn")
        )
        fitted = fit_model(make_model(model, transform=transform, features=features), data)
        models[name] = GenreClassifier(fitted, **windowing(False))
    clips = sorted((GTZAN / "audio").glob("*/*.wav"))
    started = time.perf_counter()
    table = agreement(models, clips)
    blob = {"clips": [c.name for c in clips], "agreement": table, "seconds": time.perf_counter() - started}
    if not args.skip_cost:
        blob["cost"] = cost(clips_30, both, jobs=args.jobs)
    print(json.dumps(blob, indent=2))
    wide = pd.DataFrame(table).pivot(index="variant", columns="model", values="same_genre")
    print("\nSame genre as the original file (clips answered):\n")
    print(markdown_table(wide.reindex(list(VARIANTS)).reset_index()))
    if "cost" in blob:
        print("\nWhat the level-free transform costs:\n")
        print(markdown_table(pd.DataFrame(blob["cost"])))
    if args.json:
        args.json.write_text(json.dumps(blob, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
