"""``genre register``, ``promote``, ``predict`` and ``web``: the registered model and what serves it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from genre import settings
from genre.cli.arguments import add_jobs, add_model_source, whole_number

__all__ = ["COMMANDS"]


def _register_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", default="best", help="training run to register, or 'best' (default)")
    parser.add_argument(
        "--experiment",
        default="current",
        help="where 'best' looks: an experiment name, or 'current' (default): the one every entry point "
        f"uses ($MLFLOW_EXPERIMENT_NAME, mlflow run's --experiment-name, else {settings.EXPERIMENT!r})",
    )
    parser.add_argument("--metric", default="cv_accuracy_mean", help="what 'best' maximises")
    parser.add_argument("--model", default="stacking", help="which model's runs 'best' considers")
    parser.add_argument(
        "--protocol",
        default="auto",
        help="which protocol's runs 'best' considers (auto: filtered when there are any, else grouped)",
    )
    parser.add_argument("--name", default=settings.MODEL_NAME, help="the registered model")
    parser.add_argument(
        "--alias",
        choices=[settings.CHAMPION, settings.CHALLENGER],
        default=settings.CHAMPION,
        help="champion (default) serves the new version at once; challenger leaves the champion serving "
        "and serves the new version at models:/NAME@challenger until `genre promote challenger`",
    )


def _register(args: argparse.Namespace) -> int:
    from genre.registry import register

    done = register(
        None if args.run_id == "best" else args.run_id,
        experiment=None if args.experiment == "current" else args.experiment,
        metric=args.metric,
        model=args.model,
        protocol=args.protocol,
        name=args.name,
        alias=args.alias,
    )
    print(f"registered {done.name} version {done.version} from run {done.source_run_id} as @{done.alias}")
    if done.previous_champion:
        print(f"  version {done.previous_champion} is now @previous")
    print(f"  serve it: mlflow models serve -m {done.model_uri} --env-manager local")
    return 0


def _promote_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", help="version number, or an alias ('previous' rolls back)")
    parser.add_argument("--name", default=settings.MODEL_NAME, help="the registered model")


def _promote(args: argparse.Namespace) -> int:
    from genre.registry import promote
    from genre.tracking import configure_tracking

    configure_tracking()
    new, old = promote(args.version, name=args.name)
    print(f"{args.name}: @champion -> version {new}" + (f"; version {old} is now @previous" if old else ""))
    return 0


def _predict_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        help="audio files, and folders searched recursively (WAV, AIFF, FLAC, OGG, Opus, MP3, AU, M4A, AAC)",
    )
    add_model_source(parser)
    parser.add_argument("--out", help="also write the answers as a table: FILE.csv or FILE.json")
    add_jobs(parser)


def _predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from genre.errors import ConfigError
    from genre.features import scan_audio
    from genre.registry import predict_files

    if args.out and not args.out.lower().endswith((".csv", ".json")):
        raise ConfigError(f"--out {args.out}: write a .csv or a .json file")
    files, skipped = scan_audio(args.paths, missing_ok=True)
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not audio (by extension)", file=sys.stderr)
    answers = predict_files(
        files, full=args.full, jobs=args.jobs, model=args.model, run_id=args.run_id, name=args.name,
        alias=args.alias,
    )  # fmt: skip
    rows, failed = [], 0
    # A bar with the time left on a terminal, for more than a few songs; lines go above it.
    bar = tqdm(answers, total=len(files), unit="song", disable=not sys.stderr.isatty() or len(files) < 4)
    for answer in bar:
        rows.append(answer.row())
        if answer.error is not None:
            failed += 1
            bar.write(f"{answer.path}: error: {answer.error}", file=sys.stderr)
            continue
        top = ", ".join(f"{genre} {p:.3f}" for genre, p in answer.top)
        bar.write(
            f"{answer.path}: {answer.genre}  ({top}; {answer.agreement:.0%} of {answer.windows} "
            f"window(s) agree)",
            file=sys.stdout,
        )
    if args.out:
        _write_table(rows, args.out)
    return 3 if failed else 0


def _write_table(rows: list[dict[str, object]], out: str) -> None:
    import pandas as pd

    from genre.registry import ANSWER_COLUMNS

    table = pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))
    if out.lower().endswith(".json"):
        table.to_json(out, orient="records", indent=1)
    else:
        table.to_csv(out, index=False)
    print(f"wrote {len(table)} answer(s) to {out}", file=sys.stderr)


def _web_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=whole_number, default=8000)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="any MLflow model URI of a registered serving model")
    which.add_argument(
        "--endpoint", help="a running `mlflow models serve` URL to ask instead of loading the model here"
    )
    parser.add_argument("--name", default=settings.MODEL_NAME, help="registered model (default source)")
    parser.add_argument("--alias", default=settings.CHAMPION, help="alias of --name")
    parser.add_argument(
        "--mlflow-ui", default="http://127.0.0.1:5000", help="MLflow UI base URL the models view links to"
    )


def _web(args: argparse.Namespace) -> int:
    from genre.web import serve

    serve(
        host=args.host,
        port=args.port,
        name=args.name,
        alias=args.alias,
        model=args.model,
        endpoint=args.endpoint,
        mlflow_ui=args.mlflow_ui or None,
    )
    return 0


#: name -> (help, add arguments, run), in the order ``genre --help`` lists them.
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "register": ("register a run's model for serving, as @champion", _register_parser, _register),
    "promote": (
        "move @champion to another version (the old one becomes @previous)",
        _promote_parser,
        _promote,
    ),
    "predict": ("genres of audio files and folders, with top-3 probabilities", _predict_parser, _predict),
    "web": ("the 'discover your sound' web page on the registered model", _web_parser, _web),
}
