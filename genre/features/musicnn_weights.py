"""MSD_musicnn as NumPy: its weights, shipped with genre, and its forward pass.

Weights: the ``musicnn`` 0.1.0 wheel publishes its models as TensorFlow 1 checkpoints (ISC licence), and
its own code is TF1 (and pins numpy < 1.17). genre ships the variables the forward pass needs as a
float32 ``.npz`` (``weights/MSD_musicnn.npz``, the ISC notice beside it), converted once by
``scripts/convert_musicnn_weights.py``, so computing musicnn features needs neither the wheel nor
TensorFlow (about 5 s and 1 GB of imports). Its SHA-256 is checked on load: a damaged install says so
instead of computing wrong tags.

Forward pass: :func:`forward` follows ``musicnn/models.py`` (``build_musicnn``, ``is_training=False``:
batch norms use their moving statistics, dropout is off) in float32. About 1.4 GMAC per patch done
naively; it stays near the BLAS peak of one core by these means:

- patches overlap by two thirds, and the timbral filters (60 % of the arithmetic) only see 7 frames:
  they run once over the whole clip, and only the 3 frames at each end of each patch, where the
  patch's own zero padding differs, are redone. The temporal filters share their frames far enough
  from the patch ends in the same way;
- every convolution is a matrix product on views of the input, with no im2col copy: rows of a strided
  view for the timbral filters, a banded Toeplitz matrix for the 1-D temporal ones, all 7 taps side by
  side for the mid-end;
- max-pooling over frequency is taken before the bias, ReLU and batch norm, which are monotone per
  channel (a channel whose batch-norm scale is negative takes the minimum instead).
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genre.errors import ConfigError

__all__ = [
    "Model",
    "N_MELS",
    "PATCH_FRAMES",
    "SHIPPED_WEIGHTS",
    "WEIGHTS_SHA256",
    "WEIGHT_SHAPES",
    "forward",
    "get_model",
    "load_weights",
    "use_weights_file",
    "weights_file",
]

#: Mel bands of musicnn's input, and frames per patch (3 s at 16 kHz, hop 256).
N_MELS, PATCH_FRAMES = 96, 187
#: The converted MSD_musicnn weights shipped in the package, and their SHA-256 (what
#: ``scripts/convert_musicnn_weights.py`` writes from the wheel's checkpoint, byte for byte).
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "MSD_musicnn.npz"
WEIGHTS_SHA256 = "2539c466138a8b06ff2fa08eb763bf17ab9e876eb1494e338c891b2a5aaae5df"


def _weight_shapes() -> dict[str, tuple[int, ...]]:
    """Every variable of MSD_musicnn's forward pass and its shape; Adam slots and step counters are left out.

    Layer names are TF1's automatic ones, numbered in the order ``musicnn/models.py`` creates the layers:
    batch norm 0 on the input; conv 0-1 and batch norms 1-2 the timbral (7x38, 7x67) filters; conv 2-4
    and batch norms 3-5 the temporal (128, 64, 32 frames) filters; conv 5-7 and batch norms 6-8 the
    mid-end; batch norm 9, dense, batch norm 10 and dense_1 the back-end.
    """
    convs = [(7, 38, 1, 204), (7, 67, 1, 204), (128, 1, 1, 51), (64, 1, 1, 51), (32, 1, 1, 51)]
    convs += [(7, 561, 1, 64), (7, 64, 1, 64), (7, 64, 1, 64)]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, kernel in enumerate(convs):
        name = "conv2d" if i == 0 else f"conv2d_{i}"
        shapes[f"{name}/kernel"], shapes[f"{name}/bias"] = kernel, (kernel[-1],)
    norms = [1, 204, 204, 51, 51, 51, 64, 64, 64, 1506, 200]
    for i, size in enumerate(norms):
        name = "batch_normalization" if i == 0 else f"batch_normalization_{i}"
        for part in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"{name}/{part}"] = (size,)
    shapes["dense/kernel"], shapes["dense/bias"] = (1506, 200), (200,)
    shapes["dense_1/kernel"], shapes["dense_1/bias"] = (200, 50), (50,)
    return shapes


#: Checkpoint variable name -> shape, for the 64 arrays the forward pass reads.
WEIGHT_SHAPES: dict[str, tuple[int, ...]] = _weight_shapes()


_weights_file: Path | None = None


def use_weights_file(path: str | os.PathLike[str]) -> None:
    """Read the weights from the ``.npz`` at ``path`` rather than the package's.

    A served model carries its own copy of the weights (``genre.serving``), so what it computes does not
    depend on the genre installed beside the server. Call before the first use of the model.
    """
    global _weights_file
    _weights_file = Path(path)


def weights_file() -> Path:
    """The ``.npz`` this process reads: the one given to :func:`use_weights_file`, else the shipped one."""
    return SHIPPED_WEIGHTS if _weights_file is None else _weights_file


def load_weights() -> dict[str, np.ndarray]:
    """MSD_musicnn's variables as float32 arrays, keyed by checkpoint name (see ``WEIGHT_SHAPES``).

    :func:`get_model` keeps the result, so a process reads the file once.

    Raises
    ------
    ConfigError
        When the file is missing, or its bytes are not the converted weights (``WEIGHTS_SHA256``).
    """
    path = weights_file()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"musicnn weights {path} cannot be read ({error.strerror}); reinstall genre"
        ) from None
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise ConfigError(f"musicnn weights {path} are damaged (SHA-256 differs); reinstall genre")
    try:
        with np.load(path) as stored:
            return {name: stored[name] for name in WEIGHT_SHAPES}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:  # pragma: no cover - digest checked
        raise ConfigError(f"musicnn weights {path} are unreadable ({error}); reinstall genre") from None


_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
_TIMBRAL_PAD = 3  # 7-frame timbral and mid-end filters, zero-padded by 3 frames at each patch end
_TEMPORAL = ((128, 8), (64, 8), (32, 4))  # temporal filter lengths, and output frames per Toeplitz block
_TEMPORAL_PAD = 63  # TF's "same" padding before a 128-frame filter: (128 - 1) // 2
_ROW_CHUNK = 256  # timbral rows (frames) per block, so a block's products stay in cache
_PATCH_CHUNK = 4  # patches per block of the temporal products


def _batch_norm(w: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode batch norm as ``x * scale + shift`` (moving statistics; float64 math, float32 out)."""
    gamma, beta, mean, var = (
        w[f"{name}/{part}"].astype(np.float64) for part in ("gamma", "beta", "moving_mean", "moving_variance")
    )
    scale = gamma / np.sqrt(var + _EPSILON)
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


class _PooledConv:
    """conv -> ReLU -> batch norm -> max over frequency, computed with the maximum taken first.

    ``max_f BN(relu(c_f + b)) == BN(relu(max_f c_f + b))`` for a positive batch-norm scale, and with
    the minimum for a negative one; rounding is monotone, so the values are the layer order's. Channels
    with a negative scale get negated weights, so one maximum serves every channel.
    """

    def __init__(
        self, w: dict[str, np.ndarray], conv: str, norm: str, kernel: np.ndarray, *, width: int = 0,
        length: int = 0, frames: int = 0, offset: int = 0,
    ) -> None:  # fmt: skip
        self.scale, self.shift = _batch_norm(w, norm)
        self.sign = np.where(self.scale < 0, -1.0, 1.0).astype(np.float32)
        self.kernel = np.ascontiguousarray((kernel * self.sign).reshape(len(kernel), -1))
        self.bias = w[f"{conv}/bias"] * self.sign
        self.channels = len(self.bias)
        # Timbral: bands per filter. Temporal: filter length, outputs per Toeplitz block, first input column.
        self.width, self.length, self.frames, self.offset = width, length, frames, offset

    def finish(self, pooled: np.ndarray) -> np.ndarray:
        return np.maximum(self.sign * (pooled + self.bias), 0) * self.scale + self.shift


class Model:
    """MSD_musicnn's weights arranged for :func:`forward` (built once per process by :func:`get_model`)."""

    def __init__(self, w: dict[str, np.ndarray]) -> None:
        self.input = _batch_norm(w, "batch_normalization")
        self.timbral = []
        for conv, norm in (("conv2d", "batch_normalization_1"), ("conv2d_1", "batch_normalization_2")):
            k = w[f"{conv}/kernel"][:, :, 0, :]  # (7 frames, width bands, 204)
            # A row holds each band's 7 frames, so bands [f, f + width) are one column range of it.
            matrix = k.transpose(1, 0, 2).reshape(-1, k.shape[-1])
            self.timbral.append(_PooledConv(w, conv, norm, matrix, width=k.shape[1]))
        self.temporal = []
        for i, (length, frames) in enumerate(_TEMPORAL):
            k = w[f"conv2d_{i + 2}/kernel"][:, 0, 0, :]  # (length, 51)
            # Banded Toeplitz: sample j of a block's input -> (output frame b, channel), tap j - b.
            toeplitz = np.zeros((frames + length - 1, frames, k.shape[1]), np.float32)
            for b in range(frames):
                toeplitz[b : b + length, b] = k
            # TF's "same" padding puts (length - 1) // 2 zeros first: where this filter's input starts.
            offset = _TEMPORAL_PAD - (length - 1) // 2
            self.temporal.append(
                _PooledConv(w, f"conv2d_{i + 2}", f"batch_normalization_{i + 3}", toeplitz,
                            length=length, frames=frames, offset=offset)
            )  # fmt: skip
        self.midend = []
        for i in (5, 6, 7):
            k = w[f"conv2d_{i}/kernel"][:, :, 0, :]  # (7 frames, channels in, 64)
            side_by_side = np.ascontiguousarray(k.transpose(1, 0, 2).reshape(k.shape[1], -1))  # (in, 7 * 64)
            bias, norm = w[f"conv2d_{i}/bias"], _batch_norm(w, f"batch_normalization_{i + 1}")
            self.midend.append((side_by_side, bias, *norm))
        self.pool_norm = _batch_norm(w, "batch_normalization_9")
        self.dense = (w["dense/kernel"], w["dense/bias"], *_batch_norm(w, "batch_normalization_10"))
        self.output = (w["dense_1/kernel"], w["dense_1/bias"])


_model_lock = threading.Lock()
_model: Model | None = None


def get_model() -> Model:
    """The process's model: the weights are read on first use only (see :func:`load_weights`)."""
    global _model
    with _model_lock:
        if _model is None:
            _model = Model(load_weights())
        return _model


def _timbral(model: Model, rows: np.ndarray) -> np.ndarray:
    """Both timbral blocks on ``rows`` (n, N_MELS * 7): each row one output frame's 7 input frames per band.

    For each frequency position the filter's input is a column range of ``rows``, a strided view BLAS
    reads in place; the running maximum over positions is the max-pool. Blocks of ``_ROW_CHUNK`` rows keep
    each product's output in cache.
    """
    out = np.empty((len(rows), sum(block.channels for block in model.timbral)), np.float32)
    for start in range(0, len(rows), _ROW_CHUNK):
        chunk = rows[start : start + _ROW_CHUNK]
        column = 0
        for block in model.timbral:
            span = 7 * block.width
            best = chunk[:, :span] @ block.kernel
            product = np.empty_like(best)
            for f in range(1, N_MELS - block.width + 1):
                np.matmul(chunk[:, 7 * f : 7 * f + span], block.kernel, out=product)
                np.maximum(best, product, out=best)
            out[start : start + len(chunk), column : column + block.channels] = block.finish(best)
            column += block.channels
    return out


def _pooled_temporal(block: _PooledConv, rows: np.ndarray, first: int, n_out: int) -> np.ndarray:
    """Max over bands of one temporal filter's output frames ``[0, n_out)``, before bias, ReLU and norm.

    ``rows`` (n * N_MELS, width) holds ``n`` sequences, one row per band; output frame ``t`` reads columns
    ``[first + t, first + t + length)``. A block of ``frames`` outputs is one product of a column range
    (read in place) with the banded Toeplitz kernel. Returns (n, n_out, channels).
    """
    n, span = len(rows) // N_MELS, block.frames + block.length - 1
    n_blocks = -(-n_out // block.frames)
    out = np.empty((n, n_blocks * block.frames, block.channels), np.float32)
    for low in range(0, n, _PATCH_CHUNK):
        high = min(low + _PATCH_CHUNK, n)
        group = rows[low * N_MELS : high * N_MELS]
        for b in range(n_blocks):
            column = first + b * block.frames
            product = group[:, column : column + span] @ block.kernel
            shaped = product.reshape(high - low, N_MELS, block.frames, block.channels)
            out[low:high, b * block.frames : (b + 1) * block.frames] = shaped.max(axis=1)
    return out[:, :n_out]


def _temporal(model: Model, z: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The three temporal blocks of the patches of ``z`` (normalised input) at ``starts``: (p, frames, 153).

    A frame far enough from its patch's ends (31 of 64 frames for the 64-frame filter) sees no padding,
    so its output is the whole clip's: those are computed once for the clip, in segments, and shared by
    the patches that overlap there. Only the frames near each patch's ends are computed per patch, on
    the patch's own zero-padded sequence.
    """
    n_patches, n_frames = len(starts), len(z)
    segment = 64  # clip frames per segment row: long enough for few products, short enough for many rows
    longest = max(b.offset + PATCH_FRAMES + b.frames + b.length for b in model.temporal)  # widest reach
    local = np.zeros((n_patches, N_MELS, longest), np.float32)
    local[:, :, _TEMPORAL_PAD : _TEMPORAL_PAD + PATCH_FRAMES] = z[
        starts[:, None] + np.arange(PATCH_FRAMES)
    ].transpose(0, 2, 1)
    local = local.reshape(n_patches * N_MELS, longest)
    clip = np.zeros((N_MELS, n_frames + 2 * _TEMPORAL_PAD + segment + longest), np.float32)
    clip[:, _TEMPORAL_PAD : _TEMPORAL_PAD + n_frames] = z.T
    out = np.empty((n_patches, PATCH_FRAMES, sum(b.channels for b in model.temporal)), np.float32)
    channel = 0
    for block in model.temporal:
        before = (block.length - 1) // 2
        inner_end = PATCH_FRAMES - (block.length - 1 - before)
        pooled = np.empty((n_patches, PATCH_FRAMES, block.channels), np.float32)
        pooled[:, :before] = _pooled_temporal(block, local, block.offset, before)
        pooled[:, inner_end:] = _pooled_temporal(
            block, local, block.offset + inner_end, PATCH_FRAMES - inner_end
        )
        # Clip frames [before, starts[-1] + inner_end), in segments starting at before + j * segment.
        n_segments = -(-(starts[-1] + inner_end - before) // segment)
        window = segment + block.length - 1 + block.frames
        first_column = block.offset + before  # column of the first input sample of output frame `before`
        segments = sliding_window_view(clip, window, axis=1)[
            :, first_column : first_column + n_segments * segment : segment
        ]
        shared = _pooled_temporal(
            block, np.ascontiguousarray(segments.transpose(1, 0, 2)).reshape(-1, window), 0, segment
        )
        shared = shared.reshape(-1, block.channels)
        pooled[:, before:inner_end] = shared[starts[:, None] + np.arange(inner_end - before)]
        out[:, :, channel : channel + block.channels] = block.finish(pooled)
        channel += block.channels
    return out


def _conv_frames(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """A 7-frame convolution over ``x`` (p, PATCH_FRAMES + 6, c_in), zero-padded rows included.

    The patches are stacked into one (p * (PATCH_FRAMES + 6), c_in) matrix, multiplied once by all
    7 taps side by side (``kernel`` is (c_in, 7 * c_out)), and each tap's columns are added shifted by
    its offset; the 6 outputs per patch that straddle two patches are dropped.
    """
    n, padded_frames, _ = x.shape
    taps = x.reshape(n * padded_frames, -1) @ kernel
    valid = len(taps) - 2 * _TIMBRAL_PAD
    c_out = kernel.shape[1] // (2 * _TIMBRAL_PAD + 1)
    out = np.zeros((n * padded_frames, c_out), np.float32)
    for tap in range(2 * _TIMBRAL_PAD + 1):
        out[:valid] += taps[tap : tap + valid, tap * c_out : (tap + 1) * c_out]
    return out.reshape(n, padded_frames, c_out)[:, :PATCH_FRAMES]


def forward(model: Model, rep: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities (p, 50) and penultimate layer (p, 200) of the patches ``rep[s : s + PATCH_FRAMES]``.

    ``rep`` (t, N_MELS) is a float32 log-mel representation and ``starts`` (p,) the first frame of each
    patch, ascending. Each patch is evaluated as musicnn evaluates it alone, with its own zero padding;
    frames shared by overlapping patches are computed once. Call under ``genre.threads.single_threaded``.
    """
    n_patches, pad = len(starts), _TIMBRAL_PAD
    rep = rep[: starts[-1] + PATCH_FRAMES]
    z = rep * model.input[0] + model.input[1]  # input batch norm, before the zero padding as in TF
    frames = starts[:, None] + np.arange(PATCH_FRAMES)

    # Timbral rows: every frame of the clip once (padded at the clip's ends) and, per patch, the 3 frames
    # at each end again with the patch's own zero padding, which is what the model sees there.
    edge_t = np.r_[0:pad, PATCH_FRAMES - pad : PATCH_FRAMES]
    index = starts[:, None, None] + edge_t[None, :, None] + np.arange(-pad, pad + 1)
    inside = (index >= starts[:, None, None]) & (index < starts[:, None, None] + PATCH_FRAMES)
    edges = np.where(inside[..., None], z[np.clip(index, 0, len(z) - 1)], 0).transpose(0, 1, 3, 2)
    clip = np.zeros((len(z) + 2 * pad, N_MELS), np.float32)
    clip[pad:-pad] = z
    rows = np.concatenate(
        [sliding_window_view(clip, 2 * pad + 1, axis=0), edges.reshape(-1, N_MELS, 2 * pad + 1)]
    )
    timbral = _timbral(model, rows.reshape(len(rows), -1))
    row_of = frames.copy()
    row_of[:, edge_t] = len(z) + np.arange(n_patches * len(edge_t)).reshape(n_patches, -1)

    # Front-end features (p, frames, 561), zero-padded by 3 frames for the mid-end's first filter.
    padded_frames = PATCH_FRAMES + 2 * pad
    front = np.zeros((n_patches, padded_frames, timbral.shape[1] + 3 * 51), np.float32)
    front[:, pad:-pad, : timbral.shape[1]] = timbral[row_of]
    front[:, pad:-pad, timbral.shape[1] :] = _temporal(model, z, starts)

    features, x = [front[:, pad:-pad]], front
    for i, (kernel, bias, scale, shift) in enumerate(model.midend):
        h = np.maximum(_conv_frames(x, kernel) + bias, 0) * scale + shift
        if i:
            h += features[-1]  # residual connections around the 2nd and 3rd mid-end layers
        features.append(h)
        x = np.zeros((n_patches, padded_frames, h.shape[2]), np.float32)
        x[:, pad:-pad] = h

    # Back-end: max and mean over time of all 753 channels, interleaved as TF's flatten orders them.
    maxima = np.concatenate([f.max(axis=1) for f in features], axis=1)
    means = np.concatenate([f.mean(axis=1) for f in features], axis=1)
    pooled = (
        np.stack([maxima, means], axis=2).reshape(n_patches, -1) * model.pool_norm[0] + model.pool_norm[1]
    )
    kernel, bias, scale, shift = model.dense
    penultimate = np.maximum(pooled @ kernel + bias, 0) * scale + shift
    logits = penultimate @ model.output[0] + model.output[1]
    return 1 / (1 + np.exp(-logits)), penultimate
