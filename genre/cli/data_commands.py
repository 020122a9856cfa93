"""``genre generate``, ``genre extract`` and ``genre score``: audio in, feature tables or scores out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from genre import settings
from genre.cli.arguments import add_batch_flags, add_jobs, add_windows, batch_status, boolean, whole_number

__all__ = ["COMMANDS"]


def _generate_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write <class>/<class>.NNNNN.wav into")
    parser.add_argument("--seed", type=whole_number, default=0)
    parser.add_argument("--clips-per-class", type=whole_number, default=10)
    parser.add_argument(
        "--windows-per-clip", type=whole_number, default=3, help="clip length in 3-second windows"
    )


def _generate(args: argparse.Namespace) -> int:
    from genre.data.synthetic import generate_dataset

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
    parser.add_argument(
        "--features",
        default="gtzan57",
        help="comma-separated feature sets, each file decoded once for all: gtzan57 (the 57 GTZAN features), "
        "musicnn (musicnn's 50 MSD tags, mean and std over 3-s patches); default gtzan57",
    )
    add_windows(parser, default=False)
    add_jobs(parser)
    parser.add_argument("--no-cache", action="store_true", help="re-extract every file, ignoring the cache")
    add_batch_flags(parser)


def _extract(args: argparse.Namespace) -> int:
    from genre.jobs.extract import extract_job

    result = extract_job(
        args.paths,
        args.out,
        features=args.features,
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
    return batch_status(result.files_done, failed, strict=args.strict)


def _score_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        help=f"a genre serving model URI, e.g. models:/{settings.MODEL_NAME}@{settings.CHAMPION}",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="feature tables (CSV with a header, or Parquet); with --audio, audio files and folders "
        "('embedded': the generated set)",
    )
    parser.add_argument("--out", required=True, help="Parquet folder to write")
    parser.add_argument(
        "--audio",
        type=boolean,
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
        "--overwrite", type=boolean, nargs="?", const=True, default=False, help="replace an existing --out"
    )
    add_batch_flags(parser)


def _score(args: argparse.Namespace) -> int:
    from genre.jobs.score import score_job

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
    for _, error in result.failures:
        print(f"  failed {error}", file=sys.stderr)
    if result.failed > len(result.failures):
        print(f"  and {result.failed - len(result.failures)} more: see the error column", file=sys.stderr)
    return batch_status(result.scored, result.failed, strict=args.strict)


#: name -> (help, add arguments, run), in the order ``genre --help`` lists them.
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "generate": ("write the embedded synthetic audio dataset", _generate_parser, _generate),
    "extract": ("extract the 57 GTZAN features from audio files into a CSV", _extract_parser, _extract),
    "score": (
        "batch scoring on Spark: feature rows or audio files to Parquet (genre, probabilities, errors)",
        _score_parser,
        _score,
    ),
}
