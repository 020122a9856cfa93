"""One thread per native pool wherever genre computes a number, so results never depend on thread counts.

OpenBLAS, OpenMP and TensorFlow split their reductions over however many threads they run, and the
split decides the order of the floating-point additions. On an AMD EPYC machine (OpenBLAS's Haswell
kernels) ``chroma_stft_var`` came out 1e-7 relative different from a 2-thread parent process and from
the 1-thread joblib workers of ``n_jobs=2``, and 40 % of a stack's probabilities moved by up to 5e-7
between one thread per pool and the default pools. So every place where features, models or metrics
are computed runs under :func:`single_threaded`, and TensorFlow is started with one intra-op and one
inter-op thread (:func:`configure_tensorflow`). genre's parallelism is across processes (files, folds,
trials), each of them single-threaded: on one machine the same input gives the same bits whatever
``n_jobs`` is. Another CPU's BLAS kernels may sum in another order, so across machines results agree to
rounding, not bit for bit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["configure_tensorflow", "single_threaded"]

_lock = threading.Lock()
_controller: ThreadpoolController | None = None
_modules_seen = -1


def _current_controller() -> ThreadpoolController:
    """A controller of every native pool loaded so far, rescanned only after new modules were imported.

    Scanning the loaded libraries takes about 2 ms and limiting through a known controller about 20 us;
    a native library only arrives with an import, so the module count says when a rescan is due. Call
    with ``_lock`` held.
    """
    global _controller, _modules_seen
    if _controller is None or len(sys.modules) != _modules_seen:
        _controller = ThreadpoolController()
        _modules_seen = len(sys.modules)
    return _controller


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with one thread in every BLAS and OpenMP pool.

    OpenMP's limit belongs to the calling thread: it is set for the block and restored after it.
    OpenBLAS's belongs to the whole process, and restoring it when a block ends would widen it under a
    block still running on another thread (a served model answers concurrent requests on several
    threads), so it is set to one thread and left there: after genre's first computation, BLAS runs on
    one thread in that process. Also a decorator: ``@single_threaded()``.
    """
    with _lock:
        controller = _current_controller()
        controller.limit(limits=1, user_api="blas")
        openmp = controller.limit(limits=1, user_api="openmp")
    try:
        yield
    finally:
        openmp.restore_original_limits()


def configure_tensorflow(tf: Any) -> None:
    """Give TensorFlow one intra-op and one inter-op thread, if its runtime has not started yet.

    Must run right after ``import tensorflow``: once an op has run the pools are fixed and TensorFlow
    refuses the change, which is then checked instead. (One thread also trains genre's small networks
    no slower than two: docs/results.md.)
    """
    threading_config = tf.config.threading
    try:
        threading_config.set_intra_op_parallelism_threads(1)
        threading_config.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pools = (
            threading_config.get_intra_op_parallelism_threads(),
            threading_config.get_inter_op_parallelism_threads(),
        )
        if pools != (1, 1):
            raise RuntimeError(
                "TensorFlow was started before genre could give it one thread per pool "
                f"(intra-op, inter-op = {pools}); import genre's models before running TensorFlow code, "
                "or its networks' results would depend on the thread count"
            ) from None
