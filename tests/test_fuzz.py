"""Fuzzing every public kernel function with random valid and invalid arguments.

(conv2d, the pools and their backward passes in one stream; conv2d_transpose
and its backward pass in a stream of their own, with an output_padding knob.)

Each generated call goes to ``convpool.reference`` and to the fast function with
the same arguments.  The fast call must either

* return what the reference returns (when the reference succeeds): exactly for
  max_pool2d, within the derived summation bounds of ``_helpers`` for conv2d,
  avg_pool2d and the gradients, NaN exactly where the reference has NaN; or
* raise ValueError, TypeError or MemoryError (MemoryError only from the
  workspace cap or an allocation) -- never another exception, and never
  crash the interpreter; and after a raise, ``out=`` is bit for bit untouched.

In both cases no input array is modified.

The shapes are small (at most a few thousand elements), so a valid call is
cheap; only the integers that cost nothing to pass (strides, padding, dilation,
pool sizes) are drawn huge, up to 2**62 and beyond.  Argument values cover
the faults that conv and pooling functions of other libraries have crashed or
returned garbage on: non-positive strides, dilation, kernel or group sizes;
negative or huge padding; a kernel larger than the padded input; shape,
channel and group mismatches; zero-size tensors; sizes past 32- and 64-bit
indexing; NaN and infinities; non-contiguous and read-only inputs; misused
``out=``; mismatched dtypes.  Concretely: zero and negative values, wrong ranks
(0-D to 6-D), mixed and unsupported dtypes, None and non-array objects, memory
layouts (strided, negative, Fortran, broadcast, read-only) and ``out=`` arrays
of every wrong kind, including one that overlaps ``x``.

The default run makes 5000+ calls from a fixed seed (``derandomize``), so CI
sees the same cases every time; ``pytest -m fuzz`` makes 50,000 fresh ones.
``CONVPOOL_FUZZ_TRACE=/path`` appends each call to that file (flushed) before
it runs, so a crash leaves its input behind.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convpool
from convpool import reference
from convpool._checks import ConvCall, PoolCall, TransposeCall
from _helpers import (
    assert_conv_close,
    avg_pool_tolerance,
    conv_tolerance,
    gamma,
    transpose_tolerance,
)

FUNCS = ("conv2d", "max_pool2d", "avg_pool2d", "conv2d_backward", "max_pool2d_backward",
         "avg_pool2d_backward")
TRANSPOSE_FUNCS = ("conv2d_transpose", "conv2d_transpose_backward")
ALLOWED = (ValueError, TypeError, MemoryError)
FLOATS = (np.float32, np.float64)
# Supported input dtypes (float32/float64 drawn most often; the others compute
# in float32); the unsupported ones are drawn as a bad "x_dtype".
DTYPES = (np.float32, np.float32, np.float32, np.float64, np.float64, np.float64, np.float16,
          np.uint8, np.int64, np.bool_)
HUGE = sorted({2**k + d for k in (16, 31, 32, 40, 52, 60, 61, 62) for d in (-1, 0, 1)})
BEYOND = (2**63 - 1, 2**63, 2**64, 10**30)  # past int64: must be a ValueError, not OverflowError
# Outputs (or reference padded inputs) between these sizes would really be
# allocated and filled: slow, so such calls are skipped.  Smaller ones are
# computed; larger ones fail at once (MemoryError or NumPy's "too big" ValueError).
SMALL_BYTES, IMPOSSIBLE_BYTES = 4 << 20, 1 << 40
REFERENCE_WORK = 1 << 22  # elements; the largest valid small call needs about 1/20 of it
TRACE = os.environ.get("CONVPOOL_FUZZ_TRACE")
# tools/sanitize.sh preloads ASan, which aborts on an impossible allocation.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")

STATS = {"calls": 0, "compared": 0, "raised": 0, "skipped": 0}


# ===================================================================== strategies
# Each knob of a call has good values (valid on their own) and bad ones.  A
# call is "valid" (every knob good: most reach the kernels), "one_bad" (one
# knob bad: the check for it must fire, whatever the others are) or "wild"
# (each knob bad with probability 1/3).
KNOBS = ("data_format", "x_kind", "x_dtype", "x_shape", "channels", "kernel_dtype",
         "kernel_kind", "kernel_shape", "groups", "strides", "padding", "dilation_rate",
         "pool_size", "bias", "activation", "count_include_pad", "grad_out", "out")
# The transposed conv's knobs (a list of its own, so that the stream of FUNCS
# calls, drawn from a fixed seed, stays what it was).
TRANSPOSE_KNOBS = KNOBS + ("output_padding",)


def _small_or_huge(draw, small, huge_bound, huge_odds=8):
    """Mostly from ``small``; one time in ``huge_odds`` a huge value up to ``huge_bound``."""
    if draw(st.integers(0, huge_odds - 1)) == 0:
        return draw(st.sampled_from([v for v in HUGE if v <= huge_bound] + [huge_bound]))
    return draw(st.sampled_from(small))


def _int_arg(draw, small, bad, *, huge_bound=2**62 - 1, huge_odds=8):
    """An int argument as callers write it: an int, a pair, a 1-D array, a NumPy int."""
    if not bad:
        form = draw(st.sampled_from(["int"] * 4 + ["pair"] * 4 + ["list", "array", "np"]))

        def one():
            return _small_or_huge(draw, small, huge_bound, huge_odds)

        if form == "int":
            return one()
        if form == "pair":
            return (one(), one())
        if form == "list":
            return [one(), one()]
        if form == "array":
            return np.array([one(), one()])
        return np.int64(one())
    wrong = draw(st.sampled_from([0, -1, -2, -(2**62)] + list(BEYOND)))
    form = draw(st.integers(0, 9))
    if form < 3:
        return wrong
    if form < 6:
        pair = [draw(st.sampled_from(small)), wrong]
        return tuple(pair if draw(st.booleans()) else pair[::-1])
    return draw(st.sampled_from([None, 1.5, 2.0, "2", True, (1,), (1, 2, 3), (1, None), {}, b"1",
                                 np.array([[1, 1]]), np.float64(2)]))


def _padding(draw, bad, huge_odds=12):
    small = (0, 0, 1, 1, 2, 3)
    if not bad:
        def p():
            return _small_or_huge(draw, small, 2**62 - 1, huge_odds=huge_odds)

        form = draw(st.integers(0, 9))
        if form < 2:
            return "valid"
        if form < 4:
            return draw(st.sampled_from(["same", "same", "SAME", "Valid"]))
        if form < 6:
            return p()
        if form < 7:
            return (p(), p())
        if form < 9:
            return ((p(), p()), (p(), p()))
        return [[p(), p()], [p(), p()]]
    wrong = draw(st.sampled_from([-1, -(2**62)] + list(BEYOND)))
    return draw(st.sampled_from([
        wrong, (0, wrong), ((0, wrong), (1, 1)), ((1, 1), (wrong, 0)), None, 1.5, (1,),
        ((1,), (2,)), ((1, 2), 3), ((1, 2, 3), (0, 0)), "full", "causal", "", b"same",
        {"top": 1},
    ]))


def _output_padding(draw, bad):
    """conv2d_transpose's output_padding: None (its default), or ints below the
    stride or dilation most of the time; bad ones: negative, past int64, not ints."""
    if not bad:
        form = draw(st.integers(0, 9))
        if form < 3:
            return None

        def one():
            return _small_or_huge(draw, (0, 0, 0, 1, 1, 2), 2**62 - 1, huge_odds=16)

        if form < 6:
            return one()
        if form < 8:
            return (one(), one())
        return draw(st.sampled_from([[one(), one()], np.array([one(), one()]), np.int64(one())]))
    wrong = draw(st.sampled_from([-1, -(2**62)] + list(BEYOND)))
    return draw(st.sampled_from([wrong, (0, wrong), (wrong, 1), 1.5, "1", (1,), (1, 2, 3), True,
                                 (1, None), {}, np.float64(1)]))


def _rank_other_than_4(draw):
    return tuple(draw(st.sampled_from([
        [], [3], [2, 3], [1, 2, 3], [1, 2, 3, 1, 1], [1, 1, 2, 2, 1, 1], [0, 2, 2], [1, 0, 0, 0, 0]])))


@st.composite
def calls(draw, fn_names=FUNCS):
    """A random call: the function's name, its arguments as a recipe, a data seed."""
    fn = draw(st.sampled_from(fn_names))
    conv = fn.startswith("conv")
    transposed = fn.startswith("conv2d_transpose")
    knobs = TRANSPOSE_KNOBS if transposed else KNOBS
    mode = draw(st.sampled_from(["valid"] * 5 + ["one_bad"] * 3 + ["wild"] * 2))
    if mode == "valid":
        bad_knobs = set()
    elif mode == "one_bad":
        bad_knobs = {draw(st.sampled_from(knobs))}
    else:
        bad_knobs = {k for k in knobs if draw(st.integers(0, 2)) == 0}

    def bad(knob):
        return knob in bad_knobs

    case = {"fn": fn, "mode": mode, "seed": draw(st.integers(0, 2**32 - 1))}
    layout = (draw(st.sampled_from([None, "NHWC", "channels-last", 3, b"channels_last"]))
              if bad("data_format") else
              draw(st.sampled_from(["channels_last"] * 4 + ["channels_first"] * 3 + [None])))
    case["data_format"] = layout
    # ---- channels and groups
    groups = draw(st.sampled_from([1, 1, 1, 1, 2, 3, 4, 8]))
    cg = draw(st.sampled_from([1, 1, 2, 3, 4, 0]))
    ocg = draw(st.sampled_from([1, 1, 2, 3, 5, 0]))
    c, oc = groups * cg, groups * ocg
    if bad("channels"):  # channel counts that groups does not divide, or a mismatch
        c, oc = draw(st.integers(0, 9)), draw(st.integers(0, 9))
    # ---- x
    n = draw(st.sampled_from([1, 1, 2, 3, 0]))
    h = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7]))
    w = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7]))
    nhwc = [n, h, w, c]
    if bad("x_shape"):
        kind = draw(st.integers(0, 2))
        if kind == 0:  # an empty spatial axis
            nhwc[draw(st.sampled_from([1, 2]))] = 0
        elif kind == 1:  # empty, with a huge axis: costs nothing to pass
            nhwc[3] = 0
            nhwc[draw(st.integers(0, 2))] = draw(st.sampled_from([2**31 + 1, 2**40]))
    shape = tuple(nhwc) if layout != "channels_first" else (nhwc[0], nhwc[3], nhwc[1], nhwc[2])
    if bad("x_shape") and draw(st.booleans()):
        shape = _rank_other_than_4(draw)
    case["x"] = {
        "kind": (draw(st.sampled_from(["none", "object", "scalar", "ragged", "string", "dict"]))
                 if bad("x_kind") else draw(st.sampled_from(["array"] * 5 + ["list"]))),
        "shape": shape,
        "dtype": (draw(st.sampled_from([np.complex64, np.object_, np.str_, "datetime64[s]"]))
                  if bad("x_dtype") else draw(st.sampled_from(DTYPES))),
        "view": draw(st.sampled_from(["plain"] * 6 + ["strided", "negative", "fortran",
                                                      "broadcast", "readonly"])),
        "special": draw(st.sampled_from(["none", "none", "nan", "inf", "mixed"])),
    }
    # ---- window arguments
    if conv:
        kh = draw(st.sampled_from([1, 1, 2, 3, 4]))
        kw = draw(st.sampled_from([1, 1, 2, 3, 4]))
        if transposed:  # (KH, KW, C_out // groups, C_in); C_out // groups any when bad
            ocg_axis = oc if bad("channels") else ocg
            kshape = (kh, kw, ocg_axis, c)
            if bad("kernel_shape"):
                kshape = draw(st.sampled_from([
                    (0, kw, ocg_axis, c), (kh, 0, ocg_axis, c), (kh, kw, ocg_axis, c + 1),
                    (kh, kw, c), (kh, kw, ocg_axis, c, 1), (), (kh, kw, ocg_axis, max(c - 1, 1)),
                    (8, 8, ocg_axis, c)]))
        else:
            kshape = (kh, kw, cg, oc)
            if bad("kernel_shape"):
                kshape = draw(st.sampled_from([
                    (0, kw, cg, oc), (kh, 0, cg, oc), (kh, kw, cg + 1, oc), (kh, kw, oc),
                    (kh, kw, cg, oc, 1), (), (kh, kw, cg, oc + 1), (8, 8, cg, oc)]))
        case["kernel"] = {
            "shape": kshape,
            "dtype": (draw(st.sampled_from(["other_float", np.float16, np.complex64, np.object_]))
                      if bad("kernel_dtype") else
                      draw(st.sampled_from(["match"] * 6 + [np.int64, np.bool_, np.uint8]))),
            "kind": (draw(st.sampled_from(["none", "string", "ragged"])) if bad("kernel_kind")
                     else draw(st.sampled_from(["array"] * 6 + ["list", "fortran", "negative"]))),
        }
        case["groups"] = (draw(st.sampled_from([0, -1, 5, 7, 2**62, 2**64, 1.0, True, None, "1"]))
                          if bad("groups") else
                          (np.int64(groups) if draw(st.integers(0, 9)) == 0 else groups))
        # A huge stride or dilation makes a transposed conv's output huge (a
        # conv's small): drawn a third as often for it, so that most valid
        # calls still compute.
        rare = 3 if transposed else 1
        case["strides"] = _int_arg(draw, (1, 1, 1, 2, 3, 4), bad("strides"), huge_odds=8 * rare)
        case["padding"] = _padding(draw, bad("padding"), huge_odds=12 * rare)
        case["dilation_rate"] = _int_arg(draw, (1, 1, 1, 2, 3), bad("dilation_rate"),
                                         huge_bound=2**40, huge_odds=10 * rare)
        if transposed:
            case["output_padding"] = _output_padding(draw, bad("output_padding"))
    else:
        if draw(st.integers(0, 9)) == 0 and not bad("pool_size"):
            # a huge window whose padding makes it fit: the kernels must clip it
            ph = draw(st.sampled_from([2, 3] + HUGE))
            pw = draw(st.sampled_from([2, 3] + HUGE))
            case["pool_size"] = (ph, pw)
            case["padding_override"] = ((ph - 1, ph - 1), (pw - 1, pw - 1))
        else:
            case["pool_size"] = _int_arg(draw, (1, 2, 2, 3, 4), bad("pool_size"), huge_odds=20)
        case["strides"] = (None if draw(st.integers(0, 3)) == 0 and not bad("strides") else
                           _int_arg(draw, (1, 1, 2, 3, 4), bad("strides")))
        case["padding"] = _padding(draw, bad("padding"))
    if fn in ("conv2d", "conv2d_transpose"):
        case["bias"] = (draw(st.sampled_from(["short", "2d", "scalar", "wrong_dtype", "complex",
                                              "string"]))
                        if bad("bias") else
                        draw(st.sampled_from(["none"] * 3 + ["match"] * 3 + ["list", "int",
                                                                             "noncontig"])))
        case["activation"] = (draw(st.sampled_from(["tanh", 1, "", "relu6", b"relu"]))
                              if bad("activation") else
                              draw(st.sampled_from([None] * 3 + ["relu"] * 2 + ["linear", "RELU"])))
    if fn.startswith("avg"):
        case["count_include_pad"] = (draw(st.sampled_from([1, 0, None, "yes", 1.0]))
                                     if bad("count_include_pad") else
                                     draw(st.sampled_from([False, True, np.True_, np.False_])))
    if fn in ("conv2d_backward", "conv2d_transpose_backward"):
        case["input_grad"] = draw(st.booleans())
    if fn.endswith("backward"):
        case["grad_out"] = (draw(st.sampled_from(["wrong_float", "wrong_shape", "none", "complex",
                                                  "rank3"]))
                            if bad("grad_out") else
                            draw(st.sampled_from(["exact"] * 6 + ["int", "list", "fortran",
                                                                  "strided", "nan"])))
    else:
        case["out"] = (draw(st.sampled_from(["wrong_shape", "wrong_dtype", "noncontig", "fortran",
                                             "readonly", "alias_x", "list", "rank3", "int"]))
                       if bad("out") else draw(st.sampled_from(["none"] * 3 + ["exact"] * 2)))
    return case


# ==================================================================== building args
def _values(rng, shape, dtype, special="none"):
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or dtype.kind == "c":
        a = rng.standard_normal(shape).astype(dtype)
    elif dtype.kind == "b":
        a = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        a = rng.integers(0, 5, size=shape).astype(dtype)
    elif dtype.kind == "O":
        a = rng.standard_normal(shape).astype(object)
    elif dtype.kind == "M":
        a = np.zeros(shape, dtype)
    else:
        a = rng.standard_normal(shape).astype(dtype)  # str
    if special != "none" and dtype.kind == "f" and a.size:
        flat = a.reshape(-1)
        k = max(1, a.size // 17)
        idx = rng.choice(a.size, size=min(k, a.size), replace=False)
        if special == "nan":
            flat[idx] = np.nan
        elif special == "inf":
            flat[idx] = np.where(rng.random(idx.size) < 0.5, np.inf, -np.inf)
        else:
            flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=dtype), size=idx.size)
    return a


def _view(a, how):
    """``a`` (an ndarray) re-presented with another memory layout, same values."""
    if how == "plain" or a.ndim == 0 or a.size == 0:
        return a
    if how == "strided":
        big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
        v = big[..., ::2]
        v[...] = a
        return v
    if how == "negative":
        return np.ascontiguousarray(a[::-1])[::-1]
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "broadcast":
        return np.broadcast_to(a[:1], a.shape) if a.shape[0] else a
    if how == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    raise AssertionError(how)


def _build_x(spec, rng):
    kind = spec["kind"]
    if kind == "none":
        return None
    if kind == "object":
        return object()
    if kind == "scalar":
        return 3.0
    if kind == "string":
        return "x"
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    if kind == "dict":
        return {"x": 1}
    a = _values(rng, spec["shape"], spec["dtype"], spec["special"])
    if kind == "list" and a.size:  # (an empty one would lose its shape, or be 2**40 lists)
        return a.tolist()
    return _view(a, spec["view"])


def _compute_dtype(x):
    try:
        a = np.asarray(x)
    except Exception:
        return np.dtype(np.float32)
    return np.dtype(np.float64) if a.dtype == np.float64 else np.dtype(np.float32)


def _build_kernel(spec, rng, dtype):
    kind = spec["kind"]
    if kind == "none":
        return None
    if kind == "string":
        return "kernel"
    if kind == "ragged":
        return [[1.0], [1.0, 2.0]]
    kdtype = spec["dtype"]
    if kdtype == "match":
        kdtype = dtype
    elif kdtype == "other_float":
        kdtype = np.float64 if dtype == np.float32 else np.float32
    k = _values(rng, spec["shape"], kdtype)
    if kind == "list" and k.size and dtype == np.float64:  # a list reads as float64
        return k.tolist()
    if kind in ("fortran", "negative"):
        return _view(k, kind)
    return k


def _build_bias(how, rng, oc, dtype):
    if how == "none":
        return None
    if how == "match":
        return _values(rng, (oc,), dtype)
    if how == "short":
        return _values(rng, (oc + 1,), dtype)
    if how == "2d":
        return _values(rng, (1, oc), dtype)
    if how == "scalar":
        return dtype.type(1)
    if how == "list" and dtype == np.float64:  # a list reads as float64
        return _values(rng, (oc,), dtype).tolist()
    if how == "list":
        return _values(rng, (oc,), dtype)
    if how == "wrong_dtype":
        return _values(rng, (oc,), np.float64 if dtype == np.float32 else np.float32)
    if how == "int":
        return np.arange(oc, dtype=np.int64)
    if how == "noncontig":
        return _view(_values(rng, (oc,), dtype), "strided")
    if how == "complex":
        return _values(rng, (oc,), np.complex64)
    if how == "string":
        return "bias"
    raise AssertionError(how)


def _expected(fn, args):
    """(output shape, compute dtype, checked call) of a valid forward pass, else None."""
    try:
        if fn.startswith("conv2d_transpose"):
            call = TransposeCall(args["x"], args["kernel"], args.get("bias"), args["strides"],
                                 args["padding"], args["output_padding"], args["dilation_rate"],
                                 args["groups"], args["data_format"])
        elif fn.startswith("conv"):
            call = ConvCall(args["x"], args["kernel"], args.get("bias"), args["strides"],
                            args["padding"],
                            args["dilation_rate"], args["groups"], args["data_format"])
        else:
            call = PoolCall(args["x"], args["pool_size"], args["strides"], args["padding"],
                            args["data_format"])
    except Exception:
        return None
    return call.out_shape, call.dtype, call


def _nominal_elems(shape):
    """Elements of ``shape`` with every empty axis counted as 1 (NumPy refuses an
    empty array whose other axes multiply past its index range)."""
    total = 1
    for s in shape:
        total *= max(int(s), 1)
    return total


def _make_out(how, expected, x, rng):
    if how == "none":
        return None
    if how == "list":
        return [[0.0]]
    shape, dtype = (expected[0], expected[1]) if expected else ((1, 2, 2, 1), np.dtype(np.float32))
    if _nominal_elems(shape) * dtype.itemsize > SMALL_BYTES:  # also for empty ones
        return None
    sentinel = dtype.type(-1234.5)
    if how == "exact":
        return np.full(shape, sentinel, dtype)
    if how == "wrong_shape":
        return np.full(tuple(s + 1 for s in shape), sentinel, dtype)
    if how == "rank3":
        return np.full(shape[1:], sentinel, dtype)
    if how == "wrong_dtype":
        return np.full(shape, sentinel, np.float64 if dtype == np.float32 else np.float32)
    if how == "int":
        return np.zeros(shape, np.int64)
    if how == "noncontig":
        return _view(np.full(shape, sentinel, dtype), "strided")
    if how == "fortran":
        return np.asfortranarray(np.full(shape, sentinel, dtype))
    if how == "readonly":
        return _view(np.full(shape, sentinel, dtype), "readonly")
    if how == "alias_x":
        size = int(np.prod(shape))
        if isinstance(x, np.ndarray) and x.dtype == dtype and x.flags.c_contiguous and \
                x.flags.writeable and x.size >= size > 0:
            return x.reshape(-1)[:size].reshape(shape)
        return np.full(shape, sentinel, dtype)
    raise AssertionError(how)


def _make_grad_out(how, expected, rng):
    shape, dtype = (expected[0], expected[1]) if expected else ((1, 2, 2, 1), np.dtype(np.float32))
    if _nominal_elems(shape) * dtype.itemsize > SMALL_BYTES:  # also for empty ones
        return None
    if how == "none":
        return None
    if how == "int":
        return rng.integers(-3, 4, size=shape)
    if how == "wrong_float":
        return _values(rng, shape, np.float64 if dtype == np.float32 else np.float32)
    if how == "wrong_shape":
        return _values(rng, tuple(s + 1 for s in shape), dtype)
    if how == "rank3":
        return _values(rng, shape[1:], dtype)
    if how == "complex":
        return _values(rng, shape, np.complex64)
    g = _values(rng, shape, dtype, "nan" if how == "nan" else "none")
    if how == "list" and g.size and dtype == np.float64:
        return g.tolist()
    if how in ("fortran", "strided"):
        return _view(g, how)
    return g


def _args(case):
    """The keyword arguments of one call (fresh arrays: each call gets its own)."""
    rng = np.random.default_rng(case["seed"])
    fn = case["fn"]
    args = {"x": _build_x(case["x"], rng), "data_format": case["data_format"]}
    dtype = _compute_dtype(args["x"])
    if fn.startswith("conv"):
        args["kernel"] = _build_kernel(case["kernel"], rng, dtype)
        args["groups"] = case["groups"]
        args["dilation_rate"] = case["dilation_rate"]
        if "output_padding" in case:
            args["output_padding"] = case["output_padding"]
    else:
        args["pool_size"] = case["pool_size"]
    args["strides"] = case["strides"]
    args["padding"] = case.get("padding_override", case["padding"])
    if "bias" in case and fn in ("conv2d", "conv2d_transpose"):
        kshape = args["kernel"].shape if isinstance(args["kernel"], np.ndarray) else ()
        oc = kshape[-1] if kshape else 1
        if fn == "conv2d_transpose":  # (KH, KW, C_out // groups, C_in)
            groups = case["groups"]
            groups = int(groups) if isinstance(groups, (int, np.integer)) and 0 < groups < 9 else 1
            oc = kshape[2] * groups if len(kshape) == 4 else 1
        args["bias"] = _build_bias(case["bias"], rng, oc, dtype)
    for key in ("activation", "count_include_pad", "input_grad"):
        if key in case:
            args[key] = case[key]
    expected = _expected(fn, args)
    if fn.endswith("backward"):
        args["grad_out"] = _make_grad_out(case["grad_out"], expected, rng)
    else:
        args["out"] = _make_out(case["out"], expected, args["x"], rng)
    return args, expected


# =================================================================== cost filters
def _nhwc_of_x(call):
    x = call.x.shape
    return x if call.data_format == "channels_last" else (x[0], x[2], x[3], x[1])


def _allocation_bytes(call):
    """Bytes of the fast call's result and of a backward pass's grad_x."""
    item = call.dtype.itemsize
    n, oh, ow, oc = call.nhwc_shape
    n, h, w, c = _nhwc_of_x(call)
    return n * oh * ow * oc * item, n * h * w * c * item


def _reference_work(call):
    """Elements the reference pads, views and sums, counting every empty axis as
    one (its divisor of avg pooling is computed on a one-image, one-channel
    array).  Large, and the reference is slow or fails ("array is too big")
    where the fast call, which never forms the windows, need not."""
    win = call.win
    n, h, w, c = _nhwc_of_x(call)
    if isinstance(call, TransposeCall):
        # the full (uncropped) output it scatters into; its backward pads
        # grad_out back to about that size and views H * W * KH * KW windows
        full = (win.oh + win.pt + win.pb) * (win.ow + win.pl + win.pr)
        taps = h * w * win.kh * win.kw
        return max(n, 1) * max(c, call.nhwc_shape[3], 1) * max(full, taps)
    padded = (h + win.pt + win.pb) * (w + win.pl + win.pr)
    windows = win.oh * win.ow * win.kh * win.kw
    return max(n, 1) * max(c, 1) * max(padded, windows)


def _too_costly(nbytes):
    """Would this allocation really be made and filled (slow)?  Under ASan an
    impossible allocation aborts the process instead of raising MemoryError,
    so there every large one is avoided."""
    upper = float("inf") if SANITIZED else IMPOSSIBLE_BYTES
    return SMALL_BYTES < nbytes < upper


# ========================================================================== oracle
def _abs64(a):
    return np.abs(np.asarray(a, dtype=np.float64))


def _conv_backward_tolerances(grad_out, x, kernel, dtype, input_grad, **kw):
    """The bounds of tests/test_backward.py's conv_backward_tolerances (same derivation):
    ``2 gamma_m S`` with S the gradient of absolute values and m the number of terms."""
    kh, kw_, _, oc = np.shape(kernel)
    groups = kw["groups"]
    n_x = max(kh * kw_ * (oc // groups), 1)
    n_k = max(int(np.size(grad_out)) // max(oc, 1), 1)
    g = _abs64(grad_out)
    tiny = 4 * float(np.finfo(dtype).tiny)

    def bound(s, m):
        return 2 * gamma(m, dtype) * (s * (1 + gamma(m, np.float64))) + tiny

    s_x = (reference.conv2d_backward(g, _abs64(x), _abs64(kernel), **kw)[0]
           if input_grad else None)
    _, s_k, s_b = reference.conv2d_backward(g, _abs64(x), np.asarray(kernel, np.float64),
                                            input_grad=False, **kw)
    return (None if s_x is None else bound(s_x, n_x)), bound(s_k, n_k), bound(s_b, n_k)


def _transpose_backward_tolerances(grad_out, x, call, input_grad, **kw):
    """tests/test_conv2d_transpose.py's transpose_backward_tolerances: ``2 gamma_m S``
    with m = KH * KW * C_out / groups (grad_x), N * H * W (grad_kernel),
    N * OH * OW (grad_bias)."""
    kh, kw_, ocg, _ = call.kernel.shape
    n, h, w, _ = _nhwc_of_x(call)
    _, oh, ow, _ = call.nhwc_shape
    dtype = call.dtype
    tiny = 4 * float(np.finfo(dtype).tiny)

    def bound(s, m):
        m = max(m, 1)
        return 2 * gamma(m, dtype) * (s * (1 + gamma(m, np.float64))) + tiny

    g = _abs64(grad_out)
    s_x = (reference.conv2d_transpose_backward(g, _abs64(x), _abs64(call.kernel), **kw)[0]
           if input_grad else None)
    _, s_k, s_b = reference.conv2d_transpose_backward(
        g, _abs64(x), np.asarray(call.kernel, np.float64), input_grad=False, **kw)
    return ((None if s_x is None else bound(s_x, kh * kw_ * ocg)), bound(s_k, n * h * w),
            bound(s_b, n * oh * ow))


def _pool_backward_tolerance(grad_out, x, call, is_max, **kw):
    """tests/test_backward.py's pool_backward_tolerance: ``2 gamma_m S``, m the
    number of windows covering a cell."""
    win, dtype = call.win, call.dtype
    m = -(-win.kh // win.sh) * -(-win.kw // win.sw)
    x64 = np.asarray(x, np.float64)
    if is_max:
        s = reference.max_pool2d_backward(_abs64(grad_out), x64, **kw)
        g = gamma(m - 1, dtype) if m > 1 else 0.0
        g64 = gamma(m - 1, np.float64) if m > 1 else 0.0
        return 2 * g * s * (1 + g64)
    s = reference.avg_pool2d_backward(_abs64(grad_out), x64, **kw)
    return 2 * gamma(m, dtype) * s * (1 + gamma(m, np.float64)) + 4 * float(np.finfo(dtype).tiny)


def _compare(fn, args, call, got, want, cfg):
    """Assert the fast result ``got`` equals the reference result ``want``."""
    dtype = call.dtype
    kw = {k: v for k, v in args.items() if k not in ("x", "kernel", "bias", "out", "grad_out",
                                                      "pool_size", "input_grad")}
    if fn.endswith("backward"):
        if fn in ("conv2d_backward", "conv2d_transpose_backward"):
            assert isinstance(got, tuple) and len(got) == 3, cfg
            if fn == "conv2d_backward":
                tols = _conv_backward_tolerances(args["grad_out"], args["x"], call.kernel, dtype,
                                                 args["input_grad"], **kw)
            else:
                tols = _transpose_backward_tolerances(args["grad_out"], args["x"], call,
                                                      args["input_grad"], **kw)
            for name, a, b, tol in zip(("grad_x", "grad_kernel", "grad_bias"), got, want, tols):
                if b is None:
                    assert a is None, f"{name}: expected None; {cfg}"
                    continue
                assert a.dtype == b.dtype == dtype, f"{name} dtype {a.dtype}; {cfg}"
                assert_conv_close(a, b, tol, f"{name}: {cfg}")
            return
        is_max = fn.startswith("max")
        assert got.dtype == want.dtype == dtype and got.shape == want.shape, cfg
        pool_kw = dict(kw, pool_size=args["pool_size"])
        tol = _pool_backward_tolerance(args["grad_out"], args["x"], call, is_max, **pool_kw)
        assert_conv_close(got, want, tol, cfg)
        return
    assert got.dtype == want.dtype == dtype, f"dtype {got.dtype} vs {want.dtype}; {cfg}"
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}; {cfg}"
    assert got.flags.c_contiguous, cfg
    if fn == "max_pool2d":
        same = np.array_equal(got, want, equal_nan=True)
        assert same, f"max_pool2d differs from the reference; {cfg}"
    elif fn == "avg_pool2d":
        tol = avg_pool_tolerance(args["x"], args["pool_size"], dtype, **kw)
        assert_conv_close(got, want, tol, cfg)
    elif fn == "conv2d_transpose":
        tol = transpose_tolerance(args["x"], call.kernel, dtype, bias=call.bias, **kw)
        assert_conv_close(got, want, tol, cfg)
    else:
        tol = conv_tolerance(args["x"], call.kernel, dtype, bias=call.bias, **kw)
        assert_conv_close(got, want, tol, cfg)


def _snapshot(value):
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return ("obj", value.copy(), [id(v) for v in value.ravel()])
        return ("arr", value.copy())
    return None


def _unchanged(value, snap):
    if snap is None:
        return True
    if snap[0] == "obj":
        return [id(v) for v in value.ravel()] == snap[2]
    before = snap[1]
    return before.shape == value.shape and before.tobytes() == np.ascontiguousarray(value).tobytes()


def _run(fn, args):
    try:
        return None, fn(**args)
    except BaseException as err:  # noqa: BLE001 - classified by the caller
        return err, None


def check_call(case):
    """Run one generated call against the reference; assert the fuzz contract."""
    with np.errstate(all="ignore"):  # the reference divides 0 by 0 in all-padding windows
        _check_call(case)


def _check_call(case):
    fn = case["fn"]
    args, expected = _args(case)
    call = expected[2] if expected else None
    run_reference = True
    if call is not None:
        out_bytes, grad_x_bytes = _allocation_bytes(call)
        if _too_costly(out_bytes) or (fn.endswith("backward") and _too_costly(grad_x_bytes)):
            STATS["skipped"] += 1
            return
        # (The reference's backward passes also loop over the taps in Python.)
        run_reference = _reference_work(call) <= REFERENCE_WORK and (
            not fn.endswith("backward") or call.win.kh * call.win.kw <= 10_000)
    cfg = f"{fn}({_describe(args)})"
    ref_err = want = None
    if run_reference:
        ref_args, _ = _args(case)  # its own arrays (out=, grad_out) for the reference
        ref_err, want = _run(getattr(reference, fn), ref_args)
    snaps = {k: _snapshot(v) for k, v in args.items()}
    if TRACE:
        with open(TRACE, "a") as f:
            f.write(cfg + "\n")
            f.flush()
    STATS["calls"] += 1
    err, got = _run(getattr(convpool, fn), args)

    # 1. Only ValueError, TypeError, MemoryError; nothing modified on the way out.
    if err is not None and not isinstance(err, ALLOWED):
        raise AssertionError(f"{type(err).__name__}: {err}\n  call: {cfg}") from err
    for key, snap in snaps.items():
        if key == "out" and err is None:
            continue
        assert _unchanged(args[key], snap), (
            f"{key} was modified by a call that "
            f"{'raised ' + type(err).__name__ if err else 'returned'}\n  call: {cfg}"
        )
    if err is not None:
        STATS["raised"] += 1
        # 2. Where the reference accepts the call, only the workspace cap may refuse it.
        if run_reference and ref_err is None:
            assert isinstance(err, MemoryError), (
                f"the reference accepts this call but convpool raised {type(err).__name__}: "
                f"{err}\n  call: {cfg}")
        if isinstance(ref_err, TypeError):
            assert isinstance(err, (TypeError, MemoryError)), (
                f"the reference raised TypeError ({ref_err}) but convpool "
                f"{type(err).__name__} ({err})\n  call: {cfg}")
        return
    if args.get("out") is not None:
        assert got is args["out"], f"the result is not out=; {cfg}"
    if not run_reference:  # too large for the reference: the shape and dtype at least
        first = got[-1] if fn == "conv2d_backward" else got
        want_shape = call.out_shape if not fn.endswith("backward") else call.x.shape
        if fn in ("conv2d_backward", "conv2d_transpose_backward"):
            want_shape = (call.win.kh, call.win.kw) + call.kernel.shape[2:]
            first = got[1]
        assert first.shape == tuple(want_shape) and first.dtype == call.dtype, cfg
        return
    # 3. The fast call succeeded: so must the reference, unless its padded or
    #    windowed arrays were too big for NumPy (huge padding or windows).
    if ref_err is not None:
        assert isinstance(ref_err, (MemoryError, ValueError)) and call is not None and \
            _reference_work(call) > REFERENCE_WORK // 64, (
                f"convpool accepted a call the reference rejects with "
                f"{type(ref_err).__name__}: {ref_err}\n  call: {cfg}")
        return
    # 4. Same values.
    _compare(fn, args, call, got, want, cfg)
    STATS["compared"] += 1


def _describe(args):
    parts = []
    for k, v in args.items():
        if isinstance(v, np.ndarray):
            flags = "" if v.flags.c_contiguous else " noncontig"
            flags += "" if v.flags.writeable else " ro"
            parts.append(f"{k}=ndarray{v.shape} {v.dtype}{flags}")
        elif isinstance(v, list):
            parts.append(f"{k}=list(shape {np.shape(v) if _rectangular(v) else 'ragged'})")
        else:
            parts.append(f"{k}={v!r}")
    return ", ".join(parts)


def _rectangular(v):
    try:
        np.asarray(v)
        return True
    except ValueError:
        return False


# =========================================================================== tests
_SETTINGS = dict(deadline=None, database=None, print_blob=True,
                 suppress_health_check=list(HealthCheck))


def _reset():
    for key in STATS:
        STATS[key] = 0


def test_fuzz_public_functions():
    """5000+ calls spread over the six functions, valid and invalid, from a fixed seed."""
    _reset()

    @settings(max_examples=5200, derandomize=True, **_SETTINGS)
    @given(case=calls())
    def run(case):
        check_call(case)

    run()
    assert STATS["calls"] >= 5000, STATS
    # The contract must be exercised on both sides: many results compared,
    # many arguments rejected.
    assert STATS["compared"] >= 1000 and STATS["raised"] >= 1000, STATS


def test_fuzz_conv2d_transpose():
    """600 calls of conv2d_transpose and its backward pass, valid and invalid,
    from a fixed seed: the contract above, with the output_padding knob."""
    _reset()

    @settings(max_examples=600, derandomize=True, **_SETTINGS)
    @given(case=calls(TRANSPOSE_FUNCS))
    def run(case):
        check_call(case)

    run()
    assert STATS["calls"] >= 550, STATS
    assert STATS["compared"] >= 150 and STATS["raised"] >= 150, STATS


@pytest.mark.fuzz
def test_fuzz_public_functions_long():
    """50,000 fresh random calls (``pytest -m fuzz``), the transposed conv's among them."""
    _reset()

    @settings(max_examples=52_000, **_SETTINGS)
    @given(case=calls(FUNCS + TRANSPOSE_FUNCS))
    def run(case):
        check_call(case)

    run()
    assert STATS["calls"] >= 50_000, STATS
