"""Maintainer script: regenerate genre's shipped MSD_musicnn weights from the ``musicnn`` wheel's checkpoint.

genre ships the weights its NumPy forward pass reads (``genre/features/weights/MSD_musicnn.npz``, ISC,
notice beside it), so users never install the wheel or TensorFlow. This script is how that file was made
and how anyone can check it:

    pip install --no-deps musicnn==0.1.0      # its metadata pins numpy < 1.17; its code is never run
    python scripts/convert_musicnn_weights.py             # writes the file, prints its SHA-256
    python scripts/convert_musicnn_weights.py --check     # exit 1 unless it equals the shipped file

The ``.npz`` is written byte-reproducibly (members in ``WEIGHT_SHAPES`` order, fixed zip timestamps, no
compression), so the same checkpoint gives the same SHA-256: ``WEIGHTS_SHA256`` in
``genre.features.musicnn_weights``, which a test holds equal to the shipped file.

``tf.compat.v1.train.NewCheckpointReader`` is given the folder with a trailing separator, so it opens
``<folder>/.index``: the wheel's files have an empty prefix. (``tf.train.load_checkpoint(folder)`` follows
the folder's ``checkpoint`` file instead, which points at the author's own machine.)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from genre.features.musicnn_weights import SHIPPED_WEIGHTS, WEIGHT_SHAPES

#: The checkpoint's files, as the wheel names them (no prefix before the dot).
CHECKPOINT_FILES = (".index", ".data-00000-of-00001")


def checkpoint_dir() -> Path:
    """The installed wheel's ``MSD_musicnn`` folder, found without importing ``musicnn`` (TF1 code)."""
    spec = importlib.util.find_spec("musicnn")
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / "MSD_musicnn"
        if all((folder / name).is_file() for name in CHECKPOINT_FILES):
            return folder
    sys.exit("the musicnn wheel is not installed: pip install --no-deps musicnn==0.1.0")


def read_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """The forward pass's variables (``WEIGHT_SHAPES``) as float32 arrays, read with TensorFlow."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(f"{folder}{os.sep}")
    available = reader.get_variable_to_shape_map()
    arrays = {}
    for name, shape in WEIGHT_SHAPES.items():
        if tuple(available.get(name, ())) != shape:
            sys.exit(f"{folder}: {name} has shape {available.get(name)}, expected {shape}")
        arrays[name] = np.asarray(reader.get_tensor(name), dtype=np.float32)
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez``'s format, byte-reproducible: fixed member order and timestamps, stored uncompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in WEIGHT_SHAPES:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS, help="default: the shipped file")
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    args = parser.parse_args()

    data = npz_bytes(read_checkpoint(checkpoint_dir()))
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = SHIPPED_WEIGHTS.read_bytes() == data
        print(f"{'same as' if same else 'DIFFERS from'} {SHIPPED_WEIGHTS} (sha256 {digest})")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would ship unreadable to other users
    os.replace(temporary, args.out)
    print(f"wrote {args.out} ({len(data):,} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
