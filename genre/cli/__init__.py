"""The ``genre`` command: one registry of subcommands, each parsing its flags and calling one function.

``MLproject`` entry points call these commands, so everything an entry point does can also be run
(and tested) without ``mlflow run``. Expected failures (``GenreError``) print one line naming the
problem and exit with status 2; nothing here prints a library traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from genre import settings
from genre.cli import data_commands, library_commands, model_commands, serving_commands
from genre.cli.arguments import parse_value
from genre.errors import GenreError

__all__ = ["COMMANDS", "main"]

#: name -> (help, add arguments, run). One place to see every command; each module imports what its
#: command needs only when the command runs, so ``genre extract`` never loads MLflow or TensorFlow.
COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    **data_commands.COMMANDS,
    **model_commands.COMMANDS,
    **serving_commands.COMMANDS,
    **library_commands.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genre", description="Music genre classification experiments.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level, MLflow's lines too")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or notes, only results")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def _leftover_params(parser: argparse.ArgumentParser, extra: list[str]) -> list[tuple[str, object]]:
    if len(extra) % 2 or not all(flag.startswith("--") for flag in extra[::2]):
        parser.error(f"unrecognized arguments: {' '.join(extra)} (model parameters go as --NAME VALUE pairs)")
    return [(flag[2:], parse_value(value)) for flag, value in zip(extra[::2], extra[1::2], strict=True)]


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
    # MLflow's own INFO lines (database set-up and migrations, each artifact upload) and its artifact
    # download bars only with -v: the console shows genre's progress.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if args.verbose else "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", str(args.verbose).lower())
    # What this process's top-level runs record as their command, for `genre reproduce`.
    os.environ[settings.COMMAND_ENV] = json.dumps(list(sys.argv[1:] if argv is None else argv))
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
