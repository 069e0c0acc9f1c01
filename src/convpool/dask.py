# dask.array is only partly annotated: calling into it is allowed to be untyped.
# mypy: disallow-untyped-calls=False, warn-return-any=False
"""convpool on Dask arrays: batches larger than memory, on one machine or a cluster.

``pip install convpool[dask]``.  Every function here takes a dask array and
returns a lazy one; nothing runs until ``.compute()``, ``.persist()`` or
``da.store``.  The arguments are those of the in-memory functions, validated
the same way (the same errors, raised when the graph is built, before any task
runs), plus ``threads``.

Chunks
------
Along the batch axis any chunking is fine, and the output keeps it.
Forward ops (:func:`conv2d`, :func:`max_pool2d`, :func:`avg_pool2d`) also take
inputs chunked along H and W: each output block reads its input rows and
columns plus exactly the halo its windows reach (kernel size, stride,
dilation and padding), with the global padding applied only at the image
borders, so the result is the in-memory one bit for bit.  Output blocks
follow the input blocks: an output row belongs to the input block its window
starts in.  conv2d needs every input channel at once (channel chunks are
merged); pooling keeps the channel chunks.  Max and average pooling take
``dilation_rate``, ``ceil_mode`` and ``divisor_override`` on such chunks too;
``return_indices`` is in-memory only.

:func:`conv2d_transpose`, :func:`conv2d` with a ``padding_mode`` other than
zeros, and the global and adaptive pools split along the batch axis only
(each task gets whole samples: the H, W and channel chunks are merged);
bitwise the in-memory result.

The backward functions and :func:`apply` need whole samples: they merge the
H, W (and channel) chunks and split the work along the batch axis only.
grad_x is the in-memory result bit for bit; the kernel and bias gradients
are sums over the batch, added block by block in a fixed tree order, so they
agree with the in-memory ones to rounding (exactly when there is one batch
chunk) and are the same on every run.

Threads
-------
Dask runs several tasks at once: one per thread of every worker.  Each task
runs convpool on ``cores // concurrent tasks`` threads of its machine, never
``cores x tasks``:

* on a dask.distributed cluster, when a Client is active at graph-building
  time, per host: the usable cores there over the total ``nthreads`` of the
  workers on it (a LocalCluster of 2 workers x 1 thread on 2 cores: 1 thread
  per task; 1 worker x 1 thread: 2);
* with the local threaded scheduler, the cores over its pool size
  (``dask.config`` ``num_workers``, default every core): usually 1;
* with the synchronous scheduler (tasks in the main thread): convpool's
  own default, :func:`convpool.get_num_threads`.

``threads=n`` sets the count for every task.  Recommended LocalCluster for
big batches: ``LocalCluster(n_workers=cores, threads_per_worker=1,
memory_limit=...)``; the workers' default ``OMP_NUM_THREADS=1`` does not
constrain convpool, which sets its count per task.
"""

from __future__ import annotations

import bisect
import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, SupportsIndex

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.delayed import delayed
except ImportError as err:  # pragma: no cover - exercised only without dask
    raise ImportError(
        "convpool.dask needs dask: pip install 'convpool[dask]'"
    ) from err

from . import functional as F
from ._checks import (
    ConvCall,
    PoolCall,
    TransposeCall,
    check_divisor_override,
    check_image,
    check_activation,
    check_bool,
    check_grad_out,
    check_int,
)
from ._shapes import IntPair, Padding, effective_size
from ._threads import task_threads

__all__ = [
    "conv2d",
    "conv2d_transpose",
    "global_avg_pool2d",
    "global_max_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "max_pool2d",
    "avg_pool2d",
    "conv2d_backward",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "apply",
]


# --------------------------------------------------------------------- threads
def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_PLANS: dict[tuple[Any, ...], dict[str, int]] = {}


def _cluster_plan() -> dict[str, int] | None:
    """Threads per task on each host of the active dask.distributed cluster.

    None when no Client is active.  Asked once per set of workers.
    """
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:  # no client
        return None
    workers = client.scheduler_info(n_workers=-1)["workers"]
    key = (client.scheduler.address, tuple(sorted((a, w["nthreads"]) for a, w in workers.items())))
    if key not in _PLANS:
        cores = client.run(_usable_cores)
        slots: dict[str, int] = {}
        host_cores: dict[str, int] = {}
        for addr, w in workers.items():
            host = w["host"]
            slots[host] = slots.get(host, 0) + w["nthreads"]
            host_cores[host] = max(host_cores.get(host, 1), cores.get(addr, 1))
        _PLANS[key] = {h: max(1, host_cores[h] // slots[h]) for h in slots}
    return _PLANS[key]


def _threads_here(requested: int | None, plan: dict[str, int] | None) -> int | None:
    """The thread count for a task running now, in this thread (None: convpool's default)."""
    if requested is not None:
        return requested
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        worker = None
    if worker is not None:
        if plan is not None and worker.address:
            host = worker.address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
            if host in plan:
                return plan[host]
        # A worker the plan does not know: its own threads share the cores,
        # and other workers may too: one thread each is the safe choice.
        return 1
    if threading.current_thread() is threading.main_thread():
        return None  # the synchronous scheduler: one task at a time
    pool = dask.config.get("num_workers", None) or _usable_cores()
    return max(1, _usable_cores() // pool)


def _check_threads(threads: object) -> int | None:
    """``threads`` if None or a positive int, else TypeError / ValueError."""
    if threads is None:
        return None
    return check_int(threads, "threads", requirement="a positive int or None")


def _in_task(fn: Callable[..., Any], threads: int | None,
             plan: dict[str, int] | None) -> Callable[..., Any]:
    """``fn`` run with the task's thread count."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with task_threads(_threads_here(threads, plan)):
            return fn(*args, **kwargs)

    return run


# ----------------------------------------------------------------- validation
def _as_dask(x: object, name: str) -> da.Array:
    if not isinstance(x, da.Array):
        raise TypeError(
            f"{name} must be a dask array, got {type(x).__name__}: use convpool.{{conv2d, ...}} "
            f"for in-memory arrays, or dask.array.from_array(...) to chunk one"
        )
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D, got shape {x.shape}")
    if any(np.isnan(s) for s in x.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {x.shape}): call "
            f"{name}.compute_chunk_sizes() first"
        )
    return x


def _stand_in(x: da.Array) -> np.ndarray:
    """A NumPy array of ``x``'s shape and dtype that takes no memory (for validation)."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, x.dtype), x.shape, (0,) * x.ndim)


def _axes(data_format: str) -> tuple[int, int, int]:
    """(H axis, W axis, channel axis)."""
    return (1, 2, 3) if data_format == "channels_last" else (2, 3, 1)


# -------------------------------------------------------- spatial blocks
def _pieces(
    chunks: Sequence[int], length: int, k_eff: int, stride: int, pad_lo: int, out_len: int
) -> list[tuple[int, int, int, int, int, int]]:
    """Split one spatial axis's outputs by the input block their window starts in.

    Returns (o0, o1, r0, r1, lo, hi) per output block: outputs [o0, o1) read
    input rows [r0, r1) with ``lo`` and ``hi`` rows of padding around them.
    """
    starts = list(np.cumsum((0,) + tuple(chunks))[:-1])
    owner = [
        min(max(bisect.bisect_right(starts, max(o * stride - pad_lo, 0)) - 1, 0),
            len(starts) - 1)
        for o in range(out_len)
    ]
    pieces = []
    o0 = 0
    for o in range(1, out_len + 1):
        if o == out_len or owner[o] != owner[o0]:
            first = o0 * stride - pad_lo  # the first padded row the block reads
            last = (o - 1) * stride - pad_lo + k_eff  # one past its last
            r0, r1 = min(max(first, 0), length), max(min(last, length), 0)
            if r1 > r0:
                pieces.append((o0, o, r0, r1, r0 - first, last - r1))
            else:  # only padding (conv2d's padding may exceed the kernel)
                pieces.append((o0, o, r0, r0, 0, last - first))
            o0 = o
    return pieces


def _forward(
    x: da.Array,
    call: ConvCall | PoolCall,
    k_eff: tuple[int, int],
    block_fn: Callable[..., np.ndarray],
    weights: tuple[Any, ...],
    out_channels: int | None,
) -> da.Array:
    """Run ``block_fn(slab, *weights, padding=...)`` over the blocks of ``x``.

    ``out_channels``: the output's channel count, for an op that needs every
    input channel at once (channel chunks are merged); None keeps them.
    """
    h_ax, w_ax, c_ax = _axes(call.data_format)
    win = call.win
    rows = _pieces(x.chunks[h_ax], x.shape[h_ax], k_eff[0], win.sh, win.pt, win.oh)
    cols = _pieces(x.chunks[w_ax], x.shape[w_ax], k_eff[1], win.sw, win.pl, win.ow)
    meta = np.empty((0,) * 4, call.dtype)
    weight_args: list[Any] = []
    letters = iter("pqrstuvxyz")  # indices of their own (none of "nhwc"): contracted,
    for w in weights:  # so every task gets the whole (single-block) weight
        weight_args += [w, None] if w is None else [w, "".join(next(letters) for _ in range(w.ndim))]
    grid = []
    for o0h, o1h, r0, r1, top, bottom in rows:
        line = []
        for o0w, o1w, c0, c1, left, right in cols:
            index: list[slice] = [slice(None)] * 4
            index[h_ax], index[w_ax] = slice(r0, r1), slice(c0, c1)
            slab = x[tuple(index)]
            merged = {h_ax: -1, w_ax: -1}
            adjust: dict[str, Any] = {"h": o1h - o0h, "w": o1w - o0w}
            if out_channels is not None:
                merged[c_ax] = -1
                adjust["c"] = out_channels
            slab = slab.rechunk(merged)
            ind = "nhwc" if call.data_format == "channels_last" else "nchw"
            piece = da.blockwise(
                functools.partial(block_fn, padding=((top, bottom), (left, right))),
                ind,
                slab,
                ind,
                *weight_args,
                adjust_chunks=adjust,
                dtype=call.dtype,
                meta=meta,
                concatenate=True,
            )
            line.append(piece)
        grid.append(line[0] if len(line) == 1 else da.concatenate(line, axis=w_ax))
    return grid[0] if len(grid) == 1 else da.concatenate(grid, axis=h_ax)


def _single(a: np.ndarray | None) -> da.Array | None:
    """A small in-memory argument (kernel, bias) as one dask block, referenced once by every task."""
    return None if a is None else da.from_array(a, chunks=-1)


# ----------------------------------------------------------------- forward ops
def conv2d(
    x: da.Array,
    kernel: Any,
    bias: Any | None = None,
    strides: IntPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    *,
    activation: str | None = None,
    padding_mode: str = "zeros",
    threads: int | None = None,
) -> da.Array:
    """:func:`convpool.conv2d` on a dask array.

    Parameters
    ----------
    x : dask array of shape (N, H, W, C_in), or (N, C_in, H, W) with channels_first
        Chunked along any axes (see the module docstring); with a padding_mode
        other than zeros, split along the batch axis only (whole samples).
    kernel, bias, strides, padding, dilation_rate, groups, data_format, activation, padding_mode :
        As in :func:`convpool.conv2d`; kernel and bias are in-memory arrays.
    threads : int, optional
        convpool threads per task; default ``cores // concurrent tasks``.

    Returns
    -------
    dask array of shape (N, OH, OW, C_out) (or channels_first), lazy
        The batch chunks of ``x``; bitwise the in-memory result.
    """
    x = _as_dask(x, "x")
    threads = _check_threads(threads)
    call = ConvCall(_stand_in(x), kernel, bias, strides, padding, dilation_rate, groups,
                    data_format, padding_mode)
    check_activation(activation)
    win = call.win
    if call.padding_mode != "zeros":
        # A reflected or wrapped border reads the far side of the image: whole samples.
        run = functools.partial(
            _in_task(F.conv2d, threads, _cluster_plan()),
            strides=(win.sh, win.sw), padding=((win.pt, win.pb), (win.pl, win.pr)),
            dilation_rate=(win.dh, win.dw), groups=call.groups, data_format=call.data_format,
            activation=activation, padding_mode=call.padding_mode,
        )
        return _batchwise(run, x, call, call.kernel, call.bias)
    k_eff = (effective_size(win.kh, win.dh), effective_size(win.kw, win.dw))
    block = _in_task(_conv_block, threads, _cluster_plan())
    fn = functools.partial(block, strides=(win.sh, win.sw), dilation_rate=(win.dh, win.dw),
                           groups=call.groups, data_format=call.data_format,
                           activation=activation)
    return _forward(x, call, k_eff, fn, (_single(call.kernel), _single(call.bias)),
                    call.kernel.shape[3])


def _conv_block(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
                **kwargs: Any) -> np.ndarray:
    return F.conv2d(x, kernel, bias, **kwargs)


def conv2d_transpose(
    x: da.Array,
    kernel: Any,
    bias: Any | None = None,
    strides: IntPair = 1,
    padding: Padding = "valid",
    output_padding: IntPair | None = None,
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    *,
    activation: str | None = None,
    threads: int | None = None,
) -> da.Array:
    """:func:`convpool.conv2d_transpose` on a dask array, split along the batch axis.

    Parameters
    ----------
    x : dask array of shape (N, H, W, C_in), or (N, C_in, H, W) with channels_first
        Any chunks; each task gets whole samples (H, W and channel chunks
        are merged).
    kernel, bias, strides, padding, output_padding, dilation_rate, groups, data_format, activation :
        As in :func:`convpool.conv2d_transpose`; kernel and bias are in-memory arrays.
    threads : int, optional
        convpool threads per task; default ``cores // concurrent tasks``.

    Returns
    -------
    dask array of shape (N, OH, OW, C_out) (or channels_first), lazy
        The batch chunks of ``x``; bitwise the in-memory result.
    """
    x = _as_dask(x, "x")
    threads = _check_threads(threads)
    call = TransposeCall(_stand_in(x), kernel, bias, strides, padding, output_padding,
                         dilation_rate, groups, data_format)
    check_activation(activation)
    win = call.win
    block = functools.partial(
        _in_task(F.conv2d_transpose, threads, _cluster_plan()),
        strides=(win.sh, win.sw), padding=((win.pt, win.pb), (win.pl, win.pr)),
        output_padding=(win.oph, win.opw), dilation_rate=(win.dh, win.dw),
        groups=call.groups, data_format=call.data_format, activation=activation,
    )
    return _batchwise(block, x, call, call.kernel, call.bias)


def _batchwise(block_fn: Callable[..., np.ndarray], x: da.Array,
               call: ConvCall | TransposeCall, kernel: np.ndarray,
               bias: np.ndarray | None) -> da.Array:
    """``block_fn(samples, kernel, bias)`` over x's batch chunks, each of whole samples."""
    h_ax, w_ax, c_ax = _axes(call.data_format)
    out = call.out_shape
    ind = "nhwc" if call.data_format == "channels_last" else "nchw"
    bias_args: list[Any] = [None, None] if bias is None else [_single(bias), "t"]
    return da.blockwise(
        block_fn, ind,
        _whole_samples(x, x.chunks[0]), ind,
        _single(kernel), "pqrs",
        *bias_args,
        adjust_chunks={"h": out[h_ax], "w": out[w_ax], "c": out[c_ax]},
        dtype=call.dtype, meta=np.empty((0,) * 4, call.dtype), concatenate=True,
    )


def _per_sample(x: da.Array, op: Callable[..., np.ndarray], name: str, out_hw: Any,
                data_format: str, threads: int | None, **kwargs: Any) -> da.Array:
    """``op(samples, **kwargs)`` over x's batch chunks (whole samples), pooling H and W
    to ``out_hw`` (None: both axes dropped, the global pools without keepdims)."""
    from ._checks import check_data_format, compute_dtype

    fmt = check_data_format(data_format)
    stand_in = _stand_in(x)
    check_image(stand_in, fmt, name)  # the in-memory function's checks and messages
    dtype = compute_dtype(stand_in, "x")
    h_ax, w_ax, c_ax = _axes(fmt)
    fn = functools.partial(_in_task(op, threads, _cluster_plan()), data_format=fmt, **kwargs)
    xs = _whole_samples(x, x.chunks[0])
    if out_hw is None:
        return da.map_blocks(fn, xs, drop_axis=(h_ax, w_ax), chunks=(x.chunks[0], (x.shape[c_ax],)),
                             dtype=dtype, meta=np.empty((0, 0), dtype))
    oh, ow = out_hw
    chunks = [x.chunks[0], (0,), (0,), (0,)]
    chunks[h_ax], chunks[w_ax], chunks[c_ax] = (oh,), (ow,), (x.shape[c_ax],)
    return da.map_blocks(fn, xs, chunks=tuple(chunks), dtype=dtype, meta=np.empty((0,) * 4, dtype))


def global_avg_pool2d(x: da.Array, keepdims: bool = False, data_format: str = "channels_last",
                      *, threads: int | None = None) -> da.Array:
    """:func:`convpool.global_avg_pool2d` on a dask array, split along the batch axis;
    bitwise the in-memory result."""
    x = _as_dask(x, "x")
    keepdims = check_bool(keepdims, "keepdims")
    return _per_sample(x, F.global_avg_pool2d, "global_avg_pool2d",
                       (1, 1) if keepdims else None, data_format, _check_threads(threads),
                       keepdims=keepdims)


def global_max_pool2d(x: da.Array, keepdims: bool = False, data_format: str = "channels_last",
                      *, threads: int | None = None) -> da.Array:
    """:func:`convpool.global_max_pool2d` on a dask array, split along the batch axis;
    bitwise the in-memory result."""
    x = _as_dask(x, "x")
    keepdims = check_bool(keepdims, "keepdims")
    return _per_sample(x, F.global_max_pool2d, "global_max_pool2d",
                       (1, 1) if keepdims else None, data_format, _check_threads(threads),
                       keepdims=keepdims)


def _adaptive_hw(x: da.Array, output_size: Any, data_format: str) -> tuple[int, int]:
    from ._checks import check_data_format, to_nhwc_shape
    from ._shapes import adaptive_output_size

    fmt = check_data_format(data_format)
    _, h, w, _ = to_nhwc_shape(x.shape, fmt)
    check_image(_stand_in(x), fmt, "adaptive pooling")
    return adaptive_output_size(output_size, (h, w), f"x shape {x.shape} ({fmt})")


def adaptive_avg_pool2d(x: da.Array, output_size: Any, data_format: str = "channels_last",
                        *, threads: int | None = None) -> da.Array:
    """:func:`convpool.adaptive_avg_pool2d` on a dask array, split along the batch axis;
    bitwise the in-memory result."""
    x = _as_dask(x, "x")
    out_hw = _adaptive_hw(x, output_size, data_format)
    return _per_sample(x, F.adaptive_avg_pool2d, "adaptive_avg_pool2d", out_hw,
                       data_format, _check_threads(threads), output_size=out_hw)


def adaptive_max_pool2d(x: da.Array, output_size: Any, data_format: str = "channels_last",
                        *, threads: int | None = None) -> da.Array:
    """:func:`convpool.adaptive_max_pool2d` on a dask array (without indices), split
    along the batch axis; bitwise the in-memory result."""
    x = _as_dask(x, "x")
    out_hw = _adaptive_hw(x, output_size, data_format)
    return _per_sample(x, F.adaptive_max_pool2d, "adaptive_max_pool2d", out_hw,
                       data_format, _check_threads(threads), output_size=out_hw)


def _pool(x: da.Array, call_args: tuple[Any, ...], threads: int | None,
          fn: Callable[..., np.ndarray], **extra: Any) -> da.Array:
    """A pooling ``fn`` over the blocks of ``x``; ``call_args``: PoolCall's arguments.

    Each block gets its window's halo as explicit padding.  With ceil_mode
    the last block's padding also covers the overhang past the padded input;
    to max pooling (padding never wins) and to an average that counts real
    cells only, overhang and padding are the same.  An average with
    ``count_include_pad`` counts the padding but not the overhang: there the
    block's bottom and right pads are clipped to the real ones and the block
    runs with ceil_mode, which gives it back its last partial window.
    """
    x = _as_dask(x, "x")
    threads = _check_threads(threads)
    call = PoolCall(_stand_in(x), *call_args)
    win = call.win
    k_eff = (effective_size(win.kh, win.dh), effective_size(win.kw, win.dw))
    task = _in_task(_pool_block, threads, _cluster_plan())
    if (win.xb or win.xr) and extra.get("count_include_pad"):
        task = functools.partial(_clipped_pool_block, task=task, bottom=win.pb, right=win.pr)
        extra["ceil_mode"] = True
    if (win.dh, win.dw) != (1, 1):  # max pooling only
        extra["dilation_rate"] = (win.dh, win.dw)
    block = functools.partial(task, fn=fn, pool_size=(win.kh, win.kw), strides=(win.sh, win.sw),
                              data_format=call.data_format, **extra)
    return _forward(x, call, k_eff, block, (), None)


def _pool_block(*arrays: np.ndarray, fn: Callable[..., np.ndarray], **kwargs: Any) -> np.ndarray:
    """``fn(x)`` (forward) or ``fn(grad_out, x)`` (backward) on one block."""
    return fn(*arrays, **kwargs)


def _clipped_pool_block(x: np.ndarray, *, task: Callable[..., np.ndarray], bottom: int,
                        right: int, padding: tuple[tuple[int, int], tuple[int, int]],
                        **kwargs: Any) -> np.ndarray:
    """``task`` on a block with its bottom and right pads at most the real ones."""
    (top, b), (left, r) = padding
    return task(x, padding=((top, min(b, bottom)), (left, min(r, right))), **kwargs)


def max_pool2d(
    x: da.Array,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    *,
    dilation_rate: IntPair = 1,
    ceil_mode: bool = False,
    threads: int | None = None,
) -> da.Array:
    """:func:`convpool.max_pool2d` on a dask array (chunked along any axes); bitwise the
    in-memory result.  ``dilation_rate`` and ``ceil_mode`` as there; no
    ``return_indices`` (its flat indices address whole planes: pool in memory)."""
    return _pool(x, (pool_size, strides, padding, data_format, dilation_rate, ceil_mode),
                 threads, F.max_pool2d)


def avg_pool2d(
    x: da.Array,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool = False,
    *,
    ceil_mode: bool = False,
    divisor_override: SupportsIndex | None = None,
    threads: int | None = None,
) -> da.Array:
    """:func:`convpool.avg_pool2d` on a dask array (chunked along any axes); bitwise the
    in-memory result.  ``ceil_mode`` and ``divisor_override`` as there."""
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = check_divisor_override(divisor_override)
    return _pool(x, (pool_size, strides, padding, data_format, 1, ceil_mode), threads,
                 F.avg_pool2d, count_include_pad=count_include_pad,
                 divisor_override=divisor or None)


# ---------------------------------------------------------------- backward ops
def _whole_samples(a: da.Array, batch_chunks: tuple[int, ...]) -> da.Array:
    """``a`` split along the batch axis only, as ``batch_chunks``."""
    return a.rechunk((batch_chunks, -1, -1, -1))


def _check_grad_out(grad_out: object, call: ConvCall | PoolCall) -> da.Array:
    g = _as_dask(grad_out, "grad_out")
    check_grad_out(g.shape, g.dtype, call)
    return g


def conv2d_backward(
    grad_out: da.Array,
    x: da.Array,
    kernel: Any,
    strides: IntPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    *,
    input_grad: bool = True,
    padding_mode: str = "zeros",
    threads: int | None = None,
) -> tuple[da.Array | None, da.Array, da.Array]:
    """:func:`convpool.conv2d_backward` on dask arrays, split along the batch axis.

    Returns
    -------
    grad_x : dask array of x's shape (x's batch chunks), or None
        Bitwise the in-memory result.
    grad_kernel, grad_bias : dask arrays (one chunk)
        The per-block gradients summed in a fixed tree order: the in-memory
        result to rounding, exactly with one batch chunk.
    """
    x = _as_dask(x, "x")
    threads = _check_threads(threads)
    call = ConvCall(_stand_in(x), kernel, None, strides, padding, dilation_rate, groups,
                    data_format, padding_mode)
    g = _check_grad_out(grad_out, call)
    batch = x.chunks[0]
    xs, gs = _whole_samples(x, batch), _whole_samples(g, batch)
    win = call.win
    kw = dict(strides=(win.sh, win.sw), padding=((win.pt, win.pb), (win.pl, win.pr)),
              dilation_rate=(win.dh, win.dw), groups=call.groups, data_format=call.data_format,
              padding_mode=call.padding_mode)
    run = _in_task(F.conv2d_backward, threads, _cluster_plan())
    kernel_d = delayed(call.kernel, pure=True)
    parts = [delayed(run, pure=True)(gb, xb, kernel_d, input_grad=input_grad, **kw)
             for gb, xb in zip(gs.to_delayed().ravel(), xs.to_delayed().ravel())]
    dt = call.dtype
    grad_x = None
    if input_grad:
        blocks = [da.from_delayed(p[0], shape=(n,) + x.shape[1:], dtype=dt, meta=np.empty((0,) * 4, dt))
                  for p, n in zip(parts, batch)]
        # concatenate drops empty blocks: restore x's batch chunks (moves no data)
        grad_x = da.concatenate(blocks, axis=0).rechunk((batch, -1, -1, -1))
    gk = da.stack([da.from_delayed(p[1], shape=call.kernel.shape, dtype=dt) for p in parts])
    gb = da.stack([da.from_delayed(p[2], shape=(call.kernel.shape[3],), dtype=dt) for p in parts])
    if len(parts) == 1:
        return grad_x, gk[0], gb[0]
    return grad_x, gk.sum(axis=0, dtype=dt), gb.sum(axis=0, dtype=dt)


def _pool_backward(grad_out: da.Array, x: da.Array, call_args: tuple[Any, ...],
                   threads: int | None, fn: Callable[..., np.ndarray], **extra: Any) -> da.Array:
    """A pooling gradient ``fn`` over whole samples; ``call_args``: PoolCall's arguments."""
    x = _as_dask(x, "x")
    threads = _check_threads(threads)
    call = PoolCall(_stand_in(x), *call_args)
    g = _check_grad_out(grad_out, call)
    batch = x.chunks[0]
    win = call.win
    if (win.dh, win.dw) != (1, 1):  # max pooling only
        extra["dilation_rate"] = (win.dh, win.dw)
    block = functools.partial(
        _in_task(_pool_block, threads, _cluster_plan()), fn=fn, pool_size=(win.kh, win.kw),
        strides=(win.sh, win.sw), padding=((win.pt, win.pb), (win.pl, win.pr)),
        data_format=call.data_format, ceil_mode=call_args[5], **extra)
    xs = _whole_samples(x, batch)
    return da.map_blocks(block, _whole_samples(g, batch), xs, chunks=xs.chunks,
                         dtype=call.dtype, meta=np.empty((0,) * 4, call.dtype))


def max_pool2d_backward(
    grad_out: da.Array,
    x: da.Array,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    *,
    dilation_rate: IntPair = 1,
    ceil_mode: bool = False,
    threads: int | None = None,
) -> da.Array:
    """:func:`convpool.max_pool2d_backward` on dask arrays, split along the batch axis; bitwise."""
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    return _pool_backward(grad_out, x, (pool_size, strides, padding, data_format,
                                        dilation_rate, ceil_mode), threads, F.max_pool2d_backward)


def avg_pool2d_backward(
    grad_out: da.Array,
    x: da.Array,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool = False,
    *,
    ceil_mode: bool = False,
    divisor_override: SupportsIndex | None = None,
    threads: int | None = None,
) -> da.Array:
    """:func:`convpool.avg_pool2d_backward` on dask arrays, split along the batch axis; bitwise."""
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    divisor = check_divisor_override(divisor_override)
    return _pool_backward(grad_out, x, (pool_size, strides, padding, data_format, 1, ceil_mode),
                          threads, F.avg_pool2d_backward, count_include_pad=count_include_pad,
                          divisor_override=divisor or None)


# ----------------------------------------------------------------------- apply
def apply(model_or_layer: Any, x: da.Array, *, threads: int | None = None) -> da.Array:
    """Run a layer or :class:`convpool.Sequential` over a dask array, block by block.

    An unbuilt model is built here, once, for ``x``'s sample shape and compute
    dtype, so every task uses the same weights.  The model is put in the graph
    once (not once per task).

    Parameters
    ----------
    model_or_layer : convpool.Sequential or a convpool layer
    x : dask array of shape (N, ...)
        Split along the batch axis (other chunks are merged: layers need
        whole samples).
    threads : int, optional
        convpool threads per task; default ``cores // concurrent tasks``.

    Returns
    -------
    dask array of shape (N,) + the model's output shape per sample, lazy
    """
    if not callable(model_or_layer) or not hasattr(model_or_layer, "compute_output_shape"):
        raise TypeError(
            f"model_or_layer must be a convpool layer or Sequential, got "
            f"{type(model_or_layer).__name__}"
        )
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask array, got {type(x).__name__}")
    if any(np.isnan(d) for d in x.shape[1:]):  # the batch size may be unknown, a sample's not
        raise ValueError(
            f"x has unknown chunk sizes along its sample axes (shape {x.shape}): call "
            f"x.compute_chunk_sizes() first"
        )
    threads = _check_threads(threads)
    model = model_or_layer
    if not model.built:
        from ._checks import compute_dtype

        dtype = compute_dtype(np.empty(0, x.dtype), "x")  # needs no shape: chunks may be unknown
        for layer in getattr(model, "layers", [model]):
            if getattr(layer, "dtype", None) is None:
                layer.dtype = dtype
        model.build((None,) + tuple(x.shape[1:]))
    # An empty batch gives the output's per-sample shape and dtype without work.
    sample = model(np.zeros((0,) + tuple(x.shape[1:]), x.dtype))
    xs = x.rechunk((x.chunks[0],) + (-1,) * (x.ndim - 1))
    chunks = (xs.chunks[0],) + tuple((s,) for s in sample.shape[1:])
    run = _in_task(_apply_block, threads, _cluster_plan())
    drop = list(range(sample.ndim, x.ndim)) if sample.ndim < x.ndim else []
    new = list(range(x.ndim, sample.ndim)) if sample.ndim > x.ndim else []
    return da.map_blocks(run, xs, delayed(model, pure=True), chunks=chunks,
                         drop_axis=drop, new_axis=new, dtype=sample.dtype,
                         meta=np.empty((0,) * sample.ndim, sample.dtype))


def _apply_block(x: np.ndarray, model: Any) -> np.ndarray:
    return np.asarray(model(x))
