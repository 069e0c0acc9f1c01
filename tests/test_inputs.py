"""Argument validation, input immutability, memory layouts and ``out=``.

Every bad argument must raise ValueError / TypeError whose message names the
argument (and, for shape problems, the shapes), before any computation: ``out``
and the inputs are left untouched.  Every view of the data (strided, negative
strides, Fortran order, broadcast, channels_first transpose, read-only) must
give bitwise the result of its contiguous copy.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import convpool
from convpool import reference
from _helpers import assert_bitwise_equal, guarded_out, strided_copy, to_layout

F32 = np.float32

X = np.arange(75, dtype=F32).reshape(1, 5, 5, 3) / 10  # (N, H, W, C)
K = np.ones((2, 2, 3, 4), F32)
B = np.zeros(4, F32)


def _conv(**over):
    args = dict(x=X, kernel=K, bias=None)
    args.update(over)
    return lambda fn=convpool.conv2d: fn(**args)


# ------------------------------------------------------------------ conv2d errors
CONV_ERRORS = [
    # rank
    ("x-3d", dict(x=X[0]), ValueError, r"x must be 4-D \(N, H, W, C\).*got shape \(5, 5, 3\)"),
    ("x-5d", dict(x=X[None]), ValueError, r"x must be 4-D.*\(1, 1, 5, 5, 3\)"),
    ("x-3d-nchw", dict(x=X[0], data_format="channels_first"), ValueError,
     r"x must be 4-D \(N, C, H, W\) for data_format='channels_first'"),
    ("kernel-3d", dict(kernel=K[0]), ValueError, r"kernel must be 4-D.*got shape \(2, 3, 4\)"),
    # channels
    ("cin-mismatch", dict(kernel=np.ones((2, 2, 2, 4), F32)), ValueError,
     r"kernel expects 2 input channels.*x has 3 channels.*"
     r"x shape \(1, 5, 5, 3\).*kernel shape \(2, 2, 2, 4\)"),
    ("cin-mismatch-nchw", dict(data_format="channels_first"), ValueError,
     r"x has 5 channels.*x shape \(1, 5, 5, 3\) \(channels_first\)"),
    ("groups-cin", dict(groups=2), ValueError,
     r"groups=2 must divide both the input channels \(3\).*output channels \(4\)"),
    ("groups-cout", dict(x=np.ones((1, 5, 5, 4), F32), kernel=np.ones((2, 2, 2, 5), F32),
                         groups=2), ValueError, r"groups=2 must divide.*output channels \(5\)"),
    ("groups-0", dict(groups=0), ValueError, r"groups must be positive, got 0"),
    ("groups-neg", dict(groups=-3), ValueError, r"groups must be positive, got -3"),
    ("groups-float", dict(groups=1.0), TypeError, r"groups must be an int"),
    ("groups-bool", dict(groups=True), TypeError, r"groups must be an int, got the bool"),
    # strides / dilation
    ("strides-0", dict(strides=0), ValueError, r"strides must be positive, got 0"),
    ("strides-neg", dict(strides=(1, -1)), ValueError, r"strides must be positive, got \(1, -1\)"),
    ("strides-float", dict(strides=1.5), TypeError, r"strides must be an int"),
    ("strides-3", dict(strides=(1, 1, 1)), ValueError, r"strides must be .*3 elements"),
    ("dilation-0", dict(dilation_rate=0), ValueError, r"dilation_rate must be positive, got 0"),
    ("dilation-neg", dict(dilation_rate=(-1, 1)), ValueError, r"dilation_rate must be positive"),
    # padding / data_format
    ("padding-str", dict(padding="full"), ValueError, r"padding must be 'valid', 'same'.*'full'"),
    ("padding-neg", dict(padding=-1), ValueError, r"padding must be non-negative, got -1"),
    ("padding-neg-pair", dict(padding=(0, -2)), ValueError, r"padding must be non-negative"),
    ("padding-neg-explicit", dict(padding=((0, 0), (-1, 0))), ValueError, r"padding must be >= 0"),
    ("padding-none", dict(padding=None), TypeError, r"padding must be 'valid', 'same'"),
    ("data-format", dict(data_format="NHWC"), ValueError,
     r"data_format must be 'channels_last' or 'channels_first', got 'NHWC'"),
    ("data-format-int", dict(data_format=1), ValueError, r"data_format must be"),
    # window too large
    ("kernel-too-big", dict(kernel=np.ones((6, 2, 3, 4), F32)), ValueError,
     r"window does not fit: the padded input is \(5, 5\).*effective kernel size is \(6, 2\)"
     r".*kernel shape \(6, 2, 3, 4\)"),
    ("dilated-too-big", dict(dilation_rate=(1, 5)), ValueError,
     r"padded input is \(5, 5\).*effective kernel size is \(2, 6\).*dilation_rate \(1, 5\)"),
    ("zero-height", dict(x=np.ones((1, 0, 5, 3), F32)), ValueError,
     r"window does not fit.*input \(0, 5\)"),
    ("zero-taps", dict(kernel=np.ones((0, 2, 3, 4), F32)), ValueError,
     r"kernel must have at least one tap.*kernel shape \(0, 2, 3, 4\)"),
    # bias
    ("bias-short", dict(bias=np.ones(3, F32)), ValueError,
     r"bias must have shape \(C_out,\) = \(4,\), got \(3,\)"),
    ("bias-2d", dict(bias=np.ones((1, 4), F32)), ValueError, r"bias must have shape.*\(1, 4\)"),
    ("bias-scalar", dict(bias=F32(1)), ValueError, r"bias must have shape.*got \(\)"),
    # dtypes
    ("x-complex", dict(x=X.astype(np.complex64)), TypeError, r"x has dtype complex64"),
    ("x-object", dict(x=X.astype(object)), TypeError, r"x has dtype object"),
    ("x-str", dict(x=X.astype(str)), TypeError, r"x has dtype <U\d+"),
    ("x-datetime", dict(x=np.zeros((1, 5, 5, 3), "datetime64[s]")), TypeError,
     r"x has dtype datetime64"),
    ("x-none", dict(x=None), TypeError, r"x must be an array, got None"),
    ("kernel-none", dict(kernel=None), TypeError, r"kernel must be an array, got None"),
    ("kernel-f64", dict(kernel=K.astype(np.float64)), TypeError,
     r"kernel has dtype float64 but the input is computed in float32"),
    ("kernel-f32-for-f64", dict(x=X.astype(np.float64)), TypeError,
     r"kernel has dtype float32 but the input is computed in float64"),
    ("kernel-f16-for-f16", dict(x=X.astype(np.float16), kernel=K.astype(np.float16)), TypeError,
     r"kernel has dtype float16 but the input is computed in float32"),
    ("kernel-complex", dict(kernel=K.astype(complex)), TypeError, r"kernel has dtype complex128"),
    ("bias-f64", dict(bias=B.astype(np.float64)), TypeError, r"bias has dtype float64.*float32"),
    ("bias-object", dict(bias=B.astype(object)), TypeError, r"bias has dtype object"),
]


@pytest.mark.parametrize("fn", [convpool.conv2d, reference.conv2d], ids=["fast", "ref"])
@pytest.mark.parametrize(
    "over, exc, pattern", [pytest.param(*c[1:], id=c[0]) for c in CONV_ERRORS]
)
def test_conv2d_rejects(over, exc, pattern, fn):
    call = _conv(**over)
    with pytest.raises(exc, match=pattern):
        call(fn)


# ------------------------------------------------------------------- pool errors
POOL_ERRORS = [
    ("pool-0", dict(pool_size=0), ValueError, r"pool_size must be positive, got 0"),
    ("pool-neg", dict(pool_size=(2, -1)), ValueError, r"pool_size must be positive, got \(2, -1\)"),
    ("pool-float", dict(pool_size=2.0), TypeError, r"pool_size must be an int"),
    ("pool-none", dict(pool_size=None), TypeError, r"pool_size must be an int"),
    ("strides-0", dict(strides=0), ValueError, r"strides must be positive, got 0"),
    ("strides-neg", dict(strides=(-2, 1)), ValueError, r"strides must be positive"),
    ("pool-too-big", dict(pool_size=6), ValueError,
     r"padded input is \(5, 5\).*effective pool_size is \(6, 6\).*x shape \(1, 5, 5, 3\)"),
    ("pool-too-big-nchw", dict(pool_size=(2, 4), data_format="channels_first"), ValueError,
     r"padded input is \(5, 3\).*pool_size is \(2, 4\).*channels_first"),
    ("pad-exceeds", dict(pool_size=2, padding=2), ValueError,
     r"padding 2 resolves to .* \(2, 2, 2, 2\).*may not exceed the pool_size minus one, \(1, 1\)"),
    ("pad-exceeds-one-side", dict(pool_size=(3, 2), padding=((0, 3), (0, 0))), ValueError,
     r"pool_size minus one, \(2, 1\)"),
    ("pad-exceeds-pool-1", dict(pool_size=1, padding=(0, 1)), ValueError,
     r"pool_size minus one, \(0, 0\)"),
    ("padding-neg", dict(padding=-1), ValueError, r"padding must be non-negative"),
    ("padding-str", dict(padding="causal"), ValueError, r"padding must be 'valid', 'same'"),
    ("data-format", dict(data_format="NCHW"), ValueError, r"data_format must be"),
    ("x-3d", dict(x=X[0]), ValueError, r"x must be 4-D.*\(5, 5, 3\)"),
    ("x-complex", dict(x=X.astype(complex)), TypeError, r"x has dtype complex128"),
    ("x-object", dict(x=X.astype(object)), TypeError, r"x has dtype object"),
    ("x-none", dict(x=None), TypeError, r"x must be an array"),
]


@pytest.mark.parametrize(
    "fn",
    [convpool.max_pool2d, convpool.avg_pool2d, reference.max_pool2d, reference.avg_pool2d],
    ids=["max", "avg", "ref-max", "ref-avg"],
)
@pytest.mark.parametrize(
    "over, exc, pattern", [pytest.param(*c[1:], id=c[0]) for c in POOL_ERRORS]
)
def test_pools_reject(over, exc, pattern, fn):
    args = dict(x=X, pool_size=2)
    args.update(over)
    with pytest.raises(exc, match=pattern):
        fn(**args)


@pytest.mark.parametrize("fn", [convpool.avg_pool2d, reference.avg_pool2d], ids=["fast", "ref"])
@pytest.mark.parametrize("value", [1, 0, None, "yes", np.int64(1)], ids=repr)
def test_avg_pool2d_count_include_pad_must_be_bool(fn, value):
    with pytest.raises(TypeError, match=r"count_include_pad must be a bool"):
        fn(X, 2, count_include_pad=value)


def test_avg_pool2d_count_include_pad_accepts_numpy_bool():
    a = convpool.avg_pool2d(X, 2, 1, 1, count_include_pad=np.True_)
    b = convpool.avg_pool2d(X, 2, 1, 1, count_include_pad=True)
    assert_bitwise_equal(a, b, "np.True_")


# ------------------------------------------------------------------------ out= errors
def _out_cases():
    good = (1, 4, 4, 4)
    base = np.zeros(200, F32)
    x_in_base = base[:75].reshape(1, 5, 5, 3)
    k_base = np.zeros(200, F32)
    k_in_base = k_base[:48].reshape(2, 2, 3, 4)
    b_base = np.zeros(80, F32)
    ro = np.zeros(good, F32)
    ro.flags.writeable = False
    return [
        ("dtype", dict(out=np.zeros(good, np.float64)), TypeError,
         r"out has dtype float64 but the result has dtype float32"),
        ("shape", dict(out=np.zeros((1, 4, 4, 3), F32)), ValueError,
         r"out has shape \(1, 4, 4, 3\) but the result has shape \(1, 4, 4, 4\)"),
        ("shape-nchw", dict(out=np.zeros(good, F32), x=np.ones((1, 3, 5, 6), F32),
                            data_format="channels_first"), ValueError,
         r"out has shape \(1, 4, 4, 4\) but the result has shape \(1, 4, 4, 5\)"),
        ("non-contiguous", dict(out=np.zeros((1, 4, 4, 8), F32)[..., ::2]), ValueError,
         r"out must be C-contiguous"),
        ("fortran", dict(out=np.asfortranarray(np.zeros(good, F32))), ValueError,
         r"out must be C-contiguous"),
        ("read-only", dict(out=ro), ValueError, r"out of shape \(1, 4, 4, 4\) is read-only"),
        ("list", dict(out=[[0.0]]), TypeError, r"out must be a numpy.ndarray, got list"),
        ("overlap-x", dict(x=x_in_base, out=base[50:114].reshape(good)), ValueError,
         r"out \(shape \(1, 4, 4, 4\)\) shares memory with x \(shape \(1, 5, 5, 3\)\)"),
        ("overlap-kernel", dict(kernel=k_in_base, out=k_base[40:104].reshape(good)), ValueError,
         r"shares memory with kernel \(shape \(2, 2, 3, 4\)\)"),
        ("overlap-bias", dict(bias=b_base[:4], out=b_base[2:66].reshape(good)), ValueError,
         r"shares memory with bias"),
    ]


@pytest.mark.parametrize("fn", [convpool.conv2d, reference.conv2d], ids=["fast", "ref"])
@pytest.mark.parametrize(
    "over, exc, pattern", [pytest.param(*c[1:], id=c[0]) for c in _out_cases()]
)
def test_conv2d_out_rejected_and_untouched(over, exc, pattern, fn):
    out = over["out"]
    before = np.array(out, copy=True)
    with pytest.raises(exc, match=pattern):
        _conv(**over)(fn)
    assert np.array_equal(np.asarray(out), before)


def test_fortran_out_case_is_really_not_c_contiguous():
    case = dict((c[0], c[1]) for c in _out_cases())["fortran"]
    assert not case["out"].flags.c_contiguous


def test_conv2d_out_adjacent_to_x_is_accepted():
    """Sharing a base array is fine as long as the bytes do not overlap."""
    base = np.zeros(75 + 64, F32)
    x = base[:75].reshape(1, 5, 5, 3)
    x[...] = X
    out = base[75:].reshape(1, 4, 4, 4)
    got = convpool.conv2d(x, K, out=out)
    assert got is out
    assert_bitwise_equal(out, convpool.conv2d(X, K), "adjacent")


@pytest.mark.parametrize("fn", [convpool.max_pool2d, convpool.avg_pool2d], ids=["max", "avg"])
def test_pools_out_is_x_rejected(fn):
    """pool_size 1 makes the output the shape of x: out=x must still be refused."""
    x = X.copy()
    before = x.copy()
    with pytest.raises(ValueError, match=r"out \(shape \(1, 5, 5, 3\)\) shares memory with x"):
        fn(x, 1, out=x)
    assert_bitwise_equal(x, before, "out=x")


@pytest.mark.parametrize("fn", [convpool.max_pool2d, convpool.avg_pool2d], ids=["max", "avg"])
def test_pools_out_errors(fn):
    with pytest.raises(TypeError, match=r"out has dtype float64 but the result has dtype float32"):
        fn(X, 2, out=np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"out has shape \(1, 2, 2, 4\)"):
        fn(X, 2, out=np.zeros((1, 2, 2, 4), F32))
    with pytest.raises(ValueError, match=r"out must be C-contiguous"):
        fn(X, 2, out=np.zeros((1, 2, 2, 6), F32)[..., ::2])
    ro = np.zeros((1, 2, 2, 3), F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"read-only"):
        fn(X, 2, out=ro)
    base = np.zeros(100, F32)
    x = base[:75].reshape(1, 5, 5, 3)
    with pytest.raises(ValueError, match=r"shares memory with x"):
        fn(x, 2, out=base[70:82].reshape(1, 2, 2, 3))


@pytest.mark.parametrize(
    "call",
    [
        lambda out: convpool.conv2d(X, K, strides=0, out=out),
        lambda out: convpool.conv2d(X, K.astype(np.float64), out=out),
        lambda out: convpool.conv2d(X, K, bias=np.ones(5, F32), out=out),
        lambda out: convpool.max_pool2d(X, 2, padding=5, out=out),
        lambda out: convpool.avg_pool2d(X, 2, count_include_pad=1, out=out),
    ],
    ids=["strides", "kernel-dtype", "bias-shape", "pool-pad", "cip"],
)
def test_out_untouched_when_another_argument_is_bad(call):
    gout = guarded_out((1, 4, 4, 4), F32)
    with pytest.raises((ValueError, TypeError)):
        call(gout.view)
    assert np.isnan(gout.buffer).all()


# --------------------------------------------------------------- inputs never modified
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_inputs_never_modified(dtype, layout, rng):
    x = to_layout(rng.standard_normal((2, 7, 6, 4)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 2, 2, 6)).astype(dtype)
    bias = rng.standard_normal(6).astype(dtype)
    copies = [a.copy() for a in (x, kernel, bias)]
    convpool.conv2d(x, kernel, bias, padding="same", groups=2, data_format=layout)
    convpool.max_pool2d(x, 3, 1, 1, layout)
    convpool.avg_pool2d(x, (2, 3), (1, 2), "same", layout, count_include_pad=True)
    for a, c in zip((x, kernel, bias), copies):
        assert_bitwise_equal(a, c, layout, what="input after the calls")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8], ids=["f32", "f64", "u8"])
def test_read_only_inputs_work(dtype, rng):
    x = rng.integers(0, 9, size=(2, 7, 6, 4)).astype(dtype)
    w_dtype = np.float64 if dtype == np.float64 else np.float32
    kernel = rng.standard_normal((3, 2, 4, 5)).astype(w_dtype)
    bias = rng.standard_normal(5).astype(w_dtype)
    expected = (
        convpool.conv2d(x, kernel, bias, padding=1),
        convpool.max_pool2d(x, 2, 1, "same"),
        convpool.avg_pool2d(x, 3, 2, 1),
    )
    for a in (x, kernel, bias):
        a.flags.writeable = False
    got = (
        convpool.conv2d(x, kernel, bias, padding=1),
        convpool.max_pool2d(x, 2, 1, "same"),
        convpool.avg_pool2d(x, 3, 2, 1),
    )
    for g, e in zip(got, expected):
        assert_bitwise_equal(g, e, dtype, what="read-only vs writeable inputs")
    # a read-only broadcast view (zero strides) too
    xb = np.broadcast_to(x[:1], x.shape)
    assert not xb.flags.writeable
    assert_bitwise_equal(convpool.max_pool2d(xb, 2), convpool.max_pool2d(np.array(xb), 2), "bcast")


# ------------------------------------------------------------------------ memory layouts
def _views(a):
    """Views equal to ``a`` with other memory layouts, and their names."""
    neg = np.ascontiguousarray(a[::-1, ::-1, ::-1, ::-1])[::-1, ::-1, ::-1, ::-1]
    assert neg.strides[0] < 0 or a.shape[0] == 1
    return {
        "strided": strided_copy(a, 3),
        "negative": neg,
        "fortran": np.asfortranarray(a),
        "offset-slice": np.pad(a, ((0, 0), (1, 2), (2, 1), (0, 0)), constant_values=np.nan)[
            :, 1:-2, 2:-1, :
        ],
    }


@pytest.mark.parametrize("view", ["strided", "negative", "fortran", "offset-slice"])
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_views_give_bitwise_the_contiguous_result(view, layout, dtype, rng):
    x = to_layout(rng.standard_normal((3, 8, 9, 5)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 2, 5, 18)).astype(dtype)
    bias = rng.standard_normal(18).astype(dtype)
    xv = _views(x)[view]
    kv = _views(kernel)[view]
    bv = strided_copy(bias[None, :], 2)[0] if view == "strided" else bias[::-1].copy()[::-1]
    assert not xv.flags.c_contiguous and not kv.flags.c_contiguous
    assert np.array_equal(xv, x) and np.array_equal(kv, kernel) and np.array_equal(bv, bias)
    kw = dict(strides=(2, 1), padding="same", dilation_rate=(1, 2), data_format=layout)
    assert_bitwise_equal(convpool.conv2d(xv, kv, bv, **kw), convpool.conv2d(x, kernel, bias, **kw),
                         (view, layout), what="conv2d view vs contiguous")
    pools = ((convpool.max_pool2d, {}), (convpool.avg_pool2d, {"count_include_pad": False}))
    for fn, extra in pools:
        assert_bitwise_equal(fn(xv, (3, 2), (1, 2), "same", layout, **extra),
                             fn(x, (3, 2), (1, 2), "same", layout, **extra),
                             (view, layout), what=f"{fn.__name__} view vs contiguous")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_channels_first_transpose_view_equals_channels_last(dtype, rng):
    """An NCHW *view* of NHWC memory (and vice versa) gives the bits of the other layout."""
    x = rng.standard_normal((2, 7, 9, 6)).astype(dtype)
    kernel = rng.standard_normal((2, 3, 3, 8)).astype(dtype)
    nchw_view = x.transpose(0, 3, 1, 2)
    kw = dict(strides=(1, 2), padding=((1, 0), (2, 1)), groups=2)
    last = convpool.conv2d(x, kernel, **kw)
    first = convpool.conv2d(nchw_view, kernel, data_format="channels_first", **kw)
    assert first.shape == (2, 8, last.shape[1], last.shape[2]) and first.flags.c_contiguous
    assert_bitwise_equal(first.transpose(0, 2, 3, 1), last, kw, what="NCHW view vs NHWC")
    back = np.ascontiguousarray(nchw_view).transpose(0, 2, 3, 1)  # NHWC view of NCHW memory
    assert_bitwise_equal(convpool.conv2d(back, kernel, **kw), last, kw, what="NHWC view")
    for fn in (convpool.max_pool2d, convpool.avg_pool2d):
        a = fn(x, (2, 3), 1, "same")
        b = fn(nchw_view, (2, 3), 1, "same", "channels_first")
        assert_bitwise_equal(b.transpose(0, 2, 3, 1), a, fn.__name__, what="pool NCHW vs NHWC")


def test_array_like_inputs():
    xl = X.astype(np.float64).tolist()
    kl = K.astype(np.float64).tolist()
    got = convpool.conv2d(xl, kl, [0.0, 1.0, 2.0, 3.0])
    assert got.dtype == np.float64
    expected = convpool.conv2d(np.array(xl), np.array(kl), np.array([0.0, 1.0, 2.0, 3.0]))
    assert_bitwise_equal(got, expected, "lists")
    assert_bitwise_equal(convpool.max_pool2d(xl, 2), convpool.max_pool2d(np.array(xl), 2), "lists")


# ---------------------------------------------------------------------------- N = 0
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_empty_batch_with_out(layout):
    x = to_layout(np.zeros((0, 5, 5, 3), F32), layout)
    out = np.zeros((0, 4, 4, 4), F32)  # C_out = OH = OW = 4: the same in both layouts
    assert convpool.conv2d(x, K, out=out, data_format=layout) is out
    pshape = (0, 3, 2, 2) if layout == "channels_first" else (0, 2, 2, 3)
    pout = np.zeros(pshape, F32)
    assert convpool.max_pool2d(x, 2, data_format=layout, out=pout) is pout
    assert convpool.avg_pool2d(x, 2, data_format=layout, out=pout) is pout
    with pytest.raises(ValueError, match=r"out has shape"):
        convpool.max_pool2d(x, 2, data_format=layout, out=np.zeros((1,) + pshape[1:], F32))


# One integer check (``_checks.check_int``) behind every integer argument: a
# bool or a non-integer is a TypeError quoting the value (and its type), in
# the same words everywhere.
INTEGER_ARGUMENTS = {
    "conv2d-groups": (lambda v: convpool.conv2d(X, K, groups=v), "groups", "an int"),
    "max_pool2d-pool_size": (lambda v: convpool.max_pool2d(X, v), "pool_size",
                             "an int or a pair of ints"),
    "Dense-units": (lambda v: convpool.Dense(v), "units", "an int"),
    "Conv2D-filters": (lambda v: convpool.Conv2D(v, 3), "filters", "an int"),
    "set_num_threads-n": (convpool.set_num_threads, "n", "a positive int or None"),
    "set_buffer_cache-max_bytes": (convpool.set_buffer_cache, "max_bytes", "an int"),
    "set_workspace_limit-max_bytes": (convpool.set_workspace_limit, "max_bytes", "an int"),
}


@pytest.mark.parametrize("value", [1.5, True, np.float64(2.0)], ids=["float", "bool", "np.float64"])
@pytest.mark.parametrize("case", sorted(INTEGER_ARGUMENTS))
def test_integer_arguments_share_one_check(case, value):
    call, name, kind = INTEGER_ARGUMENTS[case]
    got = ("the bool True" if value is True
           else f"{re.escape(repr(value))} of type {type(value).__name__}")
    cache, workspace = convpool.get_buffer_cache()["max_bytes"], convpool.get_workspace_limit()
    with pytest.raises(TypeError, match=rf"^{name} must be {kind}, got {got}$"):
        call(value)
    assert convpool.get_buffer_cache()["max_bytes"] == cache
    assert convpool.get_workspace_limit() == workspace


def test_checks_all_lists_every_name_imported_from_it():
    """``_checks.__all__`` names everything the package's modules import from it."""
    import ast
    import pathlib

    import convpool._checks

    imported = set()
    for path in pathlib.Path(convpool.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "_checks" and node.level == 1:
                imported |= {alias.name for alias in node.names}
    assert len(imported) > 10, "the scan found too few imports to be working"
    assert imported <= set(convpool._checks.__all__), sorted(imported - set(convpool._checks.__all__))
    assert all(hasattr(convpool._checks, name) for name in convpool._checks.__all__)
