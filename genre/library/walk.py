"""Walking a music library: every audio file under the folders given, once, and what could not be walked.

A library is whatever people made of their disk: links to other drives, links that point back up the
tree, folders they cannot read, names in old encodings. None of these stops a walk. A symlink is
followed and its target is what is listed, once however many links lead to it (so the catalog has one
row per file and a tag is written once); a link back into a folder already being walked (a loop), a
broken link and a folder that cannot be listed are reported as ``Problem`` and skipped. Files are taken
by their extension (``LIBRARY_EXTENSIONS``); a file named on its own is always taken.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["LIBRARY_EXTENSIONS", "Found", "Problem", "display_path", "walk"]

#: Audio files a library holds that genre decodes (libsndfile; PyAV for M4A and AAC).
LIBRARY_EXTENSIONS: tuple[str, ...] = (
    ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wav", ".aiff", ".aif", ".au",
)  # fmt: skip


@dataclass(frozen=True)
class Found:
    """An audio file: its real path (links resolved) and its status (``os.stat`` of the target)."""

    path: str
    status: os.stat_result


@dataclass(frozen=True)
class Problem:
    """Something under a root that was not walked: ``path`` and why, in words (``reason``);
    ``unwalked`` when it is a folder (or root) whose files, if any, were not listed."""

    path: str
    reason: str
    unwalked: bool = False


def display_path(path: str) -> str:
    """``path`` as text that is always valid UTF-8: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def walk(roots: Sequence[str]) -> Iterator[Found | Problem]:
    """Every audio file under ``roots`` (files or folders, recursively), each real path once, in name
    order within each folder; and a ``Problem`` for each loop, broken link, unreadable folder or missing
    root."""
    seen_files: set[str] = set()
    seen_folders: set[tuple[int, int]] = set()
    for root in roots:
        real = os.path.realpath(root)
        try:
            status = os.stat(real)
        except OSError as exc:
            yield Problem(display_path(root), f"cannot be read ({exc.strerror})", unwalked=True)
            continue
        if stat.S_ISDIR(status.st_mode):
            yield from _folder(real, status, seen_files, seen_folders)
        elif stat.S_ISREG(status.st_mode):
            if real not in seen_files:
                seen_files.add(real)
                yield Found(real, status)
        else:
            yield Problem(display_path(root), "neither a file nor a folder")


def _folder(
    top: str, status: os.stat_result, seen_files: set[str], seen_folders: set[tuple[int, int]]
) -> Iterator[Found | Problem]:
    """Depth first, iteratively (a deep tree cannot exhaust the stack), folders entered once each."""
    pending = [(top, status)]
    seen_folders.add((status.st_dev, status.st_ino))
    while pending:
        folder, _ = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            yield Problem(display_path(folder), f"folder cannot be read ({exc.strerror}); skipped", True)
            continue
        subfolders = []
        for entry in entries:
            found = _entry(entry, seen_files, seen_folders)
            if isinstance(found, tuple):
                subfolders.append(found)
            elif found is not None:
                yield found
        pending.extend(reversed(subfolders))  # so the first subfolder by name is walked first


def _entry(
    entry: os.DirEntry[str], seen_files: set[str], seen_folders: set[tuple[int, int]]
) -> Found | Problem | tuple[str, os.stat_result] | None:
    """What one folder entry adds: an audio file, a folder to walk, a problem, or nothing."""
    path = entry.path
    link = entry.is_symlink()
    real = os.path.realpath(path) if link else path
    try:
        status = os.stat(real)
    except OSError as exc:
        if link:
            return Problem(display_path(path), f"broken link to {display_path(os.readlink(path))}; skipped")
        return Problem(display_path(path), f"cannot be read ({exc.strerror}); skipped")
    if stat.S_ISDIR(status.st_mode):
        key = (status.st_dev, status.st_ino)
        if key in seen_folders:
            if link:
                return Problem(
                    display_path(path),
                    f"link to {display_path(real)}, a folder already walked (a loop, or a second way "
                    "in); skipped",
                )
            return None
        seen_folders.add(key)
        return real, status
    if not stat.S_ISREG(status.st_mode) or os.path.splitext(entry.name)[1].lower() not in LIBRARY_EXTENSIONS:
        return None
    if real in seen_files:
        return None
    seen_files.add(real)
    return Found(real, status)
