"""The ``genre`` command: one registry of subcommands, each parsing its flags and calling one function.

``MLproject`` entry points call these commands, so everything an entry point does can also be run
(and tested) without ``mlflow run``. Expected failures (``GenreError``) print one line naming the
problem and exit with status 2; nothing here prints a library traceback for bad input.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

import yaml

from genre.errors import GenreError

if TYPE_CHECKING:
    from genre.tuning import SearchResult

__all__ = ["main", "COMMANDS"]

log = logging.getLogger("genre")


def _bool(text: str) -> bool:
    """Parse the booleans ``MLproject`` passes as strings (``true``/``false``, ``1``/``0``...)."""
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int(text: str) -> int:
    """Parse a whole number, also as ``MLproject`` float parameters spell it (``"3.0"``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def _add_windows(parser: argparse.ArgumentParser, default: bool) -> None:
    parser.add_argument(
        "--windows",
        type=_bool,
        nargs="?",
        const=True,
        default=default,
        help="one row per 3-second window, like Kaggle's features_3_sec.csv (--windows, or --windows false)",
    )


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", type=_int, default=1, help="worker processes for extraction (-1: all cores)"
    )


# --- generate -------------------------------------------------------------------------------------


def _generate_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write <class>/<class>.NNNNN.wav into")
    parser.add_argument("--seed", type=_int, default=0)
    parser.add_argument("--clips-per-class", type=_int, default=10)
    parser.add_argument("--windows-per-clip", type=_int, default=3, help="clip length in 3-second windows")


def _generate(args: argparse.Namespace) -> int:
    from genre.synthetic import generate_dataset

    root = generate_dataset(
        args.out,
        seed=args.seed,
        clips_per_class=args.clips_per_class,
        windows_per_clip=args.windows_per_clip,
    )
    print(root)
    return 0


# --- extract --------------------------------------------------------------------------------------


def _extract_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", help="audio files or folders (or 'embedded' for the generated set)"
    )
    parser.add_argument("--out", required=True, help="CSV to write, in the GTZAN schema")
    _add_windows(parser, default=False)
    _add_jobs(parser)
    parser.add_argument("--no-cache", action="store_true", help="re-extract every file, ignoring the cache")
    _add_batch_flags(parser)


def _add_batch_flags(parser: argparse.ArgumentParser) -> None:
    """The options every batch command shares (extract, score), with the exit codes of ``_batch_status``."""
    parser.add_argument("--mlflow", action="store_true", help="record the batch as an MLflow run")
    parser.add_argument("--strict", action="store_true", help="exit with status 3 if any item failed")


def _batch_status(done: int, failed: int, *, strict: bool) -> int:
    """A batch's exit code: 1 if nothing came through, 3 if something failed under --strict, else 0."""
    if done == 0:
        return 1
    return 3 if failed and strict else 0


def _extract(args: argparse.Namespace) -> int:
    from genre.jobs import extract_job

    result = extract_job(
        args.paths,
        args.out,
        windows=args.windows,
        n_jobs=args.jobs,
        cache=not args.no_cache,
        track=args.mlflow,
        progress=sys.stderr.isatty(),
    )
    failed = len(result.failures)
    print(
        f"{result.files_done} file(s) -> {len(result.features)} row(s) in {args.out} "
        f"({result.seconds:.1f} s); {failed} failed"
    )
    for row in result.failures.itertuples():
        print(f"  failed [{row.kind}] {row.message}", file=sys.stderr)
    return _batch_status(result.files_done, failed, strict=args.strict)


# --- train / main ---------------------------------------------------------------------------------


def _add_data(parser: argparse.ArgumentParser, *, folds: int = 10) -> None:
    parser.add_argument(
        "--data", default="embedded", help="'embedded', a GTZAN-schema CSV or an audio folder"
    )
    parser.add_argument("--seed", type=_int, default=0, help="seed of splits, network and embedded data")
    parser.add_argument("--folds", type=_int, default=folds, help="cross-validation folds")
    _add_windows(parser, default=True)
    _add_jobs(parser)


def _value(text: str) -> object:
    """A parameter value read as YAML, so ``10`` is a number and ``distance`` text.

    A whole float becomes an int: MLproject's float parameters may arrive as ``"300.0"``, and integer
    parameters (``epochs``) reject floats, while real-valued ones accept ints.
    """
    value = yaml.safe_load(text)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` for ``--set``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), _value(value)


def _train_parser(parser: argparse.ArgumentParser, *, with_model: bool = True) -> None:
    if with_model:
        parser.add_argument("model", help="knn, svm, nn or stacking")
    parser.add_argument("--protocol", default="grouped", help="grouped (honest) or seed (random row split)")
    parser.add_argument(
        "--set",
        dest="params",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a model hyperparameter, e.g. --set n_neighbors=7 (any --NAME VALUE left over counts too)",
    )
    _add_data(parser)


def _train(args: argparse.Namespace) -> int:
    from genre.jobs import train_job

    result = train_job(
        args.model,
        args.data,
        params=dict(args.params),
        protocol=args.protocol,
        n_splits=args.folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
    )
    summary = result.evaluation.summary()
    print(f"run {result.run_id}: {args.model} ({args.protocol})")
    for name, value in summary.items():
        print(f"  {name:28s} {value:.4f}")
    return 0


def _main_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="knn,svm,nn,stacking", help="comma-separated models")
    parser.add_argument("--protocols", default="grouped,seed", help="comma-separated protocols")
    _add_data(parser)


def _main(args: argparse.Namespace) -> int:
    from genre.jobs import main_job
    from genre.reports import markdown_table

    table = main_job(
        args.data,
        models=_names(args.models),
        protocols=_names(args.protocols),
        n_splits=args.folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
    )
    print(markdown_table(table.drop(columns="run_id")))
    return 0


# --- tune-grid / tune-optuna / tune-stacking ------------------------------------------------------


def _add_search(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("config", help=f"a YAML file, or a name in experiments/{kind}/ (knn, svm, nn)")
    parser.add_argument(
        "--outer-folds",
        type=_int,
        default=0,
        help="also score the whole search by nested CV with this many outer folds (0: off)",
    )
    _add_data(parser, folds=5)


def _tune_grid_parser(parser: argparse.ArgumentParser) -> None:
    _add_search(parser, "grid")


def _tune_grid(args: argparse.Namespace) -> int:
    from genre.jobs import tune_grid_job

    result = tune_grid_job(
        args.config,
        args.data,
        n_splits=args.folds,
        outer_splits=args.outer_folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
    )
    _print_search(result)
    return 0


def _optional_float(text: str) -> float | None:
    """A number, or nothing for ``0``, ``none`` or an empty string (MLproject cannot pass a null)."""
    if text.strip().lower() in {"", "0", "0.0", "none", "null"}:
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or none, got {text!r}") from None


def _tune_optuna_parser(parser: argparse.ArgumentParser) -> None:
    _add_search(parser, "optuna")
    parser.add_argument("--trials", type=_int, default=20, help="finished trials the study should hold")
    parser.add_argument("--timeout", type=_optional_float, default=None, help="seconds (none: no limit)")
    parser.add_argument(
        "--storage",
        default="sqlite:///optuna.db",
        help="SQLAlchemy URL of the study's database, shared by workers; 'memory' for none",
    )
    parser.add_argument(
        "--study-name",
        default="auto",
        help="auto: the model and a fingerprint of config, data, folds and seed",
    )
    parser.add_argument(
        "--heartbeat",
        type=_int,
        default=None,
        help="seconds between a running trial's heartbeats (default 20); three missed: its worker is dead",
    )


def _tune_optuna(args: argparse.Namespace) -> int:
    from genre.jobs import tune_optuna_job

    result = tune_optuna_job(
        args.config,
        args.data,
        n_trials=args.trials,
        timeout=args.timeout,
        storage=None if args.storage in {"", "memory"} else args.storage,
        study_name=None if args.study_name in {"", "auto"} else args.study_name,
        n_splits=args.folds,
        outer_splits=args.outer_folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
        heartbeat=args.heartbeat,
    )
    _print_search(result)
    return 0


def _print_search(result: SearchResult) -> None:
    print(f"run {result.run_id}: best mean CV score {result.best_score:.4f} (the search's own, optimistic)")
    for name, value in result.best_params.items():
        print(f"  {name} = {value}")


def _tune_stacking_parser(parser: argparse.ArgumentParser) -> None:
    for base in ("knn", "svm", "nn"):
        parser.add_argument(
            f"--{base}-run",
            default="best",
            help=f"tuning run whose best {base} parameters to use: a run id, 'best' or 'default'",
        )
    parser.add_argument("--metric", default="best_cv_accuracy", help="what 'best' maximises")
    _train_parser(parser, with_model=False)


def _tune_stacking(args: argparse.Namespace) -> int:
    from genre.jobs import tune_stacking_job

    result = tune_stacking_job(
        args.data,
        sources={"knn": args.knn_run, "svm": args.svm_run, "nn": args.nn_run},
        metric=args.metric,
        params=dict(args.params),
        protocol=args.protocol,
        n_splits=args.folds,
        seed=args.seed,
        windows=args.windows,
        n_jobs=args.jobs,
    )
    print(f"run {result.run_id}: tuned stacking ({args.protocol})")
    for name, value in result.evaluation.summary().items():
        print(f"  {name:28s} {value:.4f}")
    return 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


# --- register / promote / predict -----------------------------------------------------------------


def _register_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", default="best", help="training run to register, or 'best' (default)")
    parser.add_argument("--experiment", default="genre", help="where 'best' looks")
    parser.add_argument("--metric", default="cv_accuracy_mean", help="what 'best' maximises")
    parser.add_argument("--model", default="stacking", help="which model's runs 'best' considers")
    parser.add_argument("--protocol", default="grouped", help="which protocol's runs 'best' considers")
    parser.add_argument("--name", default="genre-classifier", help="the registered model")
    parser.add_argument(
        "--alias",
        choices=["champion", "challenger"],
        default="champion",
        help="champion (default) serves the new version at once; challenger leaves the champion serving "
        "and serves the new version at models:/NAME@challenger until `genre promote challenger`",
    )


def _register(args: argparse.Namespace) -> int:
    from genre.registry import register

    done = register(
        None if args.run_id == "best" else args.run_id,
        experiment=args.experiment,
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
    parser.add_argument("--name", default="genre-classifier", help="the registered model")


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
    parser.add_argument("--name", default="genre-classifier", help="registered model (default source)")
    parser.add_argument("--alias", default="champion", help="alias of --name")


def _predict(args: argparse.Namespace) -> int:
    from genre.predict import predict_files

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


# --- score ----------------------------------------------------------------------------------------


def _score_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a genre serving model URI, e.g. models:/genre-classifier@champion")
    parser.add_argument(
        "inputs",
        nargs="+",
        help="feature tables (CSV with a header, or Parquet); with --audio, audio files and folders "
        "('embedded': the generated set)",
    )
    parser.add_argument("--out", required=True, help="Parquet folder to write")
    parser.add_argument(
        "--audio",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="score audio files, not feature rows",
    )
    parser.add_argument("--id-column", default="filename", help="feature input: the column naming each row")
    parser.add_argument(
        "--master", default="local[2]", help="Spark master: local[N], spark://HOST:PORT, yarn"
    )
    parser.add_argument(
        "--overwrite", type=_bool, nargs="?", const=True, default=False, help="replace an existing --out"
    )
    _add_batch_flags(parser)


def _score(args: argparse.Namespace) -> int:
    from genre.jobs import score_job

    result = score_job(
        args.model,
        args.inputs,
        args.out,
        audio=args.audio,
        id_column=args.id_column,
        master=args.master,
        overwrite=args.overwrite,
        track=args.mlflow,
    )
    print(
        f"{result.scored} row(s) scored, {result.failed} failed -> {result.output} "
        f"({result.seconds:.1f} s, {result.rows_per_s:,.0f} rows/s with Spark start-up)"
    )
    for name, error in result.failures:
        print(f"  failed {name}: {error.removeprefix(f'{name}: ')}", file=sys.stderr)
    if result.failed > len(result.failures):
        print(f"  and {result.failed - len(result.failures)} more: see the error column", file=sys.stderr)
    return _batch_status(result.scored, result.failed, strict=args.strict)


# --- web ------------------------------------------------------------------------------------------


def _web_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=_int, default=8000)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="any MLflow model URI of a registered serving model")
    which.add_argument(
        "--endpoint", help="a running `mlflow models serve` URL to ask instead (no per-window timeline)"
    )
    parser.add_argument("--name", default="genre-classifier", help="registered model (default source)")
    parser.add_argument("--alias", default="champion", help="alias of --name")
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


#: name -> (help, add arguments, run). One place to see every command.
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "generate": ("write the embedded synthetic audio dataset", _generate_parser, _generate),
    "extract": ("extract the 57 GTZAN features from audio files into a CSV", _extract_parser, _extract),
    "train": ("cross-validate, fit and log one model as an MLflow run", _train_parser, _train),
    "main": (
        "every model under both protocols in one parent run, with a comparison table",
        _main_parser,
        _main,
    ),
    "tune-grid": (
        "exhaustive grid search (GridSearchCV), a child run per candidate",
        _tune_grid_parser,
        _tune_grid,
    ),
    "tune-optuna": ("Optuna study (TPE, pruning), a child run per trial", _tune_optuna_parser, _tune_optuna),
    "tune-stacking": (
        "the stack built from the best parameters of earlier tuning runs",
        _tune_stacking_parser,
        _tune_stacking,
    ),
    "register": ("register a run's model for serving, as @champion", _register_parser, _register),
    "promote": (
        "move @champion to another version (the old one becomes @previous)",
        _promote_parser,
        _promote,
    ),
    "predict": ("genre and top-3 probabilities of audio files", _predict_parser, _predict),
    "score": (
        "batch scoring on Spark: feature rows or audio files to Parquet (genre, probabilities, errors)",
        _score_parser,
        _score,
    ),
    "web": ("the 'discover your sound' web page on the registered model", _web_parser, _web),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genre", description="Music genre classification experiments.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def _leftover_params(parser: argparse.ArgumentParser, extra: list[str]) -> list[tuple[str, object]]:
    if len(extra) % 2 or not all(flag.startswith("--") for flag in extra[::2]):
        parser.error(f"unrecognized arguments: {' '.join(extra)} (model parameters go as --NAME VALUE pairs)")
    return [(flag[2:], _value(value)) for flag, value in zip(extra[::2], extra[1::2], strict=True)]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (``kill``, or ``mlflow run`` stopping its command) stops a job as Ctrl-C does, so runs
    are closed as KILLED and finished work is kept, instead of the process vanishing mid-write."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``genre`` with ``argv``; return the exit status (0 ok, 1 nothing done, 2 bad input/usage)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in {"train", "tune-stacking"}:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        # MLflow passes a -P parameter that MLproject does not declare as "--name value".
        args.params += _leftover_params(parser, extra)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.run(args)
    except GenreError as exc:
        print(f"genre: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genre: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
