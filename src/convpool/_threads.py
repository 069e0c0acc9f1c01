"""How many threads a kernel call uses.

The default is what OpenMP gives the calling thread: every core, or
``OMP_NUM_THREADS`` when set, or 1 inside a ``threadpoolctl.threadpool_limits``
block (threadpoolctl finds the OpenMP runtime convpool is linked to and lowers
its ``omp_get_max_threads()``).

``set_num_threads(n)`` overrides the default for calls from every Python
thread.  It also sets the OpenMP count of the thread that calls it, so in that
thread threadpoolctl sees ``n`` and a limit such as ``with
threadpool_limits(1):`` lowers it (and restores it on exit) the usual way.  In
other Python threads a limit is honoured when it lowers OpenMP's count below
its value at import (the only way to tell a limit from the default there).

The count changes only how the work is split, never the result: every kernel
gives bitwise the same output for any thread count.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ._checks import check_int
from ._kernels import _core

__all__ = ["set_num_threads", "get_num_threads"]

# The OpenMP default of the importing thread: the process's baseline.
_OMP_DEFAULT = _core.omp_max_threads()
_requested: int | None = None  # set_num_threads(n), for every thread
_setter: int | None = None  # the thread whose OpenMP count we wrote ...
_written: int | None = None  # ... and the value written there
_local = threading.local()  # .n: a count for this Python thread only (see task_threads)


def _limited(icv: int) -> bool:
    """Is the calling thread's OpenMP count lowered by a limit (threadpoolctl)?

    A limit lowers the count below what it would otherwise be: the value
    set_num_threads wrote, in the thread that called it, or the import-time
    default elsewhere.
    """
    if _written is not None and threading.get_ident() == _setter:
        return icv < _written
    return icv < _OMP_DEFAULT


def set_num_threads(n: int | None) -> None:
    """Set the number of threads convpool's kernels use.

    Parameters
    ----------
    n : int or None
        A positive thread count, used by calls from every Python thread; None
        restores the default (OpenMP's: every core, or ``OMP_NUM_THREADS``).
        Inside a ``threadpool_limits`` block the limit still wins until the
        block ends.  Without OpenMP in the build every count runs on one thread.
    """
    global _requested, _setter, _written
    if n is not None:
        n = check_int(n, "n", requirement="a positive int or None")
    limited = _limited(_core.omp_max_threads())
    if n is None:
        if _written is not None and threading.get_ident() == _setter and not limited:
            _core.omp_set_max_threads(_OMP_DEFAULT)
        _requested = _setter = _written = None
        return
    _requested = n
    if not limited:  # a limit in force keeps the OpenMP count it set
        _core.omp_set_max_threads(n)
        _setter, _written = threading.get_ident(), n


def get_num_threads() -> int:
    """Number of threads the next convpool call from this thread will use at most.

    Returns
    -------
    int
    """
    if not _core.openmp_enabled():
        return 1
    local: int | None = getattr(_local, "n", None)
    if local is not None:
        return local
    icv = _core.omp_max_threads()
    wanted = _requested if _requested is not None else icv
    return min(wanted, icv) if _limited(icv) else wanted


@contextlib.contextmanager
def task_threads(n: int | None) -> Iterator[None]:
    """Run convpool's calls in this block, from this Python thread only, on ``n`` threads.

    For tasks of a scheduler that runs several at once (convpool.dask): each
    task sets its own count without touching the other threads' or the
    process's.  It wins over set_num_threads and threadpoolctl limits; None
    leaves the count as it is.
    """
    previous = getattr(_local, "n", None)
    if n is not None:
        _local.n = n
    try:
        yield
    finally:
        _local.n = previous
