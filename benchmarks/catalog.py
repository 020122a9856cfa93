"""``genre catalog`` on a generated library: files per minute, memory, rescans, tag writes and restores,
against ``genre predict`` over the same files.

Usage (in a folder whose tracking store has a champion, e.g. after ``genre main``)::

    python benchmarks/catalog.py [--files 300] [--jobs 2] [--rescan-files 10000] [--work DIR] [--json OUT]

The library: ``--files`` songs made of the shared GTZAN clips (``$GENRE_SHARED_DIR/data/gtzan/audio``, or
``../shared`` beside the repository) put end to end in a random order, of lengths cycling through 30 s,
1, 2, 4 and 8 min, in formats cycling through MP3, FLAC, OGG Vorbis, M4A (AAC, through PyAV) and WAV, at
the clips' 22,050 Hz in mono, in ten folders. Generating it is not timed.

Measured, each as a whole command (``genre ...`` in a child process, as a user runs it), wall time:

* ``genre catalog LIB --jobs N`` on a new catalog: files per minute, and the memory of its process tree
  (the command and its workers, resident set sampled every 0.5 s) against the files done so far, so
  that memory flat in the number of files shows as flat;
* the same command again (an unchanged library);
* ``genre catalog LIB --write-tags --min-confidence 0`` and ``genre catalog --restore-tags LIB``: writing
  and restoring every file's tag (the first includes an unchanged rescan: its time beyond the rescan's
  is the writing);
* ``genre predict LIB --jobs N``: the same files answered once, for the per-file cost;
* last, a rescan of ``--rescan-files`` unchanged files: the library's files hard-linked under more
  folders, their rows copied into the catalog as a scan would have left them (a rescan reads only the
  walk and each file's status, so what the links share does not matter).

Prints JSON, then a markdown table. The load averages before and after are in the JSON: other jobs may
share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GENRE_SHARED_DIR", ROOT.parent / "shared"))
CLIPS = SHARED / "data" / "gtzan" / "audio"
LENGTHS = (30, 60, 120, 240, 480)
SUFFIXES = (".mp3", ".flac", ".ogg", ".m4a", ".wav")
SR = 22050


def make_library(folder: Path, files: int, seed: int = 0) -> dict[str, float]:
    """Write the library; return seconds of audio per format."""
    sys.path.insert(0, str(ROOT))
    from tests.library.audio_files import write_audio

    clips = [sf.read(path, dtype="float32")[0] for path in sorted(CLIPS.glob("*/*.wav"))]
    if not clips:
        raise SystemExit(f"no shared clips under {CLIPS} (set GENRE_SHARED_DIR)")
    rng = random.Random(seed)
    seconds: dict[str, float] = {}
    for i in range(files):
        length, suffix = LENGTHS[i % len(LENGTHS)], SUFFIXES[(i // len(LENGTHS)) % len(SUFFIXES)]
        parts, total = [], 0
        while total < length * SR:
            clip = rng.choice(clips)
            parts.append(clip)
            total += len(clip)
        y = np.concatenate(parts)[: length * SR]
        write_audio(folder / f"folder{i % 10}" / f"song{i:04d}{suffix}", y[:, None], SR)
        seconds[suffix] = seconds.get(suffix, 0.0) + length
    return seconds


class TreeMemory:
    """Peak and sampled resident memory of a process and its descendants (Linux /proc)."""

    def __init__(self, pid: int, db: Path | None = None) -> None:
        self.pid, self.db = pid, db
        self.samples: list[tuple[float, int, float]] = []  # (seconds, rows in the catalog, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max((mib for _, _, mib in self.samples), default=0.0)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            mib = sum(_rss(pid) for pid in _tree(self.pid)) / 2**20
            self.samples.append((time.monotonic() - self._start, _rows(self.db), mib))


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rows(db: Path | None) -> int:
    if db is None or not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return 0


def run(args: list[str], *, cwd: Path, db: Path | None = None) -> tuple[float, str, TreeMemory]:
    """Run ``genre args`` to the end; its wall time, its output and its memory."""
    genre = shutil.which("genre", path=str(Path(sys.executable).parent)) or "genre"
    start = time.monotonic()
    process = subprocess.Popen(
        [genre, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    memory = TreeMemory(process.pid, db)
    out, err = process.communicate()
    memory.stop()
    seconds = time.monotonic() - start
    if process.returncode not in (0, 3):
        raise SystemExit(f"genre {' '.join(args)} failed ({process.returncode}):\n{err[-3000:]}")
    return seconds, out, memory


def scan_seconds(out: str) -> float:
    """The scan's own time, from the line ``... newly missing; X s``."""
    line = next(line for line in out.splitlines() if "newly missing;" in line)
    return float(line.rsplit(";", 1)[1].split()[0])


def grow(library: Path, db: Path, target: int) -> Path:
    """A library of ``target`` files: ``library``'s files hard-linked under more folders, their rows
    copied with the new paths (as a scan would leave them)."""
    big = library.parent / f"{library.name}-{target}"
    shutil.rmtree(big, ignore_errors=True)
    files = sorted(p for p in library.rglob("*") if p.is_file())
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        rows = {row["path"]: dict(row) for row in connection.execute("SELECT * FROM files")}
        made = 0
        copy = 0
        while made < target:
            for path in files:
                if made == target:
                    break
                link = big / f"copy{copy}" / path.relative_to(library)
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, link)
                row = {**rows[str(path)], "path": str(link)}
                row.pop("id")
                connection.execute(
                    f"INSERT OR REPLACE INTO files ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
                made += 1
            copy += 1
    return big


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rescan-files", type=int, default=10_000)
    parser.add_argument("--work", type=Path, help="where the library goes (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    here = Path.cwd()
    work = args.work or Path(tempfile.mkdtemp(prefix="genre-catalog-bench-"))
    library, db = work / "library", work / "catalog.sqlite"
    shutil.rmtree(library, ignore_errors=True)
    for stale in work.glob("catalog.sqlite*"):
        stale.unlink()
    started = time.monotonic()
    audio = make_library(library, args.files)
    made = time.monotonic() - started
    size = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
    load_before = os.getloadavg()
    jobs = ["--jobs", str(args.jobs)]

    first, out, memory = run(["catalog", str(library), "--db", str(db), *jobs], cwd=here, db=db)
    first_scan = scan_seconds(out)
    again, out, _ = run(["catalog", str(library), "--db", str(db)], cwd=here)
    again_scan = scan_seconds(out)
    write, out, _ = run(
        ["catalog", str(library), "--db", str(db), "--write-tags", "--min-confidence", "0"], cwd=here
    )
    written = int(out.split("tags: ", 1)[1].split()[0]) if "tags: " in out else 0
    restore, out, _ = run(["catalog", "--restore-tags", str(library), "--db", str(db)], cwd=here)
    restored = int(out.split("tags: ", 1)[1].split()[0]) if "tags: " in out else 0
    predict, _, predict_memory = run(["predict", str(library), *jobs], cwd=here)
    # Last: hard links make the library's files refuse tag writes (a write would split the links).
    big = grow(library, db, args.rescan_files)
    big_seconds, out, _ = run(["catalog", str(big), "--db", str(db)], cwd=here)
    big_scan = scan_seconds(out)
    shutil.rmtree(big)
    with sqlite3.connect(db) as connection:
        errors = connection.execute(
            "SELECT COUNT(*) FROM files WHERE error IS NOT NULL AND path LIKE ?", (f"{library}/%",)
        ).fetchone()[0]
    quarters = []
    for share in (0.25, 0.5, 0.75, 1.0):
        done = [s for s in memory.samples if s[1] >= share * args.files]
        if done:
            quarters.append(
                {"files_done": done[0][1], "seconds": round(done[0][0], 1), "mib": round(done[0][2])}
            )
    figures = {
        "files": args.files,
        "jobs": args.jobs,
        "audio_minutes_by_format": {k: round(v / 60, 1) for k, v in audio.items()},
        "library_mib": round(size / 2**20),
        "generated_seconds": round(made, 1),
        "errors": errors,
        "catalog_seconds": round(first, 1),
        "catalog_scan_seconds": round(first_scan, 1),
        "files_per_minute": round(args.files / first * 60, 1),
        "catalog_seconds_per_file": round(first / args.files, 3),
        "memory_peak_mib": round(memory.peak),
        "memory_by_files_done": quarters,
        "rescan_seconds": round(again, 1),
        "rescan_scan_seconds": round(again_scan, 2),
        "rescan_files": args.rescan_files,
        "rescan_big_seconds": round(big_seconds, 1),
        "rescan_big_scan_seconds": round(big_scan, 2),
        "write_tags_seconds": round(write, 1),
        "write_tags_beyond_rescan_seconds": round(write - again, 1),
        "tags_written": written,
        "restore_tags_seconds": round(restore, 1),
        "tags_restored": restored,
        "predict_seconds": round(predict, 1),
        "predict_seconds_per_file": round(predict / args.files, 3),
        "predict_memory_peak_mib": round(predict_memory.peak),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print(table(figures))


def table(f: dict) -> str:
    """The figures as a markdown table."""
    minutes = sum(f["audio_minutes_by_format"].values())
    memory = ", ".join(f"{q['mib']} MiB after {q['files_done']}" for q in f["memory_by_files_done"])
    rows = [
        ("library", f"{f['files']} files, {f['library_mib']} MiB, {minutes:.0f} min of audio"),
        (
            f"`genre catalog` (new catalog, --jobs {f['jobs']})",
            f"{f['catalog_seconds']} s: {f['files_per_minute']} files/min, "
            f"{f['catalog_seconds_per_file']} s a file",
        ),
        (
            f"`genre predict` (same files, --jobs {f['jobs']})",
            f"{f['predict_seconds']} s: {f['predict_seconds_per_file']} s a file",
        ),
        ("memory of the catalog's processes", f"peak {f['memory_peak_mib']} MiB; {memory}"),
        (
            f"rescan, unchanged ({f['files']} files)",
            f"{f['rescan_seconds']} s (the scan itself {f['rescan_scan_seconds']} s)",
        ),
        (
            f"rescan, unchanged ({f['rescan_files']} files)",
            f"{f['rescan_big_seconds']} s (the scan itself {f['rescan_big_scan_seconds']} s)",
        ),
        (
            f"write tags ({f['tags_written']} files)",
            f"{f['write_tags_seconds']} s ({f['write_tags_beyond_rescan_seconds']} s more than an unchanged "
            "rescan)",
        ),
        (f"restore tags ({f['tags_restored']} files)", f"{f['restore_tags_seconds']} s"),
    ]
    return "\n".join(["| measure | figure |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


if __name__ == "__main__":
    main()
