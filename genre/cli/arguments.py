"""The flags and value types several ``genre`` commands share, defined once."""

from __future__ import annotations

import argparse

import yaml

from genre import settings
from genre.settings import EMBEDDED, GTZAN_MUSICNN

__all__ = [
    "add_batch_flags",
    "add_data",
    "add_jobs",
    "add_model_source",
    "add_windows",
    "batch_status",
    "boolean",
    "names",
    "optional_seconds",
    "parse_param",
    "parse_value",
    "whole_number",
]


def boolean(text: str) -> bool:
    """Parse the booleans ``MLproject`` passes as strings (``true``/``false``, ``1``/``0``...)."""
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def whole_number(text: str) -> int:
    """Parse a whole number, also as ``MLproject`` float parameters spell it (``"3.0"``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def add_windows(parser: argparse.ArgumentParser, default: bool | None) -> None:
    """``--windows``; a ``None`` default is ``auto``: each source's natural rows (audio in windows,
    taggrams as whole clips)."""
    parser.add_argument(
        "--windows",
        type=lambda text: None if text.strip().lower() == "auto" else boolean(text),
        nargs="?",
        const=True,
        default=default,
        help="one row per 3-second window, like Kaggle's features_3_sec.csv (--windows, or --windows false"
        + (", or auto: windows of audio, whole clips of taggrams; the default)" if default is None else ")"),
    )


def add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=whole_number,
        default=settings.default_jobs(),
        help="worker processes for extraction and for cross-validation folds (default: 2, or 1 on a "
        "one-core machine; -1: all cores). On one machine the results do not depend on it",
    )


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """Which serving model answers audio, and how much of a long song it hears (``genre predict``,
    ``genre catalog``)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="any MLflow model URI of a registered serving model")
    which.add_argument("--run-id", help="a training run: its logged model, served the same way")
    parser.add_argument("--name", default=settings.MODEL_NAME, help="registered model (default source)")
    parser.add_argument("--alias", default=settings.CHAMPION, help="alias of --name")
    parser.add_argument(
        "--full",
        action="store_true",
        help="analyse every window of a long song (default: 90 s of windows spread over all of it)",
    )


def add_batch_flags(parser: argparse.ArgumentParser) -> None:
    """The options every batch command shares (extract, score), with the exit codes of ``batch_status``."""
    parser.add_argument("--mlflow", action="store_true", help="record the batch as an MLflow run")
    parser.add_argument("--strict", action="store_true", help="exit with status 3 if any item failed")


def batch_status(done: int, failed: int, *, strict: bool) -> int:
    """A batch's exit code: 1 if nothing came through, 3 if something failed under --strict, else 0."""
    if done == 0:
        return 1
    return 3 if failed and strict else 0


def add_data(
    parser: argparse.ArgumentParser,
    *,
    folds: int = 10,
    features: str = "gtzan57",
    data: str = EMBEDDED,
    windows: bool | None = True,
) -> None:
    parser.add_argument(
        "--data",
        default=data,
        help=f"'{GTZAN_MUSICNN}' (musicnn's taggrams of GTZAN, shipped), 'embedded' (synthetic audio), a "
        "GTZAN-schema CSV, an audio folder, musicnn taggrams (.npz or a folder of them), or several of these "
        f"joined by track, comma-separated (default {data})",
    )
    parser.add_argument(
        "--features",
        default=features,
        help="feature sets the model is given: gtzan57 (the 57 GTZAN features), musicnn (musicnn's tags) "
        f"or both (default {features})",
    )
    parser.add_argument(
        "--seed", type=whole_number, default=0, help="seed of splits, network and embedded data"
    )
    parser.add_argument("--folds", type=whole_number, default=folds, help="cross-validation folds")
    add_windows(parser, default=windows)
    add_jobs(parser)


def parse_value(text: str) -> object:
    """A parameter value read as YAML, so ``10`` is a number and ``distance`` text.

    A whole float becomes an int: MLproject's float parameters may arrive as ``"300.0"``, and integer
    parameters (``epochs``) reject floats, while real-valued ones accept ints.
    """
    value = yaml.safe_load(text)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def parse_param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` for ``--set``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), parse_value(value)


def optional_seconds(text: str) -> float | None:
    """A number, or nothing for ``0``, ``none`` or an empty string (MLproject cannot pass a null)."""
    if text.strip().lower() in {"", "0", "0.0", "none", "null"}:
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or none, got {text!r}") from None


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
