"""Genre tags in audio files: read them, write one without risking the file, and put back what was there.

Tags go where music players look: ID3v2 ``TCON`` (MP3, and WAV/AIFF with an ID3 chunk), Vorbis comments'
``GENRE`` (FLAC, OGG Vorbis, Opus) and MP4's ``©gen`` (M4A; mutagen reads iTunes' old numeric ``gnre``
as ``©gen`` too). mutagen reads and writes them; nothing here parses a tag by hand.

A write never leaves a damaged file, whenever the process stops: the file is copied to a hidden
temporary file in the same folder, the copy is tagged, flushed to disk (fsync), given the original's
permissions and renamed over the original (``os.replace``, atomic within a file system), then the folder
is flushed. Killed before the rename, the original is untouched; after it, the new file is whole. A
copy left by a killed write is removed the next time that file is written. mutagen rewrites only the tag
blocks: the audio frames are copied byte for byte (tests decode every format before and after).

Writes are refused, with a ``TagError`` naming why, for a file that is read-only (no write permission
bit, whoever runs this), in a read-only folder, outside the roots the user named (a symlink is followed
to its target, and the target must be inside), not a regular file, hard-linked elsewhere (replacing it
would silently split the links), or changed by someone else while the copy was being tagged.

``snapshot`` records a file's genre fields exactly (their raw values, the ID3 text encoding, and whether
the file had a tag block at all), so ``restore`` can put back the previous tag, or its absence.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mutagen
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import TCON
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from genre.errors import GenreError

__all__ = [
    "TEMP_SUFFIX",
    "TagChange",
    "TagError",
    "genre_name",
    "inside",
    "plan_genre",
    "read_tag",
    "restore",
    "snapshot",
    "write_genre",
]

#: Ends the name of the hidden copy a write tags before renaming it over the file (``.<name>.<random>``
#: before it). The catalog's walk skips such files.
TEMP_SUFFIX = ".genre-tmp"

#: mutagen's file type -> (the format the catalog records, the tag family that holds its genre).
_FORMATS: dict[type, tuple[str, str]] = {
    MP3: ("mp3", "id3"),
    WAVE: ("wav", "id3"),
    AIFF: ("aiff", "id3"),
    FLAC: ("flac", "vorbis"),
    OggVorbis: ("ogg", "vorbis"),
    OggOpus: ("opus", "vorbis"),
    OggFLAC: ("ogg-flac", "vorbis"),
    MP4: ("m4a", "mp4"),
}
_MP4_GENRE = "\xa9gen"
#: How a model's labels are spelled in a tag: the ID3v1 list's spelling where it has the genre.
_SPELLING = {"hiphop": "Hip-Hop"}


class TagError(GenreError):
    """A file's tag cannot be read or must not be written; ``kind`` says why (``unsupported``,
    ``unreadable``, ``read_only``, ``outside_roots``, ``not_regular``, ``linked``, ``changed``)."""

    default_kind = "tag"


@dataclass(frozen=True)
class TagChange:
    """What a write does (or did) to one file.

    Attributes
    ----------
    path : str
        The file written (a symlink's target).
    format : str
        ``mp3``, ``wav``, ``aiff``, ``flac``, ``ogg``, ``opus``, ``ogg-flac`` or ``m4a``.
    before : tuple of str
        The genres the file had (empty: none).
    after : tuple of str
        The genres it has afterwards (``before`` when kept).
    action : str
        ``write`` (the genre is or would be written), ``keep`` (another genre is there and overwriting
        was not asked for) or ``same`` (the file already says it).
    previous : dict
        ``snapshot`` of the file before the write, for ``restore``.
    """

    path: str
    format: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    action: str
    previous: dict[str, Any]


def genre_name(label: str) -> str:
    """A model's label as a tag spells it: ``hiphop`` -> ``Hip-Hop``, ``blues`` -> ``Blues``."""
    return _SPELLING.get(label.lower(), label[:1].upper() + label[1:])


def inside(path: str, roots: Sequence[str]) -> bool:
    """Whether the real ``path`` lies within one of the real ``roots`` (``os.path.realpath`` of each)."""
    return any(os.path.commonpath([path, root]) == root for root in roots)


def read_tag(path: str | os.PathLike[str]) -> tuple[str, tuple[str, ...]]:
    """The file's format and the genres its tag holds (empty when it has none).

    Raises
    ------
    TagError
        ``unsupported`` for a file whose tags mutagen cannot hold a genre in, ``unreadable`` for one
        it cannot parse.
    """
    audio, fmt, family = _open(str(path))
    return fmt, _genres(audio.tags, family)


def snapshot(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's genre fields exactly as they are, as JSON-ready data ``restore`` puts back."""
    audio, fmt, family = _open(str(path))
    return _snapshot(audio, fmt, family)


def plan_genre(
    path: str | os.PathLike[str], genre: str, *, roots: Sequence[str], overwrite: bool = False
) -> TagChange:
    """What ``write_genre`` would do, after every check it makes; nothing is written (``--pretend``)."""
    real, _ = _writable(str(path), roots)
    audio, fmt, family = _open(real)
    before = _genres(audio.tags, family)
    if before == (genre,):
        action = "same"
    elif before and not overwrite:
        action = "keep"
    else:
        action = "write"
    after = (genre,) if action == "write" else before
    return TagChange(real, fmt, before, after, action, _snapshot(audio, fmt, family))


def write_genre(
    path: str | os.PathLike[str], genre: str, *, roots: Sequence[str], overwrite: bool = False
) -> TagChange:
    """Set the file's genre to ``genre`` alone, atomically, unless it holds another and not ``overwrite``.

    Parameters
    ----------
    path : path-like
        The file; a symlink is followed, and its target must be inside ``roots``.
    genre : str
        The genre as it should appear (see ``genre_name``).
    roots : sequence of str
        Real paths of the folders writes may go to.
    overwrite : bool, default False
        Replace a genre the file already has.

    Returns
    -------
    TagChange
        ``action`` is ``write`` when the file was written.

    Raises
    ------
    TagError
        The file must not or cannot be written (see the module's docstring).
    """
    change = plan_genre(path, genre, roots=roots, overwrite=overwrite)
    if change.action == "write":
        _atomic_edit(change.path, roots, lambda audio, family: _set_genre(audio, family, genre))
    return change


def restore(
    path: str | os.PathLike[str], previous: dict[str, Any], *, roots: Sequence[str]
) -> dict[str, Any]:
    """Put the genre fields recorded by ``snapshot`` back, exactly: their values, or their absence.

    Only the genre fields change; other tags added since are kept. Returns the snapshot the file had
    before the restore. Raises ``TagError`` as ``write_genre`` does.
    """
    real, _ = _writable(str(path), roots)
    audio, fmt, family = _open(real)
    if fmt != previous.get("format"):
        raise TagError(
            f"the file is now {fmt}, but its recorded tag is of a {previous.get('format')} file; "
            "not restored",
            kind="changed",
            subject=real,
        )
    current = _snapshot(audio, fmt, family)
    if current != previous:
        _atomic_edit(real, roots, lambda edited, fam: _put_back(edited, fam, previous))
    return current


# --- reading ------------------------------------------------------------------------------------


def _open(path: str, kind: type | None = None) -> tuple[Any, str, str]:
    """The file through mutagen (as ``kind`` when given: a copy is opened as its original's type)."""
    try:
        audio = kind(path) if kind is not None else mutagen.File(path)
    except (mutagen.MutagenError, OSError) as exc:
        raise TagError(f"cannot read its tags ({_reason(exc)})", kind="unreadable", subject=path) from None
    if audio is None or type(audio) not in _FORMATS:
        found = "not a format mutagen recognises" if audio is None else f"a {type(audio).__name__} file"
        raise TagError(
            f"{found}; genre tags are written to MP3, WAV, AIFF, FLAC, OGG, Opus and M4A files",
            kind="unsupported",
            subject=path,
        )
    fmt, family = _FORMATS[type(audio)]
    return audio, fmt, family


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _genres(tags: Any, family: str) -> tuple[str, ...]:
    if tags is None:
        return ()
    if family == "id3":
        frame = tags.get("TCON")
        return tuple(frame.genres) if frame is not None else ()
    if family == "vorbis":
        return tuple(tags.get("genre", []))
    return tuple(tags.get(_MP4_GENRE, []))


def _snapshot(audio: Any, fmt: str, family: str) -> dict[str, Any]:
    tags = audio.tags
    fields: dict[str, Any] = {}
    if tags is not None:
        if family == "id3" and "TCON" in tags:
            fields["TCON"] = {"encoding": int(tags["TCON"].encoding), "text": list(tags["TCON"].text)}
        elif family == "vorbis" and "genre" in tags:
            fields["genre"] = list(tags["genre"])
        elif family == "mp4" and _MP4_GENRE in tags:
            fields[_MP4_GENRE] = list(tags[_MP4_GENRE])
    return {"format": fmt, "tags": tags is not None, "fields": fields}


# --- writing ------------------------------------------------------------------------------------


def _set_genre(audio: Any, family: str, genre: str) -> bool:
    """Set the genre fields to ``genre`` alone; False: the tag block stays (``_atomic_edit``)."""
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if family == "id3":
        tags.setall("TCON", [TCON(encoding=3, text=[genre])])
    elif family == "vorbis":
        tags["genre"] = [genre]
    else:
        tags[_MP4_GENRE] = [genre]
    return False


def _put_back(audio: Any, family: str, previous: dict[str, Any]) -> bool:
    """Set the genre fields to ``previous``'s; True when the file had no tag block and the block is now
    empty, so it is removed rather than saved."""
    fields = previous["fields"]
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if family == "id3":
        tags.delall("TCON")
        if "TCON" in fields:
            tags.add(TCON(encoding=fields["TCON"]["encoding"], text=fields["TCON"]["text"]))
    elif family == "vorbis":
        if "genre" in tags:
            del tags["genre"]
        if "genre" in fields:
            tags["genre"] = fields["genre"]
    else:
        tags.pop(_MP4_GENRE, None)
        if _MP4_GENRE in fields:
            tags[_MP4_GENRE] = fields[_MP4_GENRE]
    return not previous["tags"] and len(tags) == 0


def _writable(path: str, roots: Sequence[str]) -> tuple[str, os.stat_result]:
    """The real path to write for ``path``, and its status, or a ``TagError`` saying why not."""
    real = os.path.realpath(path)
    if not inside(real, roots):
        via = f" (a link to {real})" if real != os.path.abspath(path) else ""
        raise TagError(
            f"outside the folders given{via}: tags are written only under " + ", ".join(roots),
            kind="outside_roots",
            subject=path,
        )
    try:
        status = os.lstat(real)
    except OSError as exc:
        raise TagError(f"cannot read the file ({exc.strerror})", kind="unreadable", subject=path) from None
    if not stat.S_ISREG(status.st_mode):
        raise TagError("not a regular file; left alone", kind="not_regular", subject=path)
    if not status.st_mode & 0o222 or not os.access(real, os.W_OK):
        raise TagError("the file is read-only; left alone", kind="read_only", subject=path)
    if not os.access(os.path.dirname(real), os.W_OK | os.X_OK):
        raise TagError(
            "its folder is read-only (a tag is written to a copy beside the file); left alone",
            kind="read_only",
            subject=path,
        )
    if status.st_nlink > 1:
        raise TagError(
            f"the file has {status.st_nlink} hard links; replacing it would split them; left alone",
            kind="linked",
            subject=path,
        )
    return real, status


def _atomic_edit(path: str, roots: Sequence[str], edit: Callable[[Any, str], bool]) -> None:
    """Apply ``edit(audio, family)`` to a copy of ``path`` and rename the saved copy over it; the copy's
    tag block is removed instead of saved when ``edit`` returns True."""
    real, before = _writable(path, roots)
    folder, name = os.path.split(real)
    _remove_leftovers(folder, name)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=TEMP_SUFFIX)
    try:
        with open(real, "rb") as source, os.fdopen(fd, "wb") as copy:
            shutil.copyfileobj(source, copy, 2**20)
        original, _, _ = _open(real)
        audio, _, family = _open(temp, type(original))
        _save(audio, family, remove=edit(audio, family))
        os.chmod(temp, stat.S_IMODE(before.st_mode))
        _same_owner(temp, before)
        with open(temp, "rb+") as saved:
            os.fsync(saved.fileno())
        now = os.lstat(real)
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            raise TagError(
                "the file changed while its tag was being written; left as it is now",
                kind="changed",
                subject=path,
            )
        os.replace(temp, real)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _sync_folder(folder)


def _save(audio: Any, family: str, *, remove: bool) -> None:
    try:
        if remove:
            audio.delete()
        elif family == "id3":
            # Keep the tag's ID3 version (2.3 stays 2.3, which older players need); new tags are 2.4.
            version = audio.tags.version[1] if audio.tags.version[1] in (3, 4) else 4
            audio.save(v2_version=version)
        else:
            audio.save()
    except (mutagen.MutagenError, OSError) as exc:
        raise TagError(
            f"cannot write its tag ({_reason(exc)})", kind="unreadable", subject=audio.filename
        ) from None


def _same_owner(path: str, status: os.stat_result) -> None:
    try:
        os.chown(path, status.st_uid, status.st_gid)
    except PermissionError:
        pass  # not ours to give away: the copy keeps our ownership, as any editor's save would


def _remove_leftovers(folder: str, name: str) -> None:
    """Delete copies of ``name`` left by writes that were killed before their rename."""
    prefix = f".{name}."
    with os.scandir(folder) as entries:
        for entry in entries:
            if (
                entry.name.startswith(prefix)
                and entry.name.endswith(TEMP_SUFFIX)
                and entry.is_file(follow_symlinks=False)
            ):
                Path(entry.path).unlink(missing_ok=True)


def _sync_folder(folder: str) -> None:
    """Flush the rename to disk, so a power cut after ``write_genre`` returns keeps the new file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
