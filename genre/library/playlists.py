"""Playlists from the catalog: one M3U8 per genre, and ``unsure.m3u8`` for the answers below the
confidence asked for.

Entries are paths relative to the playlists' folder, so the folder and the music can move together (a
player resolves them from the playlist's own place), with an ``#EXTINF`` line giving the length and the
file's name. Each playlist is written to a temporary file and renamed over the old one, so a player
never reads half a playlist. Playlists of genres that no longer have songs are left as they are: the
folder may hold the user's own playlists, and nothing here deletes files.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from genre.library.store import Catalog
from genre.library.tags import genre_name, inside

__all__ = ["UNSURE", "write_playlists"]

#: The playlist of answers below the confidence asked for.
UNSURE = "unsure"


def write_playlists(
    catalog: Catalog, folder: str | os.PathLike[str], roots: Sequence[str] | None = None
) -> dict[str, int]:
    """Write the playlists of the catalog's present, answered files (under ``roots`` when given) into
    ``folder``; return each playlist's file name and its number of songs."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    base = os.path.realpath(target)
    lists: dict[str, list[str]] = defaultdict(list)
    lists[UNSURE] = []
    for row in catalog.rows("missing = 0 AND error IS NULL AND genre IS NOT NULL"):
        if roots is not None and not inside(row["path"], roots):
            continue
        name = UNSURE if row["unsure"] else genre_name(row["genre"])
        seconds = -1 if row["duration"] is None else round(row["duration"])
        title = os.path.splitext(os.path.basename(row["path"]))[0]
        lists[name].append(f"#EXTINF:{seconds},{title}\n{os.path.relpath(row['path'], base)}\n")
    written = {}
    for name, entries in sorted(lists.items()):
        filename = f"{_safe(name)}.m3u8"
        _replace(target / filename, "#EXTM3U\n" + "".join(entries))
        written[filename] = len(entries)
    return written


def _safe(name: str) -> str:
    """A genre as a file name: no folder separators, not hidden."""
    return name.replace("/", "-").replace(os.sep, "-").lstrip(".") or "genre"


def _replace(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
