"""The catalog's database: one SQLite file, one row per audio file, a schema that migrates forward.

SQLite because a catalog must survive being killed: every finished file is its own committed
transaction, in write-ahead-log mode (``synchronous=NORMAL``: a committed row survives the process
being killed; only a power cut can lose the last few), and ``path`` is unique, so a rerun updates rows
and never duplicates one. ``PRAGMA user_version`` holds the schema's version; ``MIGRATIONS`` brings an
older catalog up to date in one transaction per step, and a catalog from a newer genre is refused
rather than damaged.

A row holds what the file was (size, modification time, a SHA-256 of its bytes, duration, format, the
genre its tag had), what the model said (genre, its probability, the top three, the share of windows
that agree, which model and version), or why there is no answer (``error``); whether the file has gone
(``missing``) and whether the answer is below the confidence asked for (``unsure``); and, once genre has
written a tag, the tag as it was before (``previous_tag``, for ``--restore-tags``) and what was written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from genre.errors import GenreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Catalog", "CatalogError", "Entry", "model_label", "now"]

#: Each step takes the schema from version i to i + 1 (``PRAGMA user_version``).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER,
        mtime_ns INTEGER,
        digest TEXT,
        duration REAL,
        format TEXT,
        genre_tag TEXT,
        genre TEXT,
        confidence REAL,
        top3 TEXT,
        agreement REAL,
        windows INTEGER,
        model_name TEXT,
        model_version TEXT,
        unsure INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        missing INTEGER NOT NULL DEFAULT 0,
        analysed_at TEXT NOT NULL,
        previous_tag TEXT,
        written_genre TEXT,
        written_at TEXT
    );
    CREATE INDEX files_digest ON files (digest);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class CatalogError(GenreError):
    """The catalog file cannot be used: not a SQLite database, written by a newer genre, or locked."""

    default_kind = "catalog"


@dataclass(frozen=True)
class Entry:
    """What a scan learnt about one file: a row of ``files`` without the tag-writing columns."""

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    digest: str | None = None
    duration: float | None = None
    format: str | None = None
    genre_tag: str | None = None
    genre: str | None = None
    confidence: float | None = None
    top3: str | None = None
    agreement: float | None = None
    windows: int | None = None
    model_name: str | None = None
    model_version: str | None = None
    unsure: int = 0
    error: str | None = None


_ENTRY_COLUMNS = tuple(Entry.__dataclass_fields__)


def model_label(name: str, version: str) -> str:
    """How a row's model is named to people: ``genre-classifier version 3``, or a URI as it is."""
    return f"{name} version {version}" if version.isdigit() else name


def now() -> str:
    """The time a row records: UTC, ISO 8601, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Catalog:
    """An open catalog; ``with Catalog(path) as catalog:`` closes it.

    Raises
    ------
    CatalogError
        The file is not a SQLite database, or holds a schema newer than ``SCHEMA_VERSION``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"not a usable catalog ({exc})", subject=self.path) from None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        found = self.version
        if found > SCHEMA_VERSION:
            raise CatalogError(
                f"schema version {found} was written by a newer genre (this one knows up to "
                f"{SCHEMA_VERSION}); upgrade genre to use this catalog",
                subject=self.path,
            )
        for version in range(found, SCHEMA_VERSION):
            with self.transaction():
                for statement in _statements(MIGRATIONS[version]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction: all of it is kept, or none of it (also when killed)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- what scans read and write ------------------------------------------------------------------

    def known(self) -> dict[str, sqlite3.Row]:
        """Every row's path -> its size, mtime, digest, model, error and missing flag: what a rescan
        compares the disk with, in one query."""
        query = "SELECT path, size, mtime_ns, digest, model_name, model_version, error, missing FROM files"
        return {row["path"]: row for row in self.db.execute(query)}

    def record(self, entry: Entry) -> None:
        """Insert or replace the scan's columns of ``entry.path``'s row, as one transaction; the file
        is present again (``missing`` = 0), and what genre wrote to its tag is kept."""
        self.record_many([entry])

    def record_many(self, entries: Sequence[Entry], *, missing: Iterable[str] = ()) -> None:
        """``record`` each entry, all in one transaction, and flag the paths in ``missing`` as missing."""
        columns = ", ".join(_ENTRY_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ENTRY_COLUMNS if c != "path")
        stamp = now()
        with self.transaction() as db:
            db.executemany(
                f"INSERT INTO files ({columns}, analysed_at, missing) "
                f"VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))}, ?, 0) "
                f"ON CONFLICT (path) DO UPDATE SET {updates}, analysed_at = excluded.analysed_at, "
                "missing = 0",
                [[*asdict(entry).values(), stamp] for entry in entries],
            )
            db.executemany("UPDATE files SET missing = 1 WHERE path = ?", [(path,) for path in missing])

    def touch(self, path: str, *, size: int, mtime_ns: int) -> None:
        """The file changed on disk (size or time) but not its bytes: keep its answer, note the stat."""
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, missing = 0 WHERE path = ?", (size, mtime_ns, path)
            )

    def mark_missing(self, paths: Iterable[str], *, present: bool = False) -> int:
        """Flag rows whose file has gone (or, with ``present``, is back without changes)."""
        with self.transaction() as db:
            cursor = db.executemany(
                "UPDATE files SET missing = ? WHERE path = ? AND missing = ?",
                [(int(not present), path, int(present)) for path in paths],
            )
            return cursor.rowcount

    def set_unsure(self, min_confidence: float) -> None:
        """Mark every answer below ``min_confidence`` ``unsure`` (and the others sure)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET unsure = (genre IS NOT NULL AND confidence < ?)", (float(min_confidence),)
            )

    # --- what tag writing, playlists and the summary read and write --------------------------------

    def rows(self, where: str = "1", params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows matching the SQL condition ``where`` (written by this package, never by a user), by path."""
        return self.db.execute(f"SELECT * FROM files WHERE {where} ORDER BY path", params).fetchall()

    def intend_write(self, path: str, *, previous: dict[str, Any] | None, genre: str) -> None:
        """Before a tag is written: what it was (kept from the first write on) and what is written."""
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET previous_tag = COALESCE(previous_tag, ?), written_genre = ? WHERE path = ?",
                (None if previous is None else json.dumps(previous), genre, path),
            )

    def wrote(
        self,
        path: str,
        *,
        size: int,
        mtime_ns: int,
        digest: str,
        genre_tag: str | None,
        restored: bool = False,
    ) -> None:
        """After a tag was written (or restored): the file's new stat and digest, so a rescan skips it."""
        cleared = ", previous_tag = NULL, written_genre = NULL, written_at = NULL" if restored else ""
        with self.transaction() as db:
            db.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, digest = ?, genre_tag = ?, "
                f"written_at = ?{cleared} WHERE path = ?",
                (size, mtime_ns, digest, genre_tag, None if restored else now(), path),
            )


def _statements(script: str) -> list[str]:
    """A migration's statements (they hold no semicolons of their own)."""
    return [part.strip() for part in script.split(";") if part.strip()]
