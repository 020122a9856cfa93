"""The embedded default dataset: ten synthetic classes of short music-like clips, made offline from a seed.

The project has to run end to end on a fresh machine with no download, so it writes its own small
labelled audio set, laid out like GTZAN's ``genres_original/<class>/<class>.<NNNNN>.wav``, from the class
recipes of ``genre.data.synthesis``.

Each clip's random generator comes from ``SeedSequence([seed, class index, clip index])``, so a clip is
byte-identical across runs and does not depend on how many other clips are generated.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from genre.data.schema import SAMPLE_RATE, WINDOW_STEP
from genre.data.synthesis import CLASSES, require_int, synthesize_clip

__all__ = ["CLASSES", "GENERATOR_VERSION", "MANIFEST_NAME", "generate_dataset"]

#: Bumped whenever a recipe or the synthesis changes, so cached datasets of an older version are rebuilt.
GENERATOR_VERSION = "genre.synthetic/2"
#: Written last into ``out_dir``; its presence with matching parameters marks a complete dataset.
MANIFEST_NAME = "MANIFEST.json"


def generate_dataset(
    out_dir: str | os.PathLike[str], *, seed: int = 0, clips_per_class: int = 8, windows_per_clip: int = 2
) -> Path:
    """Write the synthetic dataset under ``out_dir`` and return its ``genres_original``-style root.

    Each clip is ``windows_per_clip`` x 3 s (``WINDOW_STEP`` samples each) at ``SAMPLE_RATE``, written as
    16-bit mono WAV, so windowed extraction (Kaggle's layout) cuts it into exactly that many windows and
    track-grouped protocols have several rows per track. ``MANIFEST.json`` (parameters, generator version,
    files with sha256) is written last; when one with the same parameters and version already lists intact
    files, nothing is rewritten, which makes the call cheap to repeat. Otherwise the clips this generator
    owns (``<class>.<NNNNN>.wav`` in the class folders) are deleted and written afresh.

    Parameters
    ----------
    out_dir : str or path-like
        Folder to write into; created if missing.
    seed : int, default 0
        Non-negative seed; the same seed gives byte-identical files.
    clips_per_class : int, default 8
        Clips (tracks) per class; at least 2, so every class can appear on both sides of a split.
    windows_per_clip : int, default 2
        Clip length in 3-second windows; at least 1.

    Returns
    -------
    pathlib.Path
        ``out_dir / "genres_original"``, holding one folder of clips per class.

    Raises
    ------
    ConfigError
        If a parameter is out of range.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = generate_dataset(tmp, clips_per_class=2, windows_per_clip=1)
    ...     sorted(p.name for p in (root / "drone").iterdir())
    ['drone.00000.wav', 'drone.00001.wav']
    """
    require_int("seed", seed, minimum=0)
    require_int("clips_per_class", clips_per_class, minimum=2)
    require_int("windows_per_clip", windows_per_clip, minimum=1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "clips_per_class": int(clips_per_class),
        "windows_per_clip": int(windows_per_clip),
        "sample_rate": SAMPLE_RATE,
        "n_samples": windows_per_clip * WINDOW_STEP,
        "classes": list(CLASSES),
    }
    # One writer at a time: processes started together on an empty cache (Optuna workers, CI's first
    # job) would otherwise delete and rewrite each other's clips while another is already reading them.
    # The next one waits here, then finds the manifest complete.
    with open(out / ".lock", "a") as lock:  # "a": a rerun leaves every file as it was, mtime too
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _write_dataset(out, params, seed=seed, clips_per_class=clips_per_class)


def _write_dataset(out: Path, params: dict, *, seed: int, clips_per_class: int) -> Path:
    """``generate_dataset``'s work, under its lock: nothing when ``out`` holds an intact dataset of
    ``params``, else every clip written afresh and the manifest last."""
    root = out / "genres_original"
    manifest_path = out / MANIFEST_NAME
    previous = _read_manifest(manifest_path)
    if (
        previous is not None
        and {key: previous.get(key) for key in params} == params
        and _files_intact(root, previous.get("files"), expected=clips_per_class * len(CLASSES))
    ):
        return root
    manifest_path.unlink(missing_ok=True)

    files = []
    for class_index, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        # Clips an earlier, larger run left behind would otherwise be picked up as part of this dataset.
        for stale in (root / name).glob(f"{name}.[0-9][0-9][0-9][0-9][0-9].wav"):
            stale.unlink()
        for clip_index in range(clips_per_class):
            rng = np.random.default_rng(np.random.SeedSequence([seed, class_index, clip_index]))
            y = synthesize_clip(name, rng=rng, n_samples=params["n_samples"], sr=SAMPLE_RATE)
            buffer = io.BytesIO()
            sf.write(buffer, y, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            data = buffer.getvalue()
            relative = f"{name}/{name}.{clip_index:05d}.wav"
            (root / relative).write_bytes(data)
            files.append({"path": relative, "label": name, "sha256": hashlib.sha256(data).hexdigest()})

    partial = manifest_path.with_suffix(".json.partial")
    partial.write_text(json.dumps({**params, "files": files}, indent=1) + "\n")
    partial.replace(manifest_path)
    return root


def _read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``, or None when there is none or it cannot be parsed (then it is rebuilt)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _files_intact(root: Path, files: object, *, expected: int) -> bool:
    """True when ``files`` lists ``expected`` entries that all exist under ``root`` with their sha256."""
    if not isinstance(files, list) or len(files) != expected:
        return False
    try:
        return all(
            hashlib.sha256((root / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
            for entry in files
        )
    except (OSError, KeyError, TypeError, ValueError):
        return False
