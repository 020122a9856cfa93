"""``genre catalog``: a music library classified into a SQLite catalog, tagged, restored, in playlists."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from genre.cli.arguments import add_jobs, add_model_source, batch_status

__all__ = ["COMMANDS"]

#: The catalog when --db is not given: in the working directory, like MLflow's own mlflow.db.
DEFAULT_DB = "genre-catalog.sqlite"
#: Answers whose probability is below this are ``unsure``: kept, listed in unsure.m3u8, never tagged.
#: Chosen by benchmarks/calibration.py's rule from the default champion's out-of-fold probabilities on the
#: training side (the largest threshold below which songs are right less than 70 % of the time): see
#: docs/library.md, "Choosing --min-confidence".
MIN_CONFIDENCE = 0.75


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return value


def _catalog_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="music folders (searched recursively) and files: MP3, FLAC, OGG, Opus, M4A, AAC, WAV, AIFF, AU",
    )
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the catalog, a SQLite file (default {DEFAULT_DB})")
    add_model_source(parser)
    add_jobs(parser)
    parser.add_argument(
        "--min-confidence",
        type=_probability,
        default=MIN_CONFIDENCE,
        help=f"answers below this probability are 'unsure': catalogued, never tagged (default "
        f"{MIN_CONFIDENCE}, chosen from the default champion's cross-validation)",
    )
    tags = parser.add_argument_group("tags in the files")
    tags.add_argument(
        "--write-tags", action="store_true", help="write each confident genre into its file's tag"
    )
    tags.add_argument("--overwrite", action="store_true", help="replace a genre a file already has")
    tags.add_argument(
        "--restore-tags",
        action="store_true",
        help="put back the tags genre replaced (under PATHs, or all), instead of scanning",
    )
    tags.add_argument("--pretend", action="store_true", help="show what --write-tags/--restore-tags would do")
    parser.add_argument(
        "--import",
        dest="import_parquet",
        metavar="PARQUET",
        help="fill the catalog from genre score --audio's output instead of scanning (name the model that "
        "scored it with the model options)",
    )
    parser.add_argument(
        "--playlists", metavar="DIR", help="write one M3U8 per genre, and unsure.m3u8, in DIR"
    )
    parser.add_argument("--summary", action="store_true", help="print genre counts, unsure and errors")
    parser.add_argument("--strict", action="store_true", help="exit with status 3 if any file failed")


def _catalog(args: argparse.Namespace) -> int:
    from genre.errors import ConfigError
    from genre.library.store import Catalog

    roots = [os.path.realpath(path) for path in args.paths]
    if args.restore_tags and args.write_tags:
        raise ConfigError("--restore-tags undoes --write-tags: ask for one of them")
    if args.pretend and not (args.write_tags or args.restore_tags):
        raise ConfigError("--pretend goes with --write-tags or --restore-tags")
    if args.write_tags and not roots:
        raise ConfigError(
            "--write-tags writes only under the folders given: name them (genre catalog PATH...)"
        )
    if args.import_parquet and args.restore_tags:
        raise ConfigError("--import fills the catalog; --restore-tags undoes tags: ask for one of them")
    if not (roots or args.summary or args.restore_tags or args.playlists or args.import_parquet):
        raise ConfigError(
            "give music folders to catalog (genre catalog PATH...), or --summary, --restore-tags or "
            "--playlists DIR for an existing catalog"
        )
    if not (roots or args.import_parquet) and not os.path.exists(args.db):
        raise ConfigError(f"no catalog at {args.db} (make one: genre catalog PATH...)")
    failed = done = 0
    with Catalog(args.db) as catalog:
        if args.restore_tags:
            failed += _tag_lines(_restore(catalog, roots or None, args), pretend=args.pretend)
        else:
            if args.import_parquet:
                done, failed = _import(catalog, args)
            elif roots:
                done, failed = _scan(catalog, args)
            if args.write_tags:
                failed += _tag_lines(_write(catalog, roots, args), pretend=args.pretend)
        if args.playlists:
            from genre.library.playlists import write_playlists

            written = write_playlists(catalog, args.playlists, roots or None)
            shown = ", ".join(f"{name} ({count})" for name, count in written.items())
            print(f"playlists in {args.playlists}: {shown}")
        if args.summary:
            from genre.library.summary import summarise

            print("\n".join(summarise(catalog, roots or None).lines()))
    filled = (roots or args.import_parquet) and not args.restore_tags
    return batch_status(done if filled else 1, failed, strict=args.strict)


def _scan(catalog: Any, args: argparse.Namespace) -> tuple[int, int]:
    """Scan the PATHs: a bar with the time left on a terminal, each failed file named on stderr."""
    from tqdm.auto import tqdm

    from genre.library.classify import resolve_model
    from genre.library.scan import scan

    model = resolve_model(model=args.model, run_id=args.run_id, name=args.name, alias=args.alias)
    quiet = args.quiet or not sys.stderr.isatty()
    if not args.quiet:
        print(f"cataloguing with {model.label} into {args.db}", file=sys.stderr)
    bar = tqdm(total=0, unit="file", disable=quiet)

    def plan(total: int) -> None:
        bar.reset(total=total)

    def entry(row: Any) -> None:
        bar.update(1)
        if row.error is not None:
            bar.write(f"{row.path}: error: {row.error}", file=sys.stderr)

    report = scan(
        catalog, args.paths, model, min_confidence=args.min_confidence, jobs=args.jobs, full=args.full,
        on_plan=plan, on_entry=entry,
    )  # fmt: skip
    bar.close()
    for problem in report.problems:
        print(f"{problem.path}: {problem.reason}", file=sys.stderr)
    print(
        f"{report.found} audio file(s): {report.analysed} classified, {report.failed} failed, "
        f"{report.unchanged + report.touched} unchanged (skipped), {report.missing} newly missing; "
        f"{report.seconds:.2f} s"
    )
    return report.found, report.failed


def _import(catalog: Any, args: argparse.Namespace) -> tuple[int, int]:
    from genre.library.classify import resolve_model
    from genre.library.importing import import_scores

    model = resolve_model(model=args.model, run_id=args.run_id, name=args.name, alias=args.alias)
    report = import_scores(catalog, args.import_parquet, model, min_confidence=args.min_confidence)
    print(
        f"imported {report.rows} row(s) from {args.import_parquet} as answered by {model.label}: "
        f"{report.answered} answered, {report.failed} failed, {report.missing} not on this machine (missing)"
    )
    return report.answered, report.failed


def _write(catalog: Any, roots: list[str], args: argparse.Namespace) -> Any:
    from genre.library.tagging import write_tags

    return write_tags(catalog, roots, overwrite=args.overwrite, pretend=args.pretend)


def _restore(catalog: Any, roots: list[str] | None, args: argparse.Namespace) -> Any:
    from genre.library.tagging import restore_tags

    return restore_tags(catalog, roots, overwrite=args.overwrite, pretend=args.pretend)


def _tag_lines(outcomes: Any, *, pretend: bool) -> int:
    """Print one line per changed, kept or refused tag and a count of each; return the refusals."""
    counts: Counter[str] = Counter()
    would = "would " if pretend else ""
    for outcome in outcomes:
        counts[outcome.action] += 1
        before = "; ".join(outcome.before) or "no genre"
        after = "; ".join(outcome.after) or "no genre"
        if outcome.action == "write":
            print(f"{would}tag {outcome.path}: {after} (was {before})")
        elif outcome.action == "restore":
            print(f"{would}restore {outcome.path}: {after} (was {before})")
        elif outcome.action == "keep":
            print(f"keep {outcome.path}: {before} (--overwrite replaces it)")
        elif outcome.action == "refused":
            print(f"{outcome.path}: tag left alone: {outcome.detail}", file=sys.stderr)
    names = {
        "write": "to write" if pretend else "written",
        "restore": "to restore" if pretend else "restored",
        "keep": "kept",
        "same": "already right",
        "refused": "refused",
    }
    done = ", ".join(f"{counts[action]} {name}" for action, name in names.items() if counts[action])
    print(f"tags{' (pretend: nothing written)' if pretend else ''}: {done or 'none to change'}")
    return counts["refused"]


#: name -> (help, add arguments, run).
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "catalog": (
        "classify a music library into a catalog (SQLite); write genre tags safely, restore them, playlists",
        _catalog_parser,
        _catalog,
    ),
}
