"""convpool.dask: the ops on dask arrays against the in-memory functions.

What convpool.dask promises (its module docstring), and how it is checked:

* forward ops (conv2d, max_pool2d, avg_pool2d) on inputs chunked along any
  axes, chunks smaller than the window included: a lazy dask array, bitwise
  the in-memory result, the batch chunks of x, output blocks that follow the
  input blocks (an output row in the block its window starts in);
* backward ops: grad_x and the pool gradients bitwise; grad_kernel and
  grad_bias of conv2d_backward exact with one batch chunk, ``fl(g0 + g1)`` of
  the per-block in-memory gradients with two, and otherwise within the
  derived bound of a sum of ``N * OH * OW`` products in any order
  (:func:`_batch_sum_tolerances`); the same bits on every compute;
* ``apply(model, x)``: x's batch chunks, bitwise the in-memory model on each
  batch block; Dense runs on BLAS, which is not bitwise batch-invariant, so the
  whole-batch call is matched within the derived bound of a dot product;
* bad arguments raise when the graph is built, with the in-memory function's
  exception type and message;
* threads: ``cores // concurrent tasks`` per task (threaded scheduler and a
  2-worker LocalCluster), ``threads=n`` wins, the count is thread-local.

The main checks run on the local threaded scheduler; a representative subset
runs again on a ``LocalCluster`` of 2 worker processes x 1 thread (the
module-scoped ``client`` fixture; helpers sent to the workers are module-level
so that they pickle).
"""

from __future__ import annotations

import bisect
import functools
import importlib.machinery
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")

import dask  # noqa: E402

import convpool  # noqa: E402
import convpool.dask as cd  # noqa: E402
import convpool.functional as F  # noqa: E402
from convpool import reference  # noqa: E402
from convpool._shapes import window_2d  # noqa: E402
from convpool._threads import task_threads  # noqa: E402
from _helpers import (  # noqa: E402
    assert_bitwise_equal,
    assert_conv_close,
    case_id,
    from_layout,
    gamma,
    to_layout,
)

DTYPES = (np.float32, np.float64)
LAYOUTS = ("channels_last", "channels_first")
COMBOS = [(np.dtype(d), lay) for d in DTYPES for lay in LAYOUTS]
N, H, W = 5, 13, 11  # every case: x of (N, H, W, C), prime spatial sizes
CORES = len(os.sched_getaffinity(0))
# The threaded scheduler's default pool has a thread per core: cores // cores per task.
THREADED_DEFAULT = max(1, CORES // CORES)
# Without OpenMP every thread count reads 1: the tests of counts need it.
needs_openmp = pytest.mark.skipif(not convpool._config.config()["openmp"],
                                  reason="built without OpenMP: every thread count is 1")

# Input chunkings, NHWC order; None: the whole axis.  Every spatial kind: chunks
# smaller than any window (1 along H, 1 along W, 3x2), empty chunks, one block.
CHUNKINGS = [
    (2, 5, 4, 2),
    (5, 1, None, None),
    (1, None, 1, 2),
    ((2, 0, 3), (4, 0, 9), (0, 11), None),
    (3, 3, 2, None),
    (None, None, None, None),
]


# ======================================================================= helpers
def _chunks_text(spec) -> str:
    def one(c):
        if c is None:
            return "full"
        if isinstance(c, tuple):
            return "+".join(str(v) for v in c)
        return str(c)

    return "x".join(one(c) for c in spec)


def _to_dask(a, spec_nhwc, data_format):
    """``a`` (in data_format) as a dask array chunked as ``spec_nhwc`` (NHWC order)."""
    spec = tuple(-1 if c is None else c for c in spec_nhwc)
    if data_format == "channels_first":
        spec = (spec[0], spec[3], spec[1], spec[2])
    return da.from_array(a, chunks=spec)


def _axes(data_format):
    """(H axis, W axis, channel axis)."""
    return (1, 2, 3) if data_format == "channels_last" else (2, 3, 1)


def _x(rng, c, dtype, data_format, n=N):
    return to_layout(rng.standard_normal((n, H, W, c)).astype(dtype), data_format)


def _assert_lazy(y, want, dx, cfg):
    """A dask array with the in-memory result's shape and dtype, x's batch chunks, numpy meta."""
    assert isinstance(y, da.Array), f"{type(y).__name__} is not a dask array; {cfg}"
    assert y.shape == want.shape, f"shape {y.shape} != in-memory {want.shape}; {cfg}"
    assert y.dtype == want.dtype, f"dtype {y.dtype} != in-memory {want.dtype}; {cfg}"
    assert y.chunks[0] == dx.chunks[0], f"batch chunks {y.chunks[0]} != x's {dx.chunks[0]}; {cfg}"
    assert type(y._meta) is np.ndarray, f"meta is {type(y._meta).__name__}; {cfg}"
    assert y._meta.dtype == want.dtype and y._meta.ndim == want.ndim, (y._meta, cfg)


def _assert_blocks_follow_input(y, dx, axis, stride, pad_lo, cfg):
    """Each output block along ``axis`` holds the rows whose windows start in one input block.

    A window starting in the padding counts as starting in the nearest real
    row.  Blocks are in input order, at most one per input block.
    """
    length = dx.shape[axis]
    ends = np.cumsum(dx.chunks[axis]).tolist()
    owners = []
    o = 0
    for size in y.chunks[axis]:
        blocks = {
            bisect.bisect_right(ends, min(max(i * stride - pad_lo, 0), length - 1))
            for i in range(o, o + size)
        }
        assert len(blocks) <= 1, (
            f"output block of rows {o}..{o + size - 1} (axis {axis}) starts its windows in "
            f"input blocks {sorted(blocks)}; chunks {y.chunks[axis]} for {dx.chunks[axis]}; {cfg}"
        )
        owners += list(blocks)
        o += size
    assert owners == sorted(set(owners)), (
        f"output blocks (axis {axis}) map to input blocks {owners}; {cfg}")


def _compute(y, scheduler="threads"):
    return y.compute(scheduler=scheduler)


def _batch_sum_tolerances(g, x, kernel, dtype, **conv_kwargs):
    """Elementwise bounds on ``|dask - in-memory|`` for conv2d_backward's grad_kernel, grad_bias.

    Derivation.  ``grad_kernel[a, b, c, o]`` is a sum of ``m = N * OH * OW``
    products ``x_pad * g`` (taps in the padding give exact zeros) and
    ``grad_bias[o]`` a sum of the m values ``g``.  The in-memory call sums them
    in its own order; convpool.dask sums each batch block's terms in memory and
    then adds the block results in a tree: another order of the same m terms.
    Any order satisfies (Higham, *Accuracy and Stability*, 3.1 and 3.5)
    ``|fl(s) - s| <= gamma_m S``, S the sum of |terms| (one more rounding for
    the products than the m - 1 additions), so

        |dask - in-memory| <= 2 gamma_m S     (u of the compute dtype),

    plus ``4 * tiny`` for underflowing products, as in ``conv_tolerance``.  S is
    the same gradient of ``|g|, |x|`` (and ``|kernel|``: unused by these two)
    from the float64 reference, its own error absorbed by ``1 + gamma^{f64}_m``.

    Returns
    -------
    (tol_kernel, tol_bias) : ndarrays of float64
    """
    oc = np.shape(kernel)[3]
    m = max(int(np.size(g)) // max(oc, 1), 1)
    _, s_k, s_b = reference.conv2d_backward(
        np.abs(np.asarray(g, np.float64)), np.abs(np.asarray(x, np.float64)),
        np.asarray(kernel, np.float64), input_grad=False, **conv_kwargs)
    tiny = float(np.finfo(dtype).tiny)
    scale = 2 * gamma(m, dtype) * (1 + gamma(m, np.float64))
    return scale * s_k + 4 * tiny, scale * s_b + 4 * tiny


def _dense_tolerance(h, kernel, bias, dtype):
    """Bound on ``|Dense(block) - Dense(whole batch)|``: BLAS may sum in another order.

    ``y = b + sum_{k<K} h_k w_k`` is a length-K dot product and one more
    addition: any order is within ``gamma_{K+1} (|h| |w| + |b|)`` of the exact
    value (Higham 3.1), so two orders differ by at most twice that (compute
    dtype's u), plus ``4 * tiny``.
    """
    k = np.shape(kernel)[0]
    s = np.abs(np.asarray(h, np.float64)) @ np.abs(np.asarray(kernel, np.float64))
    if bias is not None:
        s = s + np.abs(np.asarray(bias, np.float64))
    s = s * (1 + gamma(k + 1, np.float64))
    return 2 * gamma(k + 1, dtype) * s + 4 * float(np.finfo(dtype).tiny)


# ==================================================================== conv2d cases
def _conv(**kw):
    cfg = dict(c=3, oc=4, kernel=3, strides=1, padding="valid", dilation=1, groups=1,
               bias=True, act=None)
    cfg.update(kw)
    return cfg


CONV_GEOMETRIES = [
    _conv(),
    _conv(strides=2, padding="same", act="relu"),
    _conv(kernel=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2)),
    # padding larger than the kernel: whole output blocks see only padding
    _conv(kernel=5, padding=((7, 1), (0, 9)), bias=False),
    _conv(c=6, oc=6, kernel=2, strides=3, padding=((4, 4), (5, 5)), groups=3, act="relu"),
    _conv(oc=3, kernel=3, padding="same", dilation=2, groups=3),  # depthwise
    _conv(c=6, oc=12, kernel=3, padding=2, strides=2, groups=6),  # depthwise, multiplier 2
    _conv(kernel=1, oc=5),  # pointwise
    _conv(kernel=4, strides=(1, 2), padding="same", dilation=(2, 1)),  # even kernel
    _conv(kernel=5, oc=16, strides=5, bias=False),  # the seed's layer: rows dropped
]


def _conv_params(geometries, chunkings=CHUNKINGS):
    out = []
    for i, geo in enumerate(geometries):
        for j, (dtype, layout) in enumerate(COMBOS):
            chunks = chunkings[(i + j) % len(chunkings)]
            cfg = dict(geo, dtype=dtype, data_format=layout, chunks=chunks)
            out.append(pytest.param(cfg, id=_conv_id(cfg)))
    return out


def _conv_id(cfg):
    return case_id(c=cfg["c"], oc=cfg["oc"], kernel=cfg["kernel"], strides=cfg["strides"],
                   padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"],
                   bias=cfg["bias"], dtype=cfg["dtype"], data_format=cfg["data_format"],
                   **({"act": cfg["act"]} if cfg["act"] else {}),
                   chunks=_chunks_text(cfg["chunks"]))


def _pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def _conv_inputs(cfg, rng):
    kh, kw = _pair(cfg["kernel"])
    x = _x(rng, cfg["c"], cfg["dtype"], cfg["data_format"])
    kshape = (kh, kw, cfg["c"] // cfg["groups"], cfg["oc"])
    kernel = rng.standard_normal(kshape).astype(cfg["dtype"])
    bias = rng.standard_normal(cfg["oc"]).astype(cfg["dtype"]) if cfg["bias"] else None
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"], dilation_rate=cfg["dilation"],
                  groups=cfg["groups"], data_format=cfg["data_format"])
    return x, kernel, bias, kwargs


def _check_conv2d(cfg, rng, scheduler="threads"):
    x, kernel, bias, kwargs = _conv_inputs(cfg, rng)
    dx = _to_dask(x, cfg["chunks"], cfg["data_format"])
    want = convpool.conv2d(x, kernel, bias, activation=cfg["act"], **kwargs)
    y = cd.conv2d(dx, kernel, bias, activation=cfg["act"], **kwargs)
    _assert_lazy(y, want, dx, cfg)
    h_ax, w_ax, c_ax = _axes(cfg["data_format"])
    assert y.chunks[c_ax] == (cfg["oc"],), f"conv output channels in one chunk: {y.chunks}"
    win = window_2d((H, W), _pair(cfg["kernel"]), cfg["strides"], cfg["padding"], cfg["dilation"])
    _assert_blocks_follow_input(y, dx, h_ax, win.sh, win.pt, cfg)
    _assert_blocks_follow_input(y, dx, w_ax, win.sw, win.pl, cfg)
    assert_bitwise_equal(_compute(y, scheduler), want, _conv_id(cfg), what="dask vs in-memory")


@pytest.mark.parametrize("cfg", _conv_params(CONV_GEOMETRIES))
def test_conv2d_bitwise_equals_in_memory(cfg, rng):
    _check_conv2d(cfg, rng)


@pytest.mark.parametrize("act", [None, "relu"], ids=["linear", "relu"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nhwc", "nchw"])
def test_conv2d_output_block_of_padding_only(layout, act, rng):
    """The last input block along H (W) holds no window start; one output row (column),
    whose window lies in the bottom (right) padding, belongs to it: a block reading no x.

    k2, s4, padding ((1, 4), (0, 3)) on 13 x 11: windows start at rows -1, 3, 7, 11, 15
    and columns 0, 4, 8, 12.  With H chunks (12, 1) and W chunks (9, 2), output row 4
    (start 15) and column 3 (start 12) see only padding: they are the bias.
    """
    cfg = dict(_conv(kernel=2, strides=4, padding=((1, 4), (0, 3)), act=act),
               dtype=np.dtype(np.float32), data_format=layout, chunks=(2, (12, 1), (9, 2), None))
    _check_conv2d(cfg, rng)
    x, kernel, bias, kwargs = _conv_inputs(cfg, rng)
    y = _compute(cd.conv2d(_to_dask(x, cfg["chunks"], layout), kernel, bias, activation=act,
                           **kwargs))
    y = from_layout(y, layout)
    assert y.shape == (N, 5, 4, 4), y.shape
    edge = np.concatenate([y[:, 4].reshape(-1, 4), y[:, :, 3].reshape(-1, 4)])
    expected = np.maximum(bias, 0) if act == "relu" else bias
    assert np.array_equal(edge, np.broadcast_to(expected, edge.shape)), (edge[:3], expected)


# ====================================================================== transposed conv
TRANSPOSE_CASES = [
    # (kernel, strides, padding, output_padding, dilation, groups, act, chunks NHWC)
    (3, 2, "same", None, 1, 1, None, (2, None, None, None)),
    ((3, 2), (2, 1), 1, (1, 0), (1, 2), 2, "relu", (1, 6, (4, 7), 2)),
    (2, 3, "valid", None, 1, 1, "relu", ((3, 2), 5, 4, 1)),
    (1, 1, ((0, 1), (2, 0)), None, 1, 1, None, (5, None, None, None)),
]


def _transpose_id(case):
    k, s, p, op, d, g, act, chunks = case
    return "-".join([f"k{k}", f"s{s}", f"p{p}", f"op{op}", f"d{d}", f"g{g}", f"{act}",
                     "chunks" + _chunks_text(chunks)])


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nhwc", "nchw"])
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_transpose_id)
def test_conv2d_transpose_bitwise_equals_in_memory(case, layout, rng):
    k, s, p, op, d, g, act, chunks = case
    kh, kw = (k, k) if isinstance(k, int) else k
    c, ocg = 4, 3
    x = _x(rng, c, np.float32, layout)
    kernel = rng.standard_normal((kh, kw, ocg, c)).astype(np.float32)
    bias = rng.standard_normal(ocg * g).astype(np.float32)
    kwargs = dict(strides=s, padding=p, output_padding=op, dilation_rate=d, groups=g,
                  data_format=layout, activation=act)
    want = convpool.conv2d_transpose(x, kernel, bias, **kwargs)
    dx = _to_dask(x, chunks, layout)
    y = cd.conv2d_transpose(dx, kernel, bias, **kwargs)
    _assert_lazy(y, want, dx, case)
    assert_bitwise_equal(_compute(y), want, _transpose_id(case), what="dask vs in-memory")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes_over_batch_chunks(mode, rng):
    x = _x(rng, 3, np.float32, "channels_last")
    kernel = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    kwargs = dict(strides=(2, 1), padding=((2, 1), (1, 0)), padding_mode=mode)
    dx = _to_dask(x, (3, 6, 4, None), "channels_last")  # H and W chunks: merged
    want = convpool.conv2d(x, kernel, bias, activation="relu", **kwargs)
    y = cd.conv2d(dx, kernel, bias, activation="relu", **kwargs)
    _assert_lazy(y, want, dx, mode)
    assert_bitwise_equal(_compute(y), want, mode, what="dask vs in-memory")
    g = rng.standard_normal(want.shape).astype(np.float32)
    dgx, dgk, dgb = cd.conv2d_backward(_to_dask(g, (3, None, None, None), "channels_last"), dx,
                                       kernel, **kwargs)
    gx = convpool.conv2d_backward(g, x, kernel, **kwargs)[0]
    assert_bitwise_equal(_compute(dgx), gx, mode, what="dask grad_x vs in-memory")
    # Two batch blocks (3 + 2 samples): the kernel and bias gradients are fl(g0 + g1).
    blocks = [convpool.conv2d_backward(g[i:j], x[i:j], kernel, **kwargs) for i, j in ((0, 3), (3, 5))]
    assert_bitwise_equal(_compute(dgk), blocks[0][1] + blocks[1][1], mode, what="grad_kernel")
    assert_bitwise_equal(_compute(dgb), blocks[0][2] + blocks[1][2], mode, what="grad_bias")
    with pytest.raises(ValueError, match="smaller than the input"):
        cd.conv2d(dx, kernel, padding=13, padding_mode="reflect")


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nhwc", "nchw"])
@pytest.mark.parametrize(
    "name, kwargs",
    [("global_avg_pool2d", {}), ("global_avg_pool2d", dict(keepdims=True)),
     ("global_max_pool2d", {}), ("global_max_pool2d", dict(keepdims=True)),
     ("adaptive_avg_pool2d", dict(output_size=(4, 3))), ("adaptive_avg_pool2d", dict(output_size=1)),
     ("adaptive_max_pool2d", dict(output_size=(5, None)))],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}{w}" for k, w in v.items()) or "default",
)
def test_global_and_adaptive_pools_over_batch_chunks(name, kwargs, layout, rng):
    x = _x(rng, 3, np.float32, layout)
    x[1, 0, 0, 0] = np.nan
    dx = _to_dask(x, ((2, 3), 6, 5, 2), layout)
    want = getattr(convpool, name)(x, data_format=layout, **kwargs)
    y = getattr(cd, name)(dx, data_format=layout, **kwargs)
    assert isinstance(y, da.Array) and y.shape == want.shape and y.dtype == want.dtype
    assert y.chunks[0] == dx.chunks[0]
    assert_bitwise_equal(_compute(y), want, name, what="dask vs in-memory")


def test_global_and_adaptive_pools_bad_arguments_raise_at_build():
    dx = da.zeros((N, H, W, 3), chunks=2, dtype=np.float32)
    with pytest.raises(TypeError, match="keepdims must be a bool"):
        cd.global_avg_pool2d(dx, keepdims=1)
    with pytest.raises(ValueError, match="output_size must be positive"):
        cd.adaptive_max_pool2d(dx, 0)
    with pytest.raises(ValueError, match="data_format must be"):
        cd.global_max_pool2d(dx, data_format="NHWC")
    with pytest.raises(ValueError, match="H and W of at least 1"):
        cd.global_avg_pool2d(da.zeros((2, 0, 3, 1), dtype=np.float32))


def test_conv2d_transpose_bad_arguments_raise_at_build():
    x = da.zeros((N, H, W, 4), chunks=2, dtype=np.float32)
    kernel = np.zeros((3, 3, 2, 4), np.float32)
    for kw, pattern in [(dict(strides=2, output_padding=2), "output_padding"),
                        (dict(bias=np.zeros(3, np.float32)), r"bias must have shape"),
                        (dict(padding="full"), "padding must be"),
                        (dict(activation="tanh"), "activation must be")]:
        with pytest.raises(ValueError, match=pattern):
            cd.conv2d_transpose(x, kernel, **kw)
        with pytest.raises(ValueError, match=pattern):
            convpool.conv2d_transpose(np.zeros(x.shape, np.float32), kernel, **kw)
    with pytest.raises(ValueError, match="3 input channels|4 input channels"):
        cd.conv2d_transpose(da.zeros((N, H, W, 3), dtype=np.float32), kernel)


# ====================================================================== pool cases
def _pool(**kw):
    cfg = dict(c=3, pool=2, strides=None, padding="valid")
    cfg.update(kw)
    return cfg


POOL_GEOMETRIES = [
    _pool(),  # default strides = pool: the last row / column dropped
    _pool(pool=3, strides=1, padding="same"),
    _pool(pool=3, strides=2, padding=((2, 0), (1, 2))),  # pads = pool - 1
    _pool(pool=2, strides=(1, 3), padding=1),  # stride > pool along W
    _pool(pool=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1))),
    _pool(pool=4, strides=1, padding="same"),  # even pool: pad (1, 2)
    _pool(c=5, pool=(1, 5), strides=(1, 2), padding=(0, 2)),
    _pool(pool=(5, 3), strides=(4, 3), padding="same"),  # stride > chunk sizes
]


def _pool_id(cfg):
    extra = {} if cfg["kind"] == "max" else {"cip": cfg["cip"]}
    return case_id(c=cfg["c"], pool=cfg["pool"], strides=cfg["strides"], padding=cfg["padding"],
                   **extra, dtype=cfg["dtype"], data_format=cfg["data_format"],
                   chunks=_chunks_text(cfg["chunks"]))


def _pool_params(kind, geometries, chunkings=CHUNKINGS):
    out = []
    for i, geo in enumerate(geometries):
        for j, (dtype, layout) in enumerate(COMBOS):
            cfg = dict(geo, kind=kind, dtype=dtype, data_format=layout,
                       chunks=chunkings[(i + 2 * j) % len(chunkings)], cip=bool((i + j) % 2))
            out.append(pytest.param(cfg, id=_pool_id(cfg)))
    return out


def _pool_fns(cfg):
    """(dask fn, in-memory fn, extra kwargs) of cfg's kind."""
    if cfg["kind"] == "max":
        return cd.max_pool2d, convpool.max_pool2d, {}
    return cd.avg_pool2d, convpool.avg_pool2d, {"count_include_pad": cfg["cip"]}


def _pool_kwargs(cfg):
    return dict(strides=cfg["strides"], padding=cfg["padding"], data_format=cfg["data_format"])


def _check_pool(cfg, rng, scheduler="threads"):
    x = _x(rng, cfg["c"], cfg["dtype"], cfg["data_format"])
    dx = _to_dask(x, cfg["chunks"], cfg["data_format"])
    dfn, mfn, extra = _pool_fns(cfg)
    kw = dict(_pool_kwargs(cfg), **extra)
    want = mfn(x, cfg["pool"], **kw)
    y = dfn(dx, cfg["pool"], **kw)
    _assert_lazy(y, want, dx, cfg)
    h_ax, w_ax, c_ax = _axes(cfg["data_format"])
    assert y.chunks[c_ax] == dx.chunks[c_ax], f"pooling keeps the channel chunks: {y.chunks}"
    strides = cfg["pool"] if cfg["strides"] is None else cfg["strides"]
    win = window_2d((H, W), _pair(cfg["pool"]), strides, cfg["padding"], 1)
    _assert_blocks_follow_input(y, dx, h_ax, win.sh, win.pt, cfg)
    _assert_blocks_follow_input(y, dx, w_ax, win.sw, win.pl, cfg)
    assert_bitwise_equal(_compute(y, scheduler), want, _pool_id(cfg), what="dask vs in-memory")


@pytest.mark.parametrize("cfg", _pool_params("max", POOL_GEOMETRIES))
def test_max_pool2d_bitwise_equals_in_memory(cfg, rng):
    _check_pool(cfg, rng)


@pytest.mark.parametrize("cfg", _pool_params("avg", POOL_GEOMETRIES))
def test_avg_pool2d_bitwise_equals_in_memory(cfg, rng):
    _check_pool(cfg, rng)


# ------------------------------------------------------------ NaN, inf, integer input
@pytest.mark.parametrize("chunks", [(5, 1, None, None), (2, 4, 1, None), (3, 6, 5, 2)],
                         ids=lambda c: f"chunks={_chunks_text(c)}")
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nhwc", "nchw"])
def test_nan_and_inf_at_block_edges(layout, chunks, rng):
    """NaN and infinities planted on block edges and in the corners propagate as in memory."""
    x = rng.standard_normal((N, H, W, 4)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    x[1, 3, 4, 1] = np.nan  # the last row of an H block of 4
    x[2, 5, 5, 2] = np.inf
    x[3, 12, 10, 3] = -np.inf
    x[4, 6, :, 0] = np.nan
    x = to_layout(x, layout)
    kernel = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
    kernel[0, 0, 0, 0] = np.inf  # a tap on a padded zero: 0 * inf, or skipped, as in memory
    dx = _to_dask(x, chunks, layout)
    calls = [
        ("conv2d", cd.conv2d, convpool.conv2d, (kernel,), dict(padding="same")),
        ("conv2d_pad_gt_kernel", cd.conv2d, convpool.conv2d, (kernel,),
         dict(padding=((5, 6), (4, 4)), strides=2)),
        ("max_pool2d", cd.max_pool2d, convpool.max_pool2d, (3,), dict(strides=1, padding="same")),
        ("avg_pool2d", cd.avg_pool2d, convpool.avg_pool2d, (3,), dict(strides=2, padding=1)),
    ]
    for name, dfn, mfn, args, kw in calls:
        want = mfn(x, *args, data_format=layout, **kw)
        got = _compute(dfn(dx, *args, data_format=layout, **kw))
        assert np.isnan(want).any(), f"{name}: the planted NaN must reach the output"
        assert np.array_equal(got, want, equal_nan=True), name
        assert_bitwise_equal(got, want, f"{name} {layout} {chunks}", what="dask vs in-memory")


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float16], ids=["i16", "u8", "f16"])
def test_non_float_input_computes_in_float32(dtype, rng):
    x = rng.integers(0, 9, size=(N, H, W, 3)).astype(dtype)
    dx = _to_dask(x, (2, 4, 3, None), "channels_last")
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    for dfn, mfn, args in [(cd.conv2d, convpool.conv2d, (kernel,)),
                           (cd.max_pool2d, convpool.max_pool2d, (2,)),
                           (cd.avg_pool2d, convpool.avg_pool2d, (3, 1, "same"))]:
        want = mfn(x, *args)
        y = dfn(dx, *args)
        assert y.dtype == np.float32 and y._meta.dtype == np.float32, mfn.__name__
        assert_bitwise_equal(_compute(y), want, f"{mfn.__name__} {np.dtype(dtype)}")


def test_empty_batch(rng):
    x = np.zeros((0, H, W, 3), np.float32)
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 5, 4, 3))
    for dfn, mfn, args in [(cd.conv2d, convpool.conv2d, (kernel, None, 1, "same")),
                           (cd.max_pool2d, convpool.max_pool2d, (2,)),
                           (cd.avg_pool2d, convpool.avg_pool2d, (3, 2, "same"))]:
        want = mfn(x, *args)
        y = dfn(dx, *args)
        assert y.shape == want.shape, mfn.__name__
        assert _compute(y).shape == want.shape, mfn.__name__


def test_forward_is_lazy_and_deterministic(rng):
    """Nothing runs before compute; two computes (and a persist) give the same bits."""
    calls = []
    x = rng.standard_normal((N, H, W, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)

    def counted(block):
        calls.append(block.shape)
        return block

    dx = _to_dask(x, (2, 4, 3, None), "channels_last").map_blocks(
        counted, dtype=x.dtype, meta=np.empty((0,) * 4, x.dtype))
    y = cd.avg_pool2d(cd.conv2d(dx, kernel, padding="same", activation="relu"), 3, 1, "same")
    assert calls == [], "building the graph read x"
    first = _compute(y)
    assert calls, "computing never read x"
    assert_bitwise_equal(first, _compute(y), "conv+pool", what="two computes")
    assert_bitwise_equal(first, _compute(y.persist(scheduler="threads")), "conv+pool",
                         what="compute vs persist")
    want = convpool.avg_pool2d(convpool.conv2d(x, kernel, padding="same", activation="relu"),
                               3, 1, "same")
    assert_bitwise_equal(first, want, "conv+pool", what="dask vs in-memory")


# ================================================================== backward cases
BACKWARD_CHUNKS = [  # (x chunks, grad_out chunks), NHWC order
    ((2, None, None, None), (2, None, None, None)),
    ((2, 5, 4, 2), (3, 2, 2, 2)),  # spatially chunked; grad_out batch-chunked otherwise
    ((None, 4, 4, None), (1, 3, 3, 1)),  # one batch chunk: every gradient exact
    ((1, None, None, None), (5, None, None, None)),  # five batch chunks
    ((3, 4, 4, None), (None, None, None, None)),  # two batch chunks: fl(g0 + g1)
    (((2, 0, 3), None, 5, 1), (1, 2, None, None)),  # an empty batch chunk
]

CONV_BACKWARD_GEOMETRIES = [
    _conv(padding="same"),
    _conv(c=6, oc=6, kernel=3, strides=2, padding=((4, 1), (0, 2)), dilation=(1, 2), groups=3),
    _conv(oc=3, kernel=3, groups=3),  # depthwise
    _conv(kernel=1, oc=5),  # pointwise (its grad_x goes through the forward kernel)
    _conv(kernel=(2, 3), strides=3, padding=((4, 4), (5, 5))),  # padding > kernel
]


def _conv_backward_params():
    out = []
    for i, geo in enumerate(CONV_BACKWARD_GEOMETRIES):
        for j, (dtype, layout) in enumerate(COMBOS):
            xc, gc = BACKWARD_CHUNKS[(i + j) % len(BACKWARD_CHUNKS)]
            cfg = dict(geo, bias=False, dtype=dtype, data_format=layout, chunks=xc, g_chunks=gc)
            out.append(pytest.param(cfg, id=_conv_id(cfg) + f"-g_chunks={_chunks_text(gc)}"))
    return out


def _batch_blocks(n_chunks):
    starts = np.cumsum((0,) + tuple(n_chunks))
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def _check_conv2d_backward(cfg, rng, scheduler="threads"):
    x, kernel, _, kwargs = _conv_inputs(cfg, rng)
    out_shape = convpool.conv2d(x[:1], kernel, **kwargs).shape
    g = rng.standard_normal((N,) + out_shape[1:]).astype(cfg["dtype"])
    dx = _to_dask(x, cfg["chunks"], cfg["data_format"])
    dg = _to_dask(g, cfg["g_chunks"], cfg["data_format"])
    want = convpool.conv2d_backward(g, x, kernel, **kwargs)
    got = cd.conv2d_backward(dg, dx, kernel, **kwargs)
    assert len(got) == 3 and all(isinstance(a, da.Array) for a in got), got
    _assert_lazy(got[0], want[0], dx, cfg)
    for name, a, w in zip(("grad_kernel", "grad_bias"), got[1:], want[1:]):
        assert a.shape == w.shape and a.dtype == w.dtype, (name, a, w.shape, w.dtype)
        assert a.numblocks == (1,) * a.ndim, f"{name} in one chunk: {a.chunks}"
    gx, gk, gb = dask.compute(*got, scheduler=scheduler)
    text = _conv_id(cfg)
    assert_bitwise_equal(gx, want[0], text, what="grad_x: dask vs in-memory")
    blocks = _batch_blocks(dx.chunks[0])
    if len(blocks) == 1:
        assert_bitwise_equal(gk, want[1], text, what="grad_kernel, one batch chunk")
        assert_bitwise_equal(gb, want[2], text, what="grad_bias, one batch chunk")
    else:
        tol_k, tol_b = _batch_sum_tolerances(g, x, kernel, cfg["dtype"], **kwargs)
        assert_conv_close(gk, want[1], tol_k, f"grad_kernel: {text}")
        assert_conv_close(gb, want[2], tol_b, f"grad_bias: {text}")
    if len(blocks) == 2:  # one way to add two blocks: the sum of the block results
        parts = [convpool.conv2d_backward(g[s], x[s], kernel, **kwargs) for s in blocks]
        assert_bitwise_equal(gk, parts[0][1] + parts[1][1], text, what="grad_kernel, two blocks")
        assert_bitwise_equal(gb, parts[0][2] + parts[1][2], text, what="grad_bias, two blocks")
    return gx, gk, gb


@pytest.mark.parametrize("cfg", _conv_backward_params())
def test_conv2d_backward_matches_in_memory(cfg, rng):
    _check_conv2d_backward(cfg, rng)


def test_backward_empty_batch_chunk_kept(rng):
    """Regression: conv2d_backward's grad_x lost an empty batch chunk (da.concatenate drops it)."""
    x = rng.standard_normal((N, H, W, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    dx = da.from_array(x, chunks=((2, 0, 3), -1, -1, -1))
    dg = da.zeros((N, H - 2, W - 2, 2), chunks=2, dtype=np.float32)
    assert cd.max_pool2d_backward(da.zeros((N, 6, 5, 3), chunks=2, dtype=np.float32), dx,
                                  2).chunks[0] == (2, 0, 3)
    assert cd.conv2d_backward(dg, dx, kernel)[0].chunks[0] == (2, 0, 3)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nhwc", "nchw"])
def test_conv2d_backward_deterministic_and_input_grad_false(layout, rng):
    cfg = dict(CONV_BACKWARD_GEOMETRIES[1], bias=False, dtype=np.dtype(np.float32),
               data_format=layout, chunks=(1, 4, None, None), g_chunks=(2, None, 3, None))
    x, kernel, _, kwargs = _conv_inputs(cfg, rng)
    g = rng.standard_normal(convpool.conv2d(x, kernel, **kwargs).shape).astype(np.float32)
    dx = _to_dask(x, cfg["chunks"], layout)
    dg = _to_dask(g, cfg["g_chunks"], layout)
    full = cd.conv2d_backward(dg, dx, kernel, **kwargs)
    runs = [dask.compute(*full, scheduler="threads") for _ in range(3)]
    runs.append(dask.compute(*cd.conv2d_backward(dg, dx, kernel, **kwargs, threads=2),
                             scheduler="threads"))
    runs.append(dask.compute(*full, scheduler="sync"))
    for i, run in enumerate(runs[1:], 1):
        for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), runs[0], run):
            assert_bitwise_equal(a, b, f"run {i}", what=name)
    no_x = cd.conv2d_backward(dg, dx, kernel, **kwargs, input_grad=False)
    assert no_x[0] is None
    gk, gb = dask.compute(no_x[1], no_x[2], scheduler="threads")
    assert_bitwise_equal(gk, runs[0][1], layout, what="grad_kernel, input_grad=False")
    assert_bitwise_equal(gb, runs[0][2], layout, what="grad_bias, input_grad=False")


def test_conv2d_backward_integer_grad_out_is_cast(rng):
    x = rng.standard_normal((N, H, W, 3)).astype(np.float64)
    kernel = rng.standard_normal((3, 3, 3, 2))
    g = rng.integers(-3, 4, size=(N, H - 2, W - 2, 2)).astype(np.int16)
    want = convpool.conv2d_backward(g, x, kernel)
    got = dask.compute(*cd.conv2d_backward(da.from_array(g, chunks=2), da.from_array(x, chunks=5),
                                           kernel), scheduler="threads")
    for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), got, want):
        assert_bitwise_equal(a, b, "int16 grad_out", what=name)


# ------------------------------------------------------------------ pool backward
POOL_BACKWARD_GEOMETRIES = [
    _pool(),
    _pool(pool=3, strides=1, padding="same"),  # overlapping windows add up
    _pool(pool=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1))),
    _pool(pool=2, strides=(1, 3), padding=1),  # cells no window reaches
]


def _pool_backward_params(kind):
    out = []
    for i, geo in enumerate(POOL_BACKWARD_GEOMETRIES):
        for j, (dtype, layout) in enumerate(COMBOS):
            xc, gc = BACKWARD_CHUNKS[(i + 2 * j) % len(BACKWARD_CHUNKS)]
            cfg = dict(geo, kind=kind, dtype=dtype, data_format=layout, chunks=xc,
                       g_chunks=gc, cip=bool((i + j) % 2))
            out.append(pytest.param(cfg, id=_pool_id(cfg) + f"-g_chunks={_chunks_text(gc)}"))
    return out


def _check_pool_backward(cfg, rng, scheduler="threads", ties=False):
    x = _x(rng, cfg["c"], cfg["dtype"], cfg["data_format"])
    if ties:  # few distinct values: ties in every window (the first one wins)
        x = np.round(x).astype(cfg["dtype"])
    if cfg["kind"] == "max":
        dfn, mfn, extra = cd.max_pool2d_backward, convpool.max_pool2d_backward, {}
        fwd = convpool.max_pool2d
    else:
        dfn, mfn = cd.avg_pool2d_backward, convpool.avg_pool2d_backward
        extra, fwd = {"count_include_pad": cfg["cip"]}, convpool.avg_pool2d
    kw = dict(_pool_kwargs(cfg), **extra)
    g = rng.standard_normal(fwd(x, cfg["pool"], **kw).shape).astype(cfg["dtype"])
    dx = _to_dask(x, cfg["chunks"], cfg["data_format"])
    dg = _to_dask(g, cfg["g_chunks"], cfg["data_format"])
    want = mfn(g, x, cfg["pool"], **kw)
    y = dfn(dg, dx, cfg["pool"], **kw)
    _assert_lazy(y, want, dx, cfg)
    got = _compute(y, scheduler)
    assert_bitwise_equal(got, want, _pool_id(cfg), what="dask vs in-memory")
    return got


@pytest.mark.parametrize("cfg", _pool_backward_params("max") + _pool_backward_params("avg"))
def test_pool_backward_bitwise_equals_in_memory(cfg, rng):
    _check_pool_backward(cfg, rng)


def test_max_pool_backward_ties(rng):
    cfg = dict(POOL_BACKWARD_GEOMETRIES[1], kind="max", dtype=np.dtype(np.float32),
               data_format="channels_last", chunks=(2, 3, 3, 1), g_chunks=(1, 2, 2, 1), cip=False)
    got = _check_pool_backward(cfg, rng, ties=True)
    assert np.count_nonzero(got) > 0


# ============================================================================ apply
def _seed_model(seed=None):
    return convpool.Sequential([
        convpool.Conv2D(16, 5, strides=5, seed=seed),
        convpool.MaxPool2D(2),
        convpool.Flatten(),
        convpool.Dense(3, seed=None if seed is None else seed + 1),
    ])


def _per_block(model, x, batch_chunks):
    return np.concatenate([np.asarray(model(x[s])) for s in _batch_blocks(batch_chunks)])


def _check_seed_model(model, x, dx, y, result):
    """apply's result: per-block bitwise, whole batch within the Dense bound."""
    assert isinstance(y, da.Array)
    assert y.chunks[0] == dx.chunks[0], f"batch chunks {y.chunks[0]} != x's {dx.chunks[0]}"
    assert y.shape == (N, 3) and y.dtype == np.float32, (y.shape, y.dtype)
    assert type(y._meta) is np.ndarray and y._meta.ndim == 2 and y._meta.dtype == np.float32
    assert_bitwise_equal(result, _per_block(model, x, dx.chunks[0]), "seed model",
                         what="apply vs the model on each batch block")
    head = model.layers[-1]
    h = convpool.Sequential(model.layers[:-1])(x)
    tol = _dense_tolerance(h, head.kernel, head.bias, np.float32)
    assert_conv_close(result, model(x), tol, "apply vs the model on the whole batch")


@pytest.mark.parametrize("chunks", [(2, None, None, None), (1, 4, 5, 2), (None, 6, None, None)],
                         ids=lambda c: f"chunks={_chunks_text(c)}")
def test_apply_seed_model(chunks, rng):
    x = _x(rng, 3, np.float32, "channels_last")
    model = _seed_model(seed=7)
    model.build((None, H, W, 3))
    dx = _to_dask(x, chunks, "channels_last")
    y = cd.apply(model, dx)
    _check_seed_model(model, x, dx, y, _compute(y))


def test_apply_builds_an_unbuilt_model_once(rng):
    x = _x(rng, 3, np.float32, "channels_last")
    model = _seed_model(seed=None)  # random weights: building twice would change them
    assert not model.built
    dx = _to_dask(x, (2, None, None, None), "channels_last")
    y = cd.apply(model, dx)
    assert model.built, "apply builds the model when the graph is built"
    weights = [w.copy() for layer in model.layers for w in layer.weights]
    first = _compute(y)
    second = _compute(y)
    assert_bitwise_equal(first, second, "unbuilt model", what="two computes")
    after = [w for layer in model.layers for w in layer.weights]
    assert len(after) == len(weights) == 4
    for a, b in zip(weights, after):
        assert_bitwise_equal(a, b, "unbuilt model", what="weights before and after compute")
    _check_seed_model(model, x, dx, y, first)  # the weights the model has are those used


def _single_layers():
    return [
        ("conv2d", lambda: convpool.Conv2D(4, 3, padding="same", activation="relu", seed=1)),
        ("conv2d_nchw", lambda: convpool.Conv2D(2, (3, 2), strides=2, data_format="channels_first",
                                                seed=2)),
        ("max_pool", lambda: convpool.MaxPool2D(2)),
        ("avg_pool", lambda: convpool.AvgPool2D(3, strides=2, padding="same")),
        ("flatten", lambda: convpool.Flatten()),
        ("flatten_nchw", lambda: convpool.Flatten(data_format="channels_first")),
        ("relu", lambda: convpool.ReLU()),
        ("dense", lambda: convpool.Dense(3, seed=3)),  # on each pixel's channels
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name, make", _single_layers(), ids=[n for n, _ in _single_layers()])
def test_apply_single_layer(name, make, dtype, rng):
    layer = make()
    x = _x(rng, 3, dtype, "channels_last")
    dx = _to_dask(x, (2, 5, None, 2), "channels_last")
    y = cd.apply(layer, dx)
    assert layer.built
    assert y.chunks[0] == dx.chunks[0], (y.chunks, dx.chunks)
    assert all(len(c) == 1 for c in y.chunks[1:]), f"whole samples: {y.chunks}"
    got = _compute(y)
    whole = layer(x)
    assert y.shape == whole.shape and y.dtype == whole.dtype == dtype, (y, whole.shape)
    assert type(y._meta) is np.ndarray and y._meta.ndim == whole.ndim
    assert_bitwise_equal(got, _per_block(layer, x, dx.chunks[0]), name,
                         what="apply vs the layer on each batch block")
    if name == "dense":
        tol = _dense_tolerance(x, layer.kernel, layer.bias, dtype)
        assert_conv_close(got, whole, tol, name)
    else:  # convpool's own kernels are batch-invariant
        assert_bitwise_equal(got, whole, name, what="apply vs the whole batch")


def test_apply_dense_on_2d_array(rng):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    layer = convpool.Dense(3, seed=4)
    dx = da.from_array(x, chunks=(3, 2))
    y = cd.apply(layer, dx)
    assert y.chunks == ((3, 3, 1), (3,))
    assert_bitwise_equal(_compute(y), _per_block(layer, x, (3, 3, 1)), "dense 2-D")


# =========================================================================== errors
def _good_args(name):
    """(dask args, in-memory args) of a valid call of ``name`` on (5, 13, 11, 3) float32."""
    x = np.zeros((N, H, W, 3), np.float32)
    dx = da.from_array(x, chunks=(2, 5, 4, 3))
    kernel = np.ones((3, 3, 3, 4), np.float32)
    if name == "conv2d":
        return (dx, kernel), (x, kernel)
    if name in ("max_pool2d", "avg_pool2d"):
        return (dx, 2), (x, 2)
    if name == "conv2d_backward":
        g = np.zeros((N, H - 2, W - 2, 4), np.float32)
        return (da.from_array(g, chunks=2), dx, kernel), (g, x, kernel)
    g = np.zeros((N, 6, 5, 3), np.float32)
    return (da.from_array(g, chunks=2), dx, 2), (g, x, 2)


ALL_OPS = ["conv2d", "max_pool2d", "avg_pool2d", "conv2d_backward", "max_pool2d_backward",
           "avg_pool2d_backward"]
BACKWARD_OPS = ["conv2d_backward", "max_pool2d_backward", "avg_pool2d_backward"]


def _x_pos(name):
    return 1 if name in BACKWARD_OPS else 0


def _replace(args, i, value):
    args = list(args)
    args[i] = value
    return tuple(args)


@pytest.mark.parametrize("name", ALL_OPS)
def test_numpy_input_is_a_type_error(name):
    dargs, margs = _good_args(name)
    i = _x_pos(name)
    with pytest.raises(TypeError, match=r"x must be a dask array, got ndarray"):
        getattr(cd, name)(*_replace(dargs, i, margs[i]))
    if name in BACKWARD_OPS:
        with pytest.raises(TypeError, match=r"grad_out must be a dask array, got ndarray"):
            getattr(cd, name)(*_replace(dargs, 0, margs[0]))


def test_apply_rejects_numpy_and_non_models():
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match=r"x must be a dask array, got ndarray"):
        cd.apply(convpool.MaxPool2D(2), x)
    with pytest.raises(TypeError, match=r"model_or_layer must be a convpool layer or Sequential"):
        cd.apply(lambda a: a, da.from_array(x))
    with pytest.raises(ValueError, match=r"Conv2D expects a 4-D input"):
        cd.apply(convpool.Conv2D(2, 3), da.from_array(x[0]))


@pytest.mark.parametrize("rank", [3, 5])
@pytest.mark.parametrize("name", ALL_OPS)
def test_wrong_rank_is_a_value_error(name, rank):
    dargs, _ = _good_args(name)
    i = _x_pos(name)
    bad = dargs[i][0] if rank == 3 else dargs[i][None]
    with pytest.raises(ValueError, match=r"x must be 4-D, got shape"):
        getattr(cd, name)(*_replace(dargs, i, bad))
    if name in BACKWARD_OPS:
        g = dargs[0]
        with pytest.raises(ValueError, match=r"grad_out must be 4-D, got shape"):
            getattr(cd, name)(*_replace(dargs, 0, g[0] if rank == 3 else g[None]))


# Each bad argument: the in-memory function's exception, type and message, at build time.
_KERNEL = np.ones((3, 3, 3, 4), np.float32)
CONV_ERRORS = [
    ("kernel_channels", dict(kernel=np.ones((3, 3, 2, 4), np.float32)), "kernel expects 2 input"),
    ("kernel_rank3", dict(kernel=np.ones((3, 3, 3), np.float32)), "kernel must be 4-D"),
    ("kernel_f64", dict(kernel=np.ones((3, 3, 3, 4))), "kernel has dtype float64"),
    ("kernel_too_big", dict(kernel=np.ones((14, 3, 3, 4), np.float32)), "does not fit"),
    ("strides0", dict(strides=0), "strides must be positive"),
    ("strides_neg", dict(strides=(1, -2)), "strides must be positive"),
    ("padding_full", dict(padding="full"), "padding must be"),
    ("padding_neg", dict(padding=-1), "padding must be non-negative"),
    ("padding_bad_pair", dict(padding=((1, 2), (3,))), "padding"),
    ("dilation0", dict(dilation_rate=0), "dilation_rate must be positive"),
    ("groups2", dict(groups=2), "groups=2 must divide"),
    ("groups0", dict(groups=0), "groups must be positive"),
    ("data_format", dict(data_format="NHWC"), "data_format must be"),
]
CONV_FORWARD_ERRORS = CONV_ERRORS + [
    ("bias_shape", dict(bias=np.ones(5, np.float32)), r"bias must have shape \(C_out,\)"),
    ("activation", dict(activation="tanh"), "activation must be"),
]
POOL_ERRORS = [
    ("pool0", dict(pool_size=0), "pool_size must be positive"),
    ("pool_too_big", dict(pool_size=14), "does not fit"),
    ("strides0", dict(strides=0), "strides must be positive"),
    ("pad_exceeds_pool", dict(padding=2), "may not exceed"),
    ("padding_full", dict(padding="full"), "padding must be"),
    ("data_format", dict(data_format="nchw"), "data_format must be"),
]


def _error_params():
    out = []
    for case, kw, pattern in CONV_FORWARD_ERRORS:
        out.append(pytest.param("conv2d", kw, pattern, id=f"conv2d-{case}"))
    for case, kw, pattern in CONV_ERRORS:
        out.append(pytest.param("conv2d_backward", kw, pattern, id=f"conv2d_backward-{case}"))
    for name in ("max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward"):
        for case, kw, pattern in POOL_ERRORS:
            out.append(pytest.param(name, kw, pattern, id=f"{name}-{case}"))
    for name in ("avg_pool2d", "avg_pool2d_backward"):
        out.append(pytest.param(name, dict(count_include_pad=1), "count_include_pad must be a bool",
                                id=f"{name}-cip_not_bool"))
    x_complex = np.zeros((N, H, W, 3), np.complex64)
    for name in ("conv2d", "max_pool2d", "avg_pool2d"):
        out.append(pytest.param(name, dict(x=x_complex), "x has dtype complex64",
                                id=f"{name}-x_complex"))
    return out


def _call_both(name, kw):
    """The errors of the in-memory and dask ``name`` with ``kw`` overriding a valid call."""
    dargs, margs = _good_args(name)
    kw = dict(kw)
    if "x" in kw:
        x = kw.pop("x")
        i = _x_pos(name)
        dargs, margs = _replace(dargs, i, da.from_array(x)), _replace(margs, i, x)
    if "kernel" in kw:
        k = kw.pop("kernel")
        dargs, margs = dargs[:-1] + (k,), margs[:-1] + (k,)
    if "pool_size" in kw:
        p = kw.pop("pool_size")
        dargs, margs = dargs[:-1] + (p,), margs[:-1] + (p,)
    errors = []
    for module, args in ((convpool, margs), (cd, dargs)):
        with pytest.raises((ValueError, TypeError)) as info:
            getattr(module, name)(*args, **kw)
        errors.append(info.value)
    return errors


@pytest.mark.parametrize("name, kw, pattern", _error_params())
def test_bad_argument_same_error_as_in_memory(name, kw, pattern):
    mem_err, dask_err = _call_both(name, kw)
    assert type(dask_err) is type(mem_err), (dask_err, mem_err)
    assert str(dask_err) == str(mem_err)
    assert re.search(pattern, str(dask_err)), (pattern, str(dask_err))


@pytest.mark.parametrize("name", BACKWARD_OPS)
def test_grad_out_wrong_shape(name):
    dargs, margs = _good_args(name)
    g = margs[0]
    expected = re.escape(str(tuple(g.shape)))
    for bad in (g[:, :-1], g[..., :-1], g[:1], np.zeros(g.shape[:3] + (7,), np.float32)):
        with pytest.raises(ValueError, match=expected) as dinfo:
            getattr(cd, name)(*_replace(dargs, 0, da.from_array(bad, chunks=2)))
        with pytest.raises(ValueError) as minfo:
            getattr(convpool, name)(*_replace(margs, 0, bad))
        assert str(dinfo.value) == str(minfo.value)
        assert str(bad.shape) in str(dinfo.value)


@pytest.mark.parametrize("g_dtype", [np.float64, np.complex64], ids=["f64", "c64"])
@pytest.mark.parametrize("name", BACKWARD_OPS)
def test_grad_out_wrong_dtype_raises_at_build(name, g_dtype):
    """Regression: a float grad_out of another dtype raised only inside a task, at compute."""
    dargs, margs = _good_args(name)
    g = margs[0].astype(g_dtype)
    with pytest.raises(TypeError) as minfo:
        getattr(convpool, name)(*_replace(margs, 0, g))
    with pytest.raises(TypeError, match="grad_out has dtype") as dinfo:
        getattr(cd, name)(*_replace(dargs, 0, da.from_array(g, chunks=2)))
    assert str(dinfo.value) == str(minfo.value)


@pytest.mark.parametrize("threads, exc, pattern", [
    (0, ValueError, r"^threads must be a positive int or None, got 0$"),
    (-1, ValueError, r"^threads must be a positive int or None, got -1$"),
    ("2", TypeError, r"^threads must be a positive int or None, got '2' of type str$"),
    (2.0, TypeError, r"^threads must be a positive int or None, got 2\.0 of type float$"),
    (True, TypeError, r"^threads must be a positive int or None, got the bool True$"),
], ids=["0", "-1", "str", "float", "bool"])
@pytest.mark.parametrize("name", ALL_OPS + ["apply"])
def test_bad_threads_raises(name, threads, exc, pattern):
    """A non-integer is a TypeError and an integer below 1 a ValueError, as everywhere else."""
    if name == "apply":
        call = functools.partial(cd.apply, convpool.MaxPool2D(2), _good_args("max_pool2d")[0][0])
    else:
        call = functools.partial(getattr(cd, name), *_good_args(name)[0])
    with pytest.raises(exc, match=pattern):
        call(threads=threads)


def _unknown_batch(a):
    return a[a[:, 0, 0, 0] >= 0]  # boolean mask: unknown batch chunk sizes


@pytest.mark.parametrize("name", ALL_OPS)
def test_unknown_chunk_sizes_is_a_value_error(name):
    dargs, _ = _good_args(name)
    i = _x_pos(name)
    x = dargs[i]
    assert np.isnan(_unknown_batch(x).shape[0])
    with pytest.raises(ValueError, match=r"x has unknown chunk sizes.*compute_chunk_sizes"):
        getattr(cd, name)(*_replace(dargs, i, _unknown_batch(x)))
    if name in ("conv2d", "max_pool2d", "avg_pool2d"):  # unknown along H
        mask = da.from_array(np.arange(H) % 2 == 0, chunks=4)
        with pytest.raises(ValueError, match=r"x has unknown chunk sizes"):
            getattr(cd, name)(*_replace(dargs, i, x[:, mask]))
    if name in BACKWARD_OPS:
        with pytest.raises(ValueError, match=r"grad_out has unknown chunk sizes"):
            getattr(cd, name)(*_replace(dargs, 0, _unknown_batch(dargs[0])))


@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
def test_apply_unknown_batch_chunks(built, rng):
    """apply needs only x.shape[1:]: unknown batch chunk sizes pass through (regression:
    an unbuilt model raised numpy's TypeError on the NaN shape)."""
    x = rng.standard_normal((N, H, W, 3)).astype(np.float32)
    x[:, 0, 0, 0] = [1, -1, 2, -2, 0]  # the mask keeps samples 0, 2 and 4
    dx = _unknown_batch(da.from_array(x, chunks=(2, -1, -1, -1)))
    model = convpool.Sequential([convpool.Conv2D(2, 3, seed=0), convpool.MaxPool2D(2)])
    if built:
        model.build((None, H, W, 3))
    y = cd.apply(model, dx)
    assert model.built and np.isnan(y.shape[0]) and y.shape[1:] == (5, 4, 2), y
    assert_bitwise_equal(_compute(y), model(x[[0, 2, 4]]), "unknown batch chunks")


@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
def test_apply_unknown_sample_shape_is_a_value_error(built):
    x = da.zeros((N, H, W, 3), chunks=(2, 5, 4, 3), dtype=np.float32)
    x = x[:, da.from_array(np.arange(H) % 2 == 0, chunks=5)]
    assert np.isnan(x.shape[1])
    model = convpool.Sequential([convpool.Conv2D(2, 3, seed=0)])
    if built:
        model.build((None, 7, W, 3))
    with pytest.raises(ValueError, match=r"unknown chunk sizes"):
        cd.apply(model, x)


# ========================================================================== threads
@needs_openmp
def test_task_threads_sets_restores_and_nests():
    before = convpool.get_num_threads()
    with task_threads(3):
        assert convpool.get_num_threads() == 3
        with task_threads(None):  # None leaves the count as it is
            assert convpool.get_num_threads() == 3
        with task_threads(1):
            assert convpool.get_num_threads() == 1
        assert convpool.get_num_threads() == 3
    assert convpool.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"):
        with task_threads(5):
            raise RuntimeError("boom")
    assert convpool.get_num_threads() == before, "not restored after an exception"


@needs_openmp
def test_task_threads_wins_over_set_num_threads(num_threads):
    num_threads(2)
    with task_threads(3):
        assert convpool.get_num_threads() == 3
    assert convpool.get_num_threads() == 2


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


@needs_openmp
def test_task_threads_is_thread_local():
    other_default = _in_thread(convpool.get_num_threads)
    n = other_default + 2  # differs from every default
    with task_threads(n):
        assert convpool.get_num_threads() == n
        assert _in_thread(convpool.get_num_threads) == other_default, "leaked to another thread"

        def inner():
            with task_threads(n + 1):
                return convpool.get_num_threads()

        assert _in_thread(inner) == n + 1
        assert convpool.get_num_threads() == n, "another thread's task_threads leaked here"
    # a fresh thread's count is unaffected by the block above
    assert _in_thread(convpool.get_num_threads) == other_default


@needs_openmp
def test_task_threads_open_in_another_thread_is_not_seen_here():
    """While another thread is inside task_threads, this thread keeps its own count."""
    before = convpool.get_num_threads()
    seen = []
    ready, done = threading.Event(), threading.Event()

    def worker():
        with task_threads(before + 3):
            ready.set()
            done.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    ready.wait(5)
    try:
        seen.append(convpool.get_num_threads())
    finally:
        done.set()
        t.join()
    assert seen == [before], f"this thread saw {seen} while another was in task_threads"


def test_threads_here_outside_a_cluster():
    assert cd._threads_here(3, None) == 3, "requested wins"
    assert cd._threads_here(2, {"127.0.0.1": 1}) == 2
    # the main thread outside a worker: the synchronous scheduler, convpool's default
    assert cd._threads_here(None, None) is None
    assert cd._threads_here(None, {"127.0.0.1": 5}) is None, "a plan applies only in a worker"
    # another thread: a threaded-scheduler task, cores // the pool size
    assert _in_thread(lambda: cd._threads_here(None, None)) == THREADED_DEFAULT
    with dask.config.set(num_workers=1):
        assert _in_thread(lambda: cd._threads_here(None, None)) == CORES
    with dask.config.set(num_workers=2 * CORES):
        assert _in_thread(lambda: cd._threads_here(None, None)) == 1
    assert cd._cluster_plan() is None, "no client active"


@pytest.fixture
def spy(monkeypatch):
    """The thread counts convpool's functional calls ran with (in this process)."""
    seen = []
    real = F.get_num_threads

    def spying():
        n = real()
        seen.append(n)
        return n

    monkeypatch.setattr(F, "get_num_threads", spying)
    return seen


def _all_ops_graphs(rng, threads=None):
    """One dask result (or tuple) per function of convpool.dask, small."""
    x = rng.standard_normal((4, 9, 8, 3)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 5, 4, 3))
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    g = da.from_array(np.ones((4, 7, 6, 2), np.float32), chunks=2)
    gp = da.from_array(np.ones((4, 4, 4, 3), np.float32), chunks=2)
    model = convpool.Sequential([convpool.Conv2D(2, 3, seed=0), convpool.AvgPool2D(2)])
    return {
        "conv2d": cd.conv2d(dx, kernel, threads=threads),
        "max_pool2d": cd.max_pool2d(dx, 2, threads=threads),
        "avg_pool2d": cd.avg_pool2d(dx, 2, threads=threads),
        "conv2d_backward": cd.conv2d_backward(g, dx, kernel, threads=threads),
        "max_pool2d_backward": cd.max_pool2d_backward(gp, dx, 2, threads=threads),
        "avg_pool2d_backward": cd.avg_pool2d_backward(gp, dx, 2, threads=threads),
        "apply": cd.apply(model, dx, threads=threads),
    }


@needs_openmp
@pytest.mark.parametrize("threads", [None, 3], ids=["default", "threads=3"])
def test_threaded_scheduler_task_thread_counts(threads, spy, rng):
    expected = threads if threads is not None else THREADED_DEFAULT
    for name, graph in _all_ops_graphs(rng, threads).items():
        spy.clear()
        dask.compute(graph, scheduler="threads")
        assert spy, f"{name}: no convpool call recorded"
        assert set(spy) == {expected}, f"{name}: thread counts {sorted(set(spy))}, want {expected}"
    # restored: a later plain task in the pool sees convpool's own default
    fresh = _in_thread(convpool.get_num_threads)
    probe = da.from_array(np.zeros(4), chunks=1).map_blocks(
        lambda b: np.full(b.shape, convpool.get_num_threads()), dtype=int)
    assert set(probe.compute(scheduler="threads").tolist()) == {fresh}


@needs_openmp
def test_threaded_scheduler_one_worker_gets_every_core(spy, rng):
    graphs = _all_ops_graphs(rng)
    with dask.config.set(num_workers=1):
        dask.compute(graphs["conv2d"], graphs["conv2d_backward"], scheduler="threads")
    assert spy and set(spy) == {CORES}, sorted(set(spy))


@needs_openmp
def test_synchronous_scheduler_uses_convpool_default(spy, rng, num_threads):
    num_threads(2)
    graphs = _all_ops_graphs(rng)
    dask.compute(graphs["conv2d"], graphs["max_pool2d_backward"], scheduler="sync")
    assert spy and set(spy) == {convpool.get_num_threads()} == {2}, sorted(set(spy))


# ==================================================================== the cluster
def _importable_from_sys_path(name, path):
    """Would ``import name`` in a fresh process with this sys.path load the file ``path``?"""
    parts = name.split(".")
    search, spec = sys.path, None
    for i in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
        if spec is None:
            return False
        search = spec.submodule_search_locations
    return spec.origin is not None and os.path.samefile(spec.origin, path)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    # The helpers below pickle by reference: the worker processes (which inherit
    # sys.path) import this module by its name.  Under --import-mode=importlib
    # from outside the project the name may not resolve, and a task the workers
    # cannot unpickle hangs rather than fails.
    if not _importable_from_sys_path(__name__, __file__):
        pytest.skip(f"worker processes could not import this module as {__name__!r}")
    cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                           dashboard_address=None)
    # Not the default client: the other tests keep the local schedulers; cluster
    # tests enter ``client.as_current()`` to build and compute.
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _worker_threads_here(plan, requested=None):
    """Runs in a worker: the thread count convpool.dask gives a task there."""
    return cd._threads_here(requested, plan)


def _worker_count_in_task(plan):
    """Runs in a worker (OMP_NUM_THREADS=1 there): convpool's count in a task given ``plan``."""
    with task_threads(cd._threads_here(None, plan)):
        inside = convpool.get_num_threads()
    return inside, convpool.get_num_threads()


class _ThreadProbe(convpool.Layer):
    """A layer whose output is the thread count convpool's calls would use: (N, 1)."""

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape)[0], 1)

    def _call(self, x):
        return np.full((x.shape[0], 1), convpool.get_num_threads(), np.float32)


def _install_worker_spy():
    """Record, in this worker, the thread count of every convpool.functional call."""
    seen = []
    F._test_dask_real = real = getattr(F, "_test_dask_real", F.get_num_threads)
    F._test_dask_seen = seen

    def spying():
        n = real()
        seen.append(n)
        return n

    F.get_num_threads = spying


def _remove_worker_spy():
    seen = list(getattr(F, "_test_dask_seen", []))
    if hasattr(F, "_test_dask_real"):
        F.get_num_threads = F._test_dask_real
        del F._test_dask_real, F._test_dask_seen
    return seen


@needs_openmp
def test_cluster_plan_and_task_threads(client):
    planned = max(1, CORES // 2)  # 2 workers x 1 thread on this host
    with client.as_current():
        plan = cd._cluster_plan()
        assert plan is not None and set(plan.values()) == {planned}, plan
        assert len(plan) == 1, f"one host: {plan}"
        assert client.submit(_worker_threads_here, plan, pure=False).result() == planned
        assert client.submit(_worker_threads_here, plan, 2, pure=False).result() == 2
        # a worker the plan does not know: one thread
        assert client.submit(_worker_threads_here, {}, pure=False).result() == 1
        # the workers' OMP_NUM_THREADS=1 does not cap a task's count; restored after the task
        host = next(iter(plan))
        inside, after = client.submit(_worker_count_in_task, {host: CORES + 1}, pure=False).result()
        assert inside == CORES + 1 and after != CORES + 1, (inside, after)
        x = da.zeros((6, 2, 2, 1), chunks=(1, 2, 2, 1), dtype=np.float32)
        for threads, want in ((None, planned), (2, 2)):
            counts = cd.apply(_ThreadProbe(), x, threads=threads).compute()
            assert counts.shape == (6, 1) and set(counts.ravel().tolist()) == {want}, counts


@needs_openmp
def test_cluster_ops_run_with_planned_threads(client, rng):
    planned = max(1, CORES // 2)
    client.run(_install_worker_spy)
    try:
        with client.as_current():
            graphs = _all_ops_graphs(rng)
            dask.compute(graphs)
            seen = client.run(_remove_worker_spy)
            assert sum(len(v) for v in seen.values()) >= 7, seen
            assert {n for v in seen.values() for n in v} == {planned}, seen
            client.run(_install_worker_spy)
            dask.compute(_all_ops_graphs(rng, threads=2))
            seen = client.run(_remove_worker_spy)
            assert {n for v in seen.values() for n in v} == {2}, seen
    finally:
        client.run(_remove_worker_spy)


def _cluster_params():
    """Each op once batch-chunked and once spatially chunked."""
    batch, spatial = (2, None, None, None), (3, 5, 6, None)
    conv = dict(CONV_GEOMETRIES[4], dtype=np.dtype(np.float32), data_format="channels_last")
    conv2 = dict(CONV_GEOMETRIES[2], dtype=np.dtype(np.float64), data_format="channels_first")
    pool = dict(POOL_GEOMETRIES[2], dtype=np.dtype(np.float32), data_format="channels_first",
                cip=True)
    bconv = dict(CONV_BACKWARD_GEOMETRIES[1], bias=False, dtype=np.dtype(np.float32),
                 data_format="channels_last")
    bpool = dict(POOL_BACKWARD_GEOMETRIES[1], dtype=np.dtype(np.float64),
                 data_format="channels_last", cip=False)
    out = []
    for tag, chunks in (("batch", batch), ("spatial", spatial)):
        out += [
            pytest.param("conv2d", dict(conv, chunks=chunks), id=f"conv2d-{tag}"),
            pytest.param("conv2d", dict(conv2, chunks=chunks), id=f"conv2d-nchw-f64-{tag}"),
            pytest.param("pool", dict(pool, kind="max", chunks=chunks), id=f"max_pool2d-{tag}"),
            pytest.param("pool", dict(pool, kind="avg", chunks=chunks), id=f"avg_pool2d-{tag}"),
            pytest.param("conv2d_backward", dict(bconv, chunks=chunks, g_chunks=(3, 2, 2, 2)),
                         id=f"conv2d_backward-{tag}"),
            pytest.param("pool_backward", dict(bpool, kind="max", chunks=chunks,
                                               g_chunks=(1, None, None, None)),
                         id=f"max_pool2d_backward-{tag}"),
            pytest.param("pool_backward", dict(bpool, kind="avg", chunks=chunks,
                                               g_chunks=(1, None, None, None)),
                         id=f"avg_pool2d_backward-{tag}"),
            pytest.param("apply", dict(chunks=chunks), id=f"apply-{tag}"),
        ]
    return out


@pytest.mark.parametrize("op, cfg", _cluster_params())
def test_cluster_matches_in_memory(op, cfg, client, rng, request):
    with client.as_current():
        if op == "conv2d":
            _check_conv2d(cfg, rng, scheduler=None)
        elif op == "pool":
            _check_pool(cfg, rng, scheduler=None)
        elif op == "pool_backward":
            _check_pool_backward(cfg, rng, scheduler=None)
        elif op == "conv2d_backward":
            seed = rng.bit_generator.state
            got = _check_conv2d_backward(cfg, rng, scheduler=None)
            rng.bit_generator.state = seed  # the same inputs on the threaded scheduler
            local = _check_conv2d_backward(cfg, rng, scheduler="threads")
            for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), got, local):
                assert_bitwise_equal(a, b, request.node.name, what=f"{name}: cluster vs threads")
        else:  # apply, with an unbuilt model: built once, shipped to the workers
            x = _x(rng, 3, np.float32, "channels_last")
            model = _seed_model(seed=None)
            dx = _to_dask(x, cfg["chunks"], "channels_last")
            y = cd.apply(model, dx)
            first = y.compute()
            assert_bitwise_equal(first, y.compute(), "cluster apply", what="two computes")
            _check_seed_model(model, x, dx, y, first)


# ========================================================================== example
def test_dask_fullhd_example_runs_small(tmp_path):
    """examples/dask_fullhd.py end to end on 4 frames (2 chunks): it writes the
    stack, runs the model on the cluster and in plain processes, and its own
    check (the first chunk's output equals the in-memory model's) passes."""
    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "dask_fullhd.py")
    if not os.path.exists(example):
        pytest.skip("examples/ is not next to the tests (installed package)")
    proc = subprocess.run(
        [sys.executable, example, "--frames", "4", "--chunk", "2", "--batch", "2",
         "--repeat", "1", "--memory-limit", "1GiB", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "first chunk's output equals the in-memory model's: True" in proc.stdout, proc.stdout
    assert not os.path.exists(tmp_path / "out-plain")


# ============================================================ pooling options
POOL_OPTIONS = [  # (kind, pool, strides, padding, options); H, W = 13, 11
    ("max", 3, 2, 0, dict(ceil_mode=True)),  # a partial last window on both axes
    ("max", 3, 2, 1, dict(ceil_mode=True, dilation_rate=2)),
    ("max", (2, 3), 1, ((2, 0), (1, 3)), dict(dilation_rate=(3, 2))),
    ("avg", 3, 2, 1, dict(ceil_mode=True, count_include_pad=True)),  # overhang not counted
    ("avg", 3, 2, 1, dict(ceil_mode=True, count_include_pad=False)),
    ("avg", (4, 2), (3, 2), 0, dict(ceil_mode=True, divisor_override=5)),
    ("avg", 2, 2, 1, dict(divisor_override=3, count_include_pad=True)),
]


def _options_id(case):
    kind, pool, strides, padding, options = case
    return case_id(kind=kind, pool=pool, strides=strides, padding=padding, **options)


@pytest.mark.parametrize("chunks", CHUNKINGS[:3], ids=_chunks_text)
@pytest.mark.parametrize("case", POOL_OPTIONS, ids=_options_id)
def test_pool_options_over_spatial_chunks_bitwise(case, chunks, rng):
    """ceil_mode, dilation_rate and divisor_override on H/W-chunked inputs: each
    block's halo covers its dilated windows, and the overhang past the padded
    input is never counted as padding."""
    kind, pool, strides, padding, options = case
    x = _x(rng, 3, np.float32, "channels_last")
    dfn, mfn = (cd.max_pool2d, convpool.max_pool2d) if kind == "max" else (cd.avg_pool2d,
                                                                            convpool.avg_pool2d)
    want = mfn(x, pool, strides, padding, **options)
    y = dfn(_to_dask(x, chunks, "channels_last"), pool, strides, padding, **options)
    assert y.shape == want.shape
    assert_bitwise_equal(_compute(y), want, _options_id(case), what="dask vs in-memory")


@pytest.mark.parametrize("case", POOL_OPTIONS, ids=_options_id)
def test_pool_options_backward_over_batch_chunks_bitwise(case, rng):
    kind, pool, strides, padding, options = case
    x = _x(rng, 3, np.float64, "channels_first")
    fwd, mfn, dfn = ((convpool.max_pool2d, convpool.max_pool2d_backward, cd.max_pool2d_backward)
                     if kind == "max" else
                     (convpool.avg_pool2d, convpool.avg_pool2d_backward, cd.avg_pool2d_backward))
    kw = dict(options, data_format="channels_first")
    g = rng.standard_normal(fwd(x, pool, strides, padding, **kw).shape)
    want = mfn(g, x, pool, strides, padding, **kw)
    y = dfn(_to_dask(g, (2, None, None, None), "channels_first"),
            _to_dask(x, (2, 5, 4, 2), "channels_first"), pool, strides, padding, **kw)
    assert_bitwise_equal(_compute(y), want, _options_id(case), what="dask vs in-memory")


def test_dask_pool_option_errors_raise_at_build():
    dx = da.zeros((2, 6, 5, 3), dtype=np.float32, chunks=(1, 3, 3, 3))
    with pytest.raises(ValueError, match="divisor_override must be a positive"):
        cd.avg_pool2d(dx, 2, divisor_override=0)
    with pytest.raises(TypeError, match="ceil_mode must be a bool"):
        cd.max_pool2d(dx, 2, ceil_mode="yes")
    with pytest.raises(ValueError, match="holds no input cell"):
        cd.max_pool2d(dx, (2, 1), strides=1, padding=((6, 6), (0, 0)), dilation_rate=(7, 1))
