"""The ``genre`` command: one registry of subcommands, each parsing its flags and calling one function.

``MLproject`` entry points call these commands, so everything an entry point does can also be run
(and tested) without ``mlflow run``. Expected failures (``GenreError``) print one line naming the
problem and exit with status 2; nothing here prints a library traceback for bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from genre.errors import GenreError

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
    parser.add_argument("--jobs", type=_int, default=1, help="worker processes for extraction (-1: all cores)")


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
    parser.add_argument("paths", nargs="+", help="audio files or folders (or 'embedded' for the generated set)")
    parser.add_argument("--out", required=True, help="CSV to write, in the GTZAN schema")
    _add_windows(parser, default=False)
    _add_jobs(parser)
    parser.add_argument("--no-cache", action="store_true", help="re-extract every file, ignoring the cache")
    parser.add_argument("--mlflow", action="store_true", help="record the batch as an MLflow run")
    parser.add_argument("--strict", action="store_true", help="exit with status 3 if any file failed")


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
    if result.files_done == 0:
        return 1
    return 3 if failed and args.strict else 0


# --- main -----------------------------------------------------------------------------------------


def _main_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="embedded", help="'embedded', a GTZAN-schema CSV or an audio folder")
    parser.add_argument("--seed", type=_int, default=0)
    _add_windows(parser, default=True)
    _add_jobs(parser)


def _main(args: argparse.Namespace) -> int:
    from genre.jobs import main_job

    dataset = main_job(args.data, seed=args.seed, windows=args.windows, n_jobs=args.jobs)
    counts = dataset.frame.groupby("label").agg(rows=("filename", "size"), tracks=("track", "nunique"))
    print(f"data: {dataset.name} ({dataset.source}), {'windowed' if dataset.windowed else 'whole clips'}")
    print(counts.to_string())
    return 0


#: name -> (help, add arguments, run). One place to see every command.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "generate": ("write the embedded synthetic audio dataset", _generate_parser, _generate),
    "extract": ("extract the 57 GTZAN features from audio files into a CSV", _extract_parser, _extract),
    "main": ("the main job: load data (embedded by default) and record it in MLflow", _main_parser, _main),
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``genre`` with ``argv``; return the exit status (0 ok, 1 nothing done, 2 bad input/usage)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.run(args)
    except GenreError as exc:
        print(f"genre: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genre: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
