"""How many threads a kernel call uses.

The default is what OpenMP gives the calling thread: every core, or
``OMP_NUM_THREADS`` when set, or 1 inside a ``threadpoolctl.threadpool_limits``
block (threadpoolctl finds the OpenMP runtime convpool is linked to and lowers
its ``omp_get_max_threads()``).

``set_num_threads(n)`` overrides the default for every Python thread.  A
threadpoolctl limit (or ``omp_set_num_threads``) that lowers the OpenMP count
in the calling thread below its value at import still wins, so
``with threadpool_limits(1):`` always means one thread.

The count changes only how the work is split, never the result: every kernel
gives bitwise the same output for any thread count.
"""

from __future__ import annotations

import operator

from ._kernels import _core

__all__ = ["set_num_threads", "get_num_threads"]

# The OpenMP default of the importing thread: the process's baseline.
_OMP_DEFAULT = _core.omp_max_threads()
_requested: int | None = None


def set_num_threads(n: int | None) -> None:
    """Set the number of threads convpool's kernels use.

    Parameters
    ----------
    n : int or None
        A positive thread count, used by calls from every Python thread; None
        restores the default (OpenMP's: every core, or ``OMP_NUM_THREADS``).
        Without OpenMP in the build every count runs on one thread.
    """
    global _requested
    if n is None:
        _requested = None
        return
    if isinstance(n, bool):
        raise TypeError(f"n must be a positive int or None, got the bool {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be a positive int or None, got {n!r}") from None
    if n < 1:
        raise ValueError(f"n must be a positive int or None, got {n}")
    _requested = n


def get_num_threads() -> int:
    """Number of threads the next convpool call from this thread will use at most.

    Returns
    -------
    int
    """
    if not _core.openmp_enabled():
        return 1
    omp = _core.omp_max_threads()
    if _requested is None:
        return omp
    if omp < _OMP_DEFAULT:  # a threadpoolctl limit (or omp_set_num_threads) in this thread
        return min(_requested, omp)
    return _requested
