"""The catalog's genres written into the files' tags, and the tags genre wrote put back as they were.

``write_tags`` goes through the catalog's answered, confident rows under the roots and writes each
genre with ``genre.library.tags.write_genre`` (atomic, safe, never into read-only or outside files).
What the tag was before the first write is committed to the catalog *before* the file is written, so a
process killed between the two can still restore it; after the write the row gets the file's new size,
time and digest, so the next scan does not classify it again. A file that changed on disk since it
was catalogued is left alone (its answer may be stale: scan it again).

``restore_tags`` puts back the recorded tags, exactly, and forgets them. A file whose genre is no
longer the one genre wrote (someone retagged it) is left alone unless ``overwrite``.

Both yield one ``TagOutcome`` per file considered, and with ``pretend`` only say what they would do.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from genre.library.scan import file_digest
from genre.library.store import Catalog
from genre.library.tags import TagError, genre_name, inside, plan_genre, restore, snapshot, write_genre

__all__ = ["TagOutcome", "restore_tags", "write_tags"]


@dataclass(frozen=True)
class TagOutcome:
    """What happened to one file's tag.

    ``action`` is ``write``, ``restore`` (done, or would be with ``pretend``), ``keep`` (another genre
    is there and overwriting was not asked for), ``same`` (nothing to change), or ``refused`` (``detail``
    says why: read-only, outside the roots, changed since, ...).
    """

    path: str
    action: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    detail: str | None = None


def write_tags(
    catalog: Catalog, roots: Sequence[str], *, overwrite: bool = False, pretend: bool = False
) -> Iterator[TagOutcome]:
    """Write each confident answer under ``roots`` (real paths) into its file's genre tag."""
    rows = catalog.rows("missing = 0 AND error IS NULL AND genre IS NOT NULL AND unsure = 0")
    for row in rows:
        if not inside(row["path"], roots):
            continue
        path, genre = row["path"], genre_name(row["genre"])
        try:
            _unchanged_since_scan(row)
            change = plan_genre(path, genre, roots=roots, overwrite=overwrite)
            if change.action == "write" and not pretend:
                catalog.intend_write(path, previous=change.previous, genre=genre)
                write_genre(path, genre, roots=roots, overwrite=overwrite)
                _note(catalog, path, genre_tag=genre)
        except TagError as exc:
            yield TagOutcome(path, "refused", detail=exc.detail)
            continue
        yield TagOutcome(path, change.action, change.before, change.after)


def restore_tags(
    catalog: Catalog, roots: Sequence[str] | None = None, *, overwrite: bool = False, pretend: bool = False
) -> Iterator[TagOutcome]:
    """Put back the tag each file had before genre first wrote it (under ``roots``, or everywhere)."""
    for row in catalog.rows("previous_tag IS NOT NULL"):
        path = row["path"]
        if roots is not None and not inside(path, roots):
            continue
        previous = json.loads(row["previous_tag"])
        # Without roots, a file may be written only where the catalog found it, through no new link.
        allowed = list(roots) if roots is not None else [os.path.dirname(path)]
        try:
            current = snapshot(path)
            before, after = _genres(current), _genres(previous)
            if current == previous:
                if not pretend:
                    _note(catalog, path, genre_tag=_joined(after), restored=True)
                yield TagOutcome(path, "same", before, after)
                continue
            if before != (row["written_genre"],) and not overwrite:
                raise TagError(
                    f"its genre is now {_joined(before) or 'none'}, not the {row['written_genre']} genre "
                    "wrote: someone changed it since; left alone (--overwrite restores anyway)",
                    kind="changed",
                    subject=path,
                )
            if not pretend:
                restore(path, previous, roots=allowed)
                _note(catalog, path, genre_tag=_joined(after), restored=True)
        except TagError as exc:
            yield TagOutcome(path, "refused", detail=exc.detail)
            continue
        yield TagOutcome(path, "restore", before, after)


def _unchanged_since_scan(row: sqlite3.Row) -> None:
    try:
        status = os.stat(row["path"])
    except OSError as exc:
        raise TagError(
            f"cannot read the file ({exc.strerror})", kind="unreadable", subject=row["path"]
        ) from None
    if (status.st_size, status.st_mtime_ns) != (row["size"], row["mtime_ns"]):
        raise TagError(
            "the file changed since it was catalogued; scan it again before writing its tag",
            kind="changed",
            subject=row["path"],
        )


def _note(catalog: Catalog, path: str, *, genre_tag: str | None, restored: bool = False) -> None:
    """The file's new size, time and digest in its row, so a rescan skips it."""
    status = os.stat(path)
    catalog.wrote(
        path,
        size=status.st_size,
        mtime_ns=status.st_mtime_ns,
        digest=file_digest(path),
        genre_tag=genre_tag,
        restored=restored,
    )


def _genres(recorded: dict) -> tuple[str, ...]:
    """The genres a ``snapshot`` holds, as ``read_tag`` gives them."""
    fields = recorded["fields"]
    if "TCON" in fields:
        return tuple(fields["TCON"]["text"])
    return tuple(next(iter(fields.values()), ()))


def _joined(genres: Sequence[str]) -> str | None:
    return "; ".join(genres) or None
