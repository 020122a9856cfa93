"""``genre register``, ``promote``, ``predict`` and ``web``: the registered model and what serves it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from genre import settings
from genre.cli.arguments import whole_number

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
    parser.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, MP3, AU)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="any MLflow model URI of a registered serving model")
    which.add_argument("--run-id", help="a training run: its logged model, served the same way")
    parser.add_argument("--name", default=settings.MODEL_NAME, help="registered model (default source)")
    parser.add_argument("--alias", default=settings.CHAMPION, help="alias of --name")


def _predict(args: argparse.Namespace) -> int:
    from genre.registry import predict_files

    failed = 0
    for path, answer in predict_files(
        args.files, model=args.model, run_id=args.run_id, name=args.name, alias=args.alias
    ):
        if isinstance(answer, str):
            failed += 1
            print(f"{path}: error: {answer}", file=sys.stderr)
            continue
        top = sorted(answer["probabilities"].items(), key=lambda item: -item[1])[:3]
        print(
            f"{path}: {answer['genre']}  ("
            + ", ".join(f"{g} {p:.3f}" for g, p in top)
            + f"; {answer['windows']} windows)"
        )
    return 3 if failed else 0


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
    "predict": ("genre and top-3 probabilities of audio files", _predict_parser, _predict),
    "web": ("the 'discover your sound' web page on the registered model", _web_parser, _web),
}
