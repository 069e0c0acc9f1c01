"""Result arrays: 64-byte aligned, and recycled once the caller has dropped them.

A large result (a full-HD batch is hundreds of MB) written into freshly
mapped memory first costs the kernel one page fault per page, each zeroing the
page: for a 1 GB output that is as much time as the convolution itself, and on
a virtual machine a fault can be several times dearer when the host must back
the page first.  Inference engines avoid it with an arena; convpool does the
same for its large results: when every view of a result is gone, its buffer
goes back to a small cache and the next result of a similar size reuses it.

- Results of at least ``MIN_CACHED_BYTES`` (256 KiB) take part: the sizes
  the C allocator serves with fresh mappings, which fault on every first
  touch.  So a training loop or repeated predict calls, whose activations and
  gradients come back with the same sizes every step, stop faulting after
  their first step.  Smaller results are ordinary NumPy arrays (the C
  allocator recycles those itself).
- The cache holds at most ``set_buffer_cache(max_bytes)`` bytes of dropped
  buffers (default: 2 GiB or an eighth of the physical memory, whichever is
  smaller); ``set_buffer_cache(0)`` turns it off and frees what it holds.
- A recycled buffer is only handed out again after the last reference to the
  array (or any view of it) is gone, so no two live arrays share memory.

Every array returned starts on a 64-byte boundary: NumPy promises only 16,
and the kernels write whole cache lines (non-temporal stores for large
outputs).

Workspace
---------
Besides its result, a call takes a workspace, all of it before any output
is written: from the workspace blocks kept from earlier calls (the smallest
one large enough; zeroed where a kernel reads what it did not write, as the
Winograd kernels' overflow flag, and not where every element read is
written first, as packed weights and partial sums), else freshly
allocated, and kept again afterwards (at most 16 blocks, each at most 256
MiB, in all at most 1 GiB or the limit ``set_buffer_cache`` set last;
larger blocks replace smaller ones; Winograd's kernel transforms are kept
too, at most 64 MiB of them, each reused only for a kernel of the same
bytes).  So a training loop maps no new
workspace after its first step: a (64, 8, 8, 64) -> 128 3x3 layer's
backward pass took 3.6 ms called alone and 6.5 ms between the other layers'
calls when every call allocated its blocks afresh (page faults), 3.8 ms
with the blocks kept (2-core Intel Xeon, AVX-512).  The workspace of one
call is at most ``get_workspace_limit()`` bytes (1 GiB by default), else
MemoryError saying how many bytes it needed, with nothing written.  With b
the item size (4 or 8), T threads, every part rounded up to
64 bytes, K = KH * KW * C_in / groups, and MR x NR the micro-kernel tile of
the selected SIMD variant (``conv2d_plan`` reports it: float32 6x16 on AVX2,
12x32 on AVX-512; always MR <= 12 and NR <= 128 / b):

- conv2d: the packed kernel ``groups * ceil(C_out/groups / NR) * NR * K * b``
  plus, per thread, an im2col tile of at most ``max(48 KiB, MR * K * b)``
  (depthwise: ``C * b``; 1x1 stride 1 unpadded: none);
- max_pool2d / avg_pool2d: per thread ``3 * max(8192, KW * C) * b``;
- conv2d_backward, in two steps, each freeing its workspace before the next:
  the input gradient of a stride-1 conv (with a finite kernel) is a conv2d of
  grad_out with the kernel flipped and swapped to (KH, KW, C_out/groups,
  C_in), so it takes conv2d's workspace for that kernel; other input
  gradients (col2im) take ``KH * groups * ceil(KW*C_in/groups / NR) * NR *
  C_out/groups * b`` plus per thread ``max(64 KiB, MR * KW * C_in/groups *
  b)``; the kernel gradient then takes, per thread, at most ``max(512 KiB, 6
  * (K + 128/b + C_out/groups) * b) + (K + NR + C_out/groups * NR) * b + 64``,
  plus at most 64 chunk partials of ``(K + 1) * C_out * b``;
- the pool gradients: per thread ``max(C * 16, OW * C * 8)``.

``tests/test_memory.py`` checks these bounds against what the kernels ask for.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._checks import check_int
from ._kernels import _core

__all__ = ["empty", "set_buffer_cache", "get_buffer_cache", "set_workspace_limit",
           "get_workspace_limit"]

ALIGN = 64
MIN_CACHED_BYTES = 256 << 10
#: Dropped buffers kept at most (the oldest go first), so a lookup stays short.
MAX_CACHED_BUFFERS = 64


def _default_limit() -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        physical = 16 << 30
    return min(2 << 30, physical // 8)


_lock = threading.Lock()
_free: list[NDArray[np.uint8]] = []  # dropped raw buffers, oldest first
_free_bytes = 0
_limit = _default_limit()


class _Lease:
    """Owner of one result's memory; gives the buffer back when it dies.

    A NumPy array made from it (through ``__array_interface__``) keeps it as
    its ``base``, and so does every view of that array, so ``__del__`` runs
    only when no array uses the memory any more.
    """

    __slots__ = ("_raw", "__array_interface__")

    _raw: NDArray[np.uint8] | None
    __array_interface__: dict[str, Any]

    def __init__(
        self, raw: NDArray[np.uint8], offset: int, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> None:
        self._raw = raw
        self.__array_interface__ = {
            "shape": shape,
            "typestr": dtype.str,
            "data": (_core.data_address(raw) + offset, False),
            "version": 3,
        }

    def __del__(self) -> None:
        raw, self._raw = self._raw, None
        try:
            _release(raw)
        except Exception:  # interpreter shutdown: the module may be half torn down
            pass


def _release(raw: NDArray[np.uint8] | None) -> None:
    global _free_bytes
    if raw is None:
        return
    with _lock:
        if raw.nbytes > _limit:
            return
        _free.append(raw)
        _free_bytes += raw.nbytes
        while _free_bytes > _limit or len(_free) > MAX_CACHED_BUFFERS:
            _free_bytes -= _free.pop(0).nbytes


def _take(nbytes: int) -> NDArray[np.uint8] | None:
    """A dropped buffer of at least ``nbytes`` and at most twice that, or None."""
    global _free_bytes
    with _lock:
        best = None
        for i, raw in enumerate(_free):
            if nbytes <= raw.nbytes <= 2 * nbytes and (best is None or raw.nbytes < _free[best].nbytes):
                best = i
        if best is None:
            return None
        raw = _free.pop(best)
        _free_bytes -= raw.nbytes
        return raw


def empty(shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """An uninitialised C-contiguous array, 64-byte aligned, recycled when large.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    ndarray
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = _take(nbytes + ALIGN) if nbytes >= MIN_CACHED_BYTES and _limit > 0 else None
    if raw is None:
        raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    offset = -_core.data_address(raw) % ALIGN
    if nbytes < MIN_CACHED_BYTES or _limit == 0:
        return raw[offset : offset + nbytes].view(dtype).reshape(shape)
    leased: NDArray[Any] = np.asarray(_Lease(raw, offset, tuple(shape), dtype))
    return leased


def set_buffer_cache(max_bytes: int) -> None:
    """Set how many bytes of dropped results, and separately of workspace
    blocks, convpool keeps for reuse.

    Parameters
    ----------
    max_bytes : int
        0 turns recycling off and frees every cached buffer and block, and
        the Winograd kernel transforms kept between calls (at most 64 MiB,
        and at most ``max_bytes``, of those are kept).
    """
    global _limit, _free_bytes
    limit = check_int(max_bytes, "max_bytes", minimum=0)
    with _lock:
        _limit = limit
        while _free and _free_bytes > _limit:
            _free_bytes -= _free.pop(0).nbytes
    _core.set_workspace_keep(min(limit, 2**63 - 1))


def get_buffer_cache() -> dict[str, int]:
    """The cache's limit and what it holds now: ``{"max_bytes", "cached_bytes",
    "buffers", "workspace_bytes", "workspace_blocks"}`` (the last two: the
    workspace blocks kept between calls)."""
    kept = _core.workspace_stats()
    with _lock:
        return {"max_bytes": _limit, "cached_bytes": _free_bytes, "buffers": len(_free),
                "workspace_bytes": kept["bytes"], "workspace_blocks": kept["blocks"]}


def set_workspace_limit(max_bytes: int) -> None:
    """Cap the workspace one call may allocate (see the module docstring).

    Parameters
    ----------
    max_bytes : int
        Positive.  A call that needs more raises MemoryError before writing
        anything.
    """
    limit = check_int(max_bytes, "max_bytes")
    _core.set_workspace_limit(min(limit, 2**63 - 1))


def get_workspace_limit() -> int:
    """The workspace cap in bytes (default 1 GiB)."""
    return _core.get_workspace_limit()
