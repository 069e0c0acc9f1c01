"""convpool.dense / dense_backward against convpool.reference.dense / dense_backward.

dense is the 1x1 convolution of the rows of x (every leading axis) on
convpool's GEMM kernels.  Tiers, as for conv2d (``tests/test_conv2d.py``):
  * random data on each ISA variant, compared with the float64 reference under
    the summation-error bounds derived in ``_helpers.conv_tolerance`` (the
    forward is that conv) and :func:`dense_backward_tolerances`;
  * small integers, where every sum is exact: equal to the reference bit for bit;
  * NaN and infinities where BLAS would skip a zero term;
  * empty sizes (no rows; no features: the bias alone), ``out=``, validation
    messages naming the argument, integer inputs, untouched inputs;
  * bitwise invariance under the thread count, strided views and batch splits.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import convpool
from convpool import reference
from _helpers import (
    assert_bitwise_equal,
    assert_conv_close,
    assert_guard_intact,
    case_id,
    conv_tolerance,
    gamma,
    guarded,
    guarded_out,
    small_ints,
    strided_copy,
)

DTYPES = (np.float32, np.float64)
THREAD_COUNTS = (1, 2, 3)

# Leading axes (the rows) by rank: one row; 29 rows (several 6-row micro-kernel
# tiles and a ragged one); 2 x 17 = 34 rows.
LEADS = {1: (), 2: (29,), 3: (2, 17)}
FEATURES = (1, 7, 1600)  # 1 (<= 4: the direct weight-gradient kernel), 7, a long reduction
UNITS = (1, 10, 33)  # a single lane; around the 8/16-lane panels; two panels and a ragged one
VARIANTS = {"nobias": (False, None), "bias": (True, None), "bias-relu": (True, "relu"),
            "nobias-relu": (False, "relu")}


def _cfg_id(cfg) -> str:
    lead = "x".join(str(s) for s in cfg["lead"]) or "none"
    return case_id(c=cfg["features"], oc=cfg["units"], bias=cfg["bias"], dtype=cfg["dtype"],
                   lead=lead, act=cfg["activation"] or "linear")


def _params(variants):
    out = []
    for rank, f, u, dtype, variant in itertools.product(LEADS, FEATURES, UNITS, DTYPES, variants):
        bias, act = VARIANTS[variant]
        cfg = dict(lead=LEADS[rank], features=f, units=u, dtype=np.dtype(dtype), bias=bias,
                   activation=act)
        out.append(pytest.param(cfg, id=_cfg_id(cfg)))
    return out


def _case(cfg, rng, fill=None):
    """x (lead + (features,)), kernel, bias or None, in cfg's dtype."""
    fill = fill or (lambda shape: rng.standard_normal(shape).astype(cfg["dtype"]))
    x = fill(cfg["lead"] + (cfg["features"],))
    kernel = fill((cfg["features"], cfg["units"]))
    # a bias smaller than the sums, so that a ReLU's mask cuts some of every column
    bias = (fill((cfg["units"],)) / 8).astype(cfg["dtype"]) if cfg["bias"] else None
    return x, kernel, bias


def _as_conv(x, kernel):
    """x and kernel as the 1x1 conv over the rows that dense is: (R, 1, 1, F), (1, 1, F, U)."""
    x = np.asarray(x)
    kernel = np.asarray(kernel)
    return x.reshape(-1, 1, 1, x.shape[-1]), kernel.reshape(1, 1, *kernel.shape)


def dense_tolerance(x, kernel, bias, dtype) -> np.ndarray:
    """Elementwise bound on ``|fast - ref|`` for dense, of the output's shape.

    ``y = b + sum_{f<F} x_f w_f`` is exactly the 1x1 conv of each row, so the
    bound is ``conv_tolerance``'s (``2 gamma_{F+1} (S + |b|)``, S the same sum
    of absolute values, plus a floor for underflow), computed on the conv
    view.  A ReLU is 1-Lipschitz (``|max(0, a) - max(0, b)| <= |a - b|``), so
    the same bound holds for the activated output.
    """
    xc, kc = _as_conv(x, kernel)
    tol = conv_tolerance(xc, kc, dtype, bias=bias)
    return tol.reshape(np.shape(x)[:-1] + (kc.shape[3],))


def dense_backward_tolerances(grad_out, x, kernel, dtype):
    """Elementwise bounds on ``|fast - ref|`` for ``(grad_x, grad_kernel, grad_bias)``.

    With R rows, F features and U units (``grad_out`` already through the
    ReLU mask, which is exact):

    * ``grad_x[r, f] = sum_u g[r, u] kernel[f, u]``: ``m = U`` products;
    * ``grad_kernel[f, u] = sum_r x[r, f] g[r, u]``: ``m = R`` products;
    * ``grad_bias[u] = sum_r g[r, u]``: R exact terms (``gamma_{R-1}``, bounded
      by ``gamma_R``).

    As in ``test_backward.conv_backward_tolerances``: a sum of m products in
    any order and grouping is within ``gamma_m S`` of the exact value (S the
    sum of |products|; Higham 3.1, 3.5); fast (compute dtype) and the float64
    reference (then rounded once to the compute dtype, within ``u S``) both
    obey it, so ``|fast - ref| <= 2 gamma_m S (1 + gamma^{f64}_m)`` plus a floor
    of ``4 * tiny``.  ``S`` is the float64 reference on absolute values.
    """
    g, x, k = (np.abs(np.asarray(a, np.float64)) for a in (grad_out, x, kernel))
    s_x, s_k, s_b = reference.dense_backward(g, x, k)
    rows = max(int(np.prod(np.shape(x)[:-1])), 1)
    units = max(np.shape(kernel)[1], 1)
    tiny = float(np.finfo(dtype).tiny)

    def bound(s, m):
        return 2 * gamma(m, dtype) * (s * (1 + gamma(m, np.float64))) + 4 * tiny

    return bound(s_x, units), bound(s_k, rows), bound(s_b, rows)


def _f64(*arrays):
    return [None if a is None else np.asarray(a, np.float64) for a in arrays]


_GRAD_NAMES = ("grad_x", "grad_kernel", "grad_bias")


# =========================================================== 1. against the reference
@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cfg", _params(("nobias", "bias", "bias-relu")))
def test_dense_matches_reference(cfg, rng):
    x, kernel, bias = _case(cfg, rng)
    got = convpool.dense(x, kernel, bias, activation=cfg["activation"])
    shape = cfg["lead"] + (cfg["units"],)
    assert got.shape == shape and got.dtype == cfg["dtype"] and got.flags.c_contiguous, cfg
    ref = reference.dense(*_f64(x, kernel, bias), activation=cfg["activation"])
    assert ref.dtype == np.float64
    assert_conv_close(got, ref, dense_tolerance(x, kernel, bias, cfg["dtype"]), _cfg_id(cfg))
    if cfg["activation"] == "relu":
        # the fused ReLU is the ReLU of the plain result, bit for bit
        plain = convpool.dense(x, kernel, bias)
        assert_bitwise_equal(got, np.where(plain < 0, 0, plain).astype(cfg["dtype"]), cfg,
                             what="fused ReLU vs ReLU of the output")
        assert (got >= 0).all() and (ref >= 0).all()


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cfg", _params(("bias", "bias-relu")))
def test_dense_backward_matches_reference(cfg, rng):
    x, kernel, bias = _case(cfg, rng)
    shape = cfg["lead"] + (cfg["units"],)
    g = rng.standard_normal(shape).astype(cfg["dtype"])
    kwargs = {}
    g_eff = g
    if cfg["activation"] == "relu":
        y = convpool.dense(x, kernel, bias, activation="relu")
        kwargs = dict(activation="relu", output=y)
        g_eff = np.where(y > 0, g, 0).astype(cfg["dtype"])
        if g.size >= 16:
            assert 0 < np.count_nonzero(g_eff) < g.size, "precondition: the mask drops some"
    got = convpool.dense_backward(g, x, kernel, **kwargs)
    ref = reference.dense_backward(*_f64(g, x, kernel), **_f64_kwargs(kwargs))
    tols = dense_backward_tolerances(g_eff, x, kernel, cfg["dtype"])
    shapes = (x.shape, kernel.shape, (cfg["units"],))
    for name, fast, r, tol, want in zip(_GRAD_NAMES, got, ref, tols, shapes):
        assert fast.dtype == cfg["dtype"], f"{name} dtype {fast.dtype}; {cfg}"
        assert fast.shape == want, f"{name} shape {fast.shape} != {want}; {cfg}"
        assert fast.flags.c_contiguous, f"{name} not C-contiguous; {cfg}"
        assert_conv_close(fast, r, tol, f"{name}: {_cfg_id(cfg)}")
    without = convpool.dense_backward(g, x, kernel, input_grad=False, **kwargs)
    assert without[0] is None
    assert_bitwise_equal(without[1], got[1], cfg, what="grad_kernel, input_grad=False")
    assert_bitwise_equal(without[2], got[2], cfg, what="grad_bias, input_grad=False")


def _f64_kwargs(kwargs):
    return {k: (np.asarray(v, np.float64) if k == "output" else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("lead, features, units", [((), 7, 10), ((13,), 1600, 33),
                                                   ((3, 11), 5, 17)],
                         ids=["1d-C7-O10", "13-C1600-O33", "3x11-C5-O17"])
def test_dense_exact_on_small_integers(lead, features, units, dtype, rng):
    """Integers in [-4, 4]: every partial sum is an integer below 2**24, so fast
    and reference agree bit for bit (forward, relu and all three gradients)."""
    x = small_ints(rng, lead + (features,), dtype, bound=4)
    kernel = small_ints(rng, (features, units), dtype, bound=4)
    bias = small_ints(rng, (units,), dtype, bound=4)
    g = small_ints(rng, lead + (units,), dtype, bound=4)
    for act in (None, "relu"):
        y = convpool.dense(x, kernel, bias, activation=act)
        want = reference.dense(x, kernel, bias, activation=act)
        assert want.dtype == dtype and np.count_nonzero(want) > want.size // 4
        assert np.array_equal(y, want), (act, lead)
        kwargs = dict(activation=act, output=y) if act else {}
        for name, a, b in zip(_GRAD_NAMES, convpool.dense_backward(g, x, kernel, **kwargs),
                              reference.dense_backward(g, x, kernel, **kwargs)):
            assert a.dtype == b.dtype == dtype, name
            assert np.array_equal(a, b), f"{name}, activation={act}, lead={lead}"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_dense_nan_and_inf_follow_ieee(dtype, rng):
    """A NaN or infinity in a row or column poisons exactly the outputs IEEE
    arithmetic says, including ``inf * 0`` (a zero term BLAS may skip)."""
    x = rng.standard_normal((9, 20)).astype(dtype)
    kernel = rng.standard_normal((20, 11)).astype(dtype)
    x[1, 3] = np.nan
    x[4, 5] = np.inf
    kernel[5, 2] = 0.0  # inf * 0 = NaN at y[4, 2]
    kernel[7, 6] = -np.inf
    x[6, 7] = 0.0  # 0 * -inf = NaN at y[6, 6]
    got = convpool.dense(x, kernel)
    with np.errstate(invalid="ignore"):  # BLAS's own view of the NaN in the product
        ref = reference.dense(*_f64(x, kernel))
        finite = np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(kernel, np.float64))
    assert np.isnan(ref[1]).all() and np.isnan(ref[4, 2]) and np.isnan(ref[6, 6])
    assert np.isinf(ref[0, 6]) and np.isfinite(ref[0, :6]).all()
    finite[~np.isfinite(finite)] = 0  # the bound is for the finite outputs
    tol = 2 * gamma(21, dtype) * finite * (1 + gamma(21, np.float64)) + 4 * np.finfo(dtype).tiny
    assert_conv_close(got, ref, tol, f"nonfinite dense {np.dtype(dtype)}")
    # backward: a NaN in grad_out reaches its row of grad_x and column of grad_kernel
    g = rng.standard_normal((9, 11)).astype(dtype)
    g[2, 4] = np.nan
    gx, gk, gb = convpool.dense_backward(g, np.where(np.isfinite(x), x, 1),
                                         np.where(np.isfinite(kernel), kernel, 1))
    assert np.isnan(gx[2]).all() and not np.isnan(np.delete(gx, 2, axis=0)).any()
    assert np.isnan(gk[:, 4]).all() and not np.isnan(np.delete(gk, 4, axis=1)).any()
    assert np.isnan(gb[4]) and not np.isnan(np.delete(gb, 4)).any()


# ========================================================================== 2. empties
@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("x_shape", [(0, 7), (2, 0, 7), (0,) * 2 + (7,)],
                         ids=["0x7", "2x0x7", "0x0x7"])
def test_dense_no_rows(x_shape, dtype, impl):
    x = np.ones(x_shape, dtype)
    kernel = np.ones((7, 5), dtype)
    bias = np.arange(5, dtype=dtype)
    y = impl.dense(x, kernel, bias, activation="relu")
    assert y.shape == x_shape[:-1] + (5,) and y.dtype == dtype
    g = np.ones(y.shape, dtype)
    gx, gk, gb = impl.dense_backward(g, x, kernel, activation="relu", output=y)
    assert gx.shape == x_shape and gx.dtype == dtype
    assert_bitwise_equal(gk, np.zeros((7, 5), dtype), impl.__name__, what="grad_kernel, no rows")
    assert_bitwise_equal(gb, np.zeros(5, dtype), impl.__name__, what="grad_bias, no rows")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("lead", [(), (6,), (2, 3)], ids=["1d", "6", "2x3"])
def test_dense_no_features_is_the_bias(lead, dtype, rng):
    """features == 0: the sum is empty, so y is the bias (0 without one), and
    grad_bias is still grad_out summed over the rows."""
    x = np.ones(lead + (0,), dtype)
    kernel = np.ones((0, 4), dtype)
    bias = np.array([-1.5, 0.0, 2.0, 3.25], dtype)
    want = np.broadcast_to(bias, lead + (4,))
    for impl in (convpool, reference):
        assert_bitwise_equal(impl.dense(x, kernel, bias), want, impl.__name__, what="y = bias")
        assert_bitwise_equal(impl.dense(x, kernel), np.zeros(lead + (4,), dtype), impl.__name__,
                             what="y = 0 without a bias")
        relu = impl.dense(x, kernel, bias, activation="relu")
        assert np.array_equal(relu, np.maximum(want, 0)), impl.__name__
        g = small_ints(rng, lead + (4,), dtype)
        gx, gk, gb = impl.dense_backward(g, x, kernel)
        assert gx.shape == x.shape and gk.shape == (0, 4)
        assert np.array_equal(gb, g.reshape(-1, 4).sum(axis=0)), impl.__name__
        assert gb.dtype == dtype


# ============================================================================== 3. out=
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("lead", [(), (29,), (2, 17)], ids=["1d", "29", "2x17"])
def test_dense_out_is_written_and_returned(lead, dtype, rng):
    x = rng.standard_normal(lead + (40,)).astype(dtype)
    kernel = rng.standard_normal((40, 19)).astype(dtype)
    bias = rng.standard_normal(19).astype(dtype)
    for act in (None, "relu"):
        plain = convpool.dense(x, kernel, bias, activation=act)
        gout = guarded_out(lead + (19,), dtype)
        got = convpool.dense(x, kernel, bias, out=gout.view, activation=act)
        assert got is gout.view
        assert_bitwise_equal(gout.view, plain, (lead, act), what="out= vs returned")
        assert_guard_intact(gout, "out=")


def _misaligned(a):
    """A writeable copy of ``a`` one byte off its item alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    view = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned
    return view


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_dense_misaligned_arrays(dtype, rng):
    """Misaligned x, kernel, grad_out and out= (np.frombuffer at an odd offset)
    give the aligned arrays' bits; out= is filled and returned."""
    x = rng.standard_normal((11, 9)).astype(dtype)
    kernel = rng.standard_normal((9, 6)).astype(dtype)
    g = rng.standard_normal((11, 6)).astype(dtype)
    plain = convpool.dense(x, kernel, activation="relu")
    out = _misaligned(np.full((11, 6), np.nan, dtype))
    got = convpool.dense(_misaligned(x), _misaligned(kernel), out=out, activation="relu")
    assert got is out
    assert_bitwise_equal(out, plain, dtype, what="misaligned vs aligned dense")
    grads = convpool.dense_backward(_misaligned(g), _misaligned(x), _misaligned(kernel),
                                    activation="relu", output=_misaligned(plain))
    for name, a, b in zip(_GRAD_NAMES, grads, convpool.dense_backward(
            g, x, kernel, activation="relu", output=plain)):
        assert_bitwise_equal(a, b, dtype, what=f"{name}: misaligned vs aligned")


@pytest.mark.parametrize("case, exc, pattern", [
    ("shape", ValueError, r"out has shape \(4, 2\) but the result has shape \(4, 3\)"),
    ("rank", ValueError, r"out has shape \(12,\) but the result has shape \(4, 3\)"),
    ("dtype", TypeError, r"out has dtype float64 but the result has dtype float32"),
    ("int_dtype", TypeError, r"out has dtype int32"),
    ("strided", ValueError, r"out must be C-contiguous"),
    ("fortran", ValueError, r"out must be C-contiguous"),
    ("read_only", ValueError, r"read-only"),
    ("list", TypeError, r"out must be a numpy.ndarray, got list"),
    ("overlaps_x", ValueError, r"shares memory with x"),
])
def test_dense_out_rejected(case, exc, pattern):
    x = np.ones((4, 5), np.float32)
    kernel = np.ones((5, 3), np.float32)
    if case == "overlaps_x":
        kernel = np.ones((5, 5), np.float32)
        out = x  # the result (4, 5) would be written over its own input
    else:
        out = {
            "shape": lambda: np.empty((4, 2), np.float32),
            "rank": lambda: np.empty(12, np.float32),
            "dtype": lambda: np.empty((4, 3), np.float64),
            "int_dtype": lambda: np.empty((4, 3), np.int32),
            "strided": lambda: np.empty((4, 6), np.float32)[:, ::2],
            "fortran": lambda: np.asfortranarray(np.empty((4, 3), np.float32)),
            "read_only": lambda: np.empty((4, 3), np.float32),
            "list": lambda: [[0.0] * 3] * 4,
        }[case]()
    if case == "read_only":
        out.setflags(write=False)
    keep = x.copy()
    with pytest.raises(exc, match=pattern):
        convpool.dense(x, kernel, out=out)
    assert_bitwise_equal(x, keep, case, what="x after a rejected call")


# ========================================================================= 4. validation
@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("case, exc, pattern", [
    ("kernel_1d", ValueError, r"kernel must be 2-D \(features, units\), got shape \(5,\)"),
    ("kernel_3d", ValueError, r"kernel must be 2-D \(features, units\), got shape \(1, 5, 3\)"),
    ("features", ValueError, r"kernel has 6 input features \(shape \(6, 3\)\) but x has 5 on "
                             r"its last axis \(shape \(4, 5\)\)"),
    ("x_0d", ValueError, r"x must have at least one axis \(\.\.\., features\), got shape \(\)"),
    ("bias_shape", ValueError, r"bias must have shape \(C_out,\) = \(3,\), got \(4,\)"),
    ("bias_2d", ValueError, r"bias must have shape .*, got \(1, 3\)"),
    ("kernel_f64", TypeError, r"kernel has dtype float64 but the input is computed in float32"),
    ("bias_f64", TypeError, r"bias has dtype float64"),
    ("x_complex", TypeError, r"x has dtype complex64"),
    ("x_none", TypeError, r"x must be an array, got None"),
    ("kernel_none", TypeError, r"kernel must be an array, got None"),
    ("activation", ValueError, r"activation must be None, 'linear' or 'relu', got 'tanh'"),
])
def test_dense_rejects(case, exc, pattern, impl):
    args = dict(x=np.ones((4, 5), np.float32), kernel=np.ones((5, 3), np.float32),
                bias=np.zeros(3, np.float32))
    kwargs = {}
    if case == "kernel_1d":
        args["kernel"] = np.ones(5, np.float32)
    elif case == "kernel_3d":
        args["kernel"] = np.ones((1, 5, 3), np.float32)
    elif case == "features":
        args["kernel"] = np.ones((6, 3), np.float32)
    elif case == "x_0d":
        args["x"] = np.float32(1.0)
    elif case == "bias_shape":
        args["bias"] = np.zeros(4, np.float32)
    elif case == "bias_2d":
        args["bias"] = np.zeros((1, 3), np.float32)
    elif case == "kernel_f64":
        args["kernel"] = np.ones((5, 3))
    elif case == "bias_f64":
        args["bias"] = np.zeros(3)
    elif case == "x_complex":
        args["x"] = np.ones((4, 5), np.complex64)
    elif case == "x_none":
        args["x"] = None
    elif case == "kernel_none":
        args["kernel"] = None
    elif case == "activation":
        kwargs["activation"] = "tanh"
    with pytest.raises(exc, match=pattern):
        impl.dense(args["x"], args["kernel"], args["bias"], **kwargs)


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("case, exc, pattern", [
    ("grad_out_shape", ValueError,
     r"grad_out must have the forward output's shape \(4, 3\), got \(4, 2\)"),
    ("grad_out_rank", ValueError,
     r"grad_out must have the forward output's shape \(4, 3\), got \(12,\)"),
    ("grad_out_f64", TypeError, r"grad_out has dtype float64"),
    ("grad_out_none", TypeError, r"grad_out must be an array, got None"),
    ("kernel_3d", ValueError, r"kernel must be 2-D \(features, units\), got shape \(1, 5, 3\)"),
    ("features", ValueError, r"kernel has 4 input features \(shape \(4, 3\)\) but x has 5"),
    ("output_shape", ValueError,
     r"output must have the forward output's shape \(4, 3\).*got \(3, 4\)"),
    ("output_without_activation", ValueError,
     r"output is used with activation='relu' only; got activation=None"),
    ("relu_without_output", ValueError, r"activation='relu' needs output="),
    ("output_f64", TypeError, r"output has dtype float64"),
    ("activation", ValueError, r"activation must be None, 'linear' or 'relu', got 'sigmoid'"),
])
def test_dense_backward_rejects(case, exc, pattern, impl):
    args = dict(grad_out=np.ones((4, 3), np.float32), x=np.ones((4, 5), np.float32),
                kernel=np.ones((5, 3), np.float32))
    kwargs = {}
    if case == "grad_out_shape":
        args["grad_out"] = np.ones((4, 2), np.float32)
    elif case == "grad_out_rank":
        args["grad_out"] = np.ones(12, np.float32)
    elif case == "grad_out_f64":
        args["grad_out"] = np.ones((4, 3))
    elif case == "grad_out_none":
        args["grad_out"] = None
    elif case == "kernel_3d":
        args["kernel"] = np.ones((1, 5, 3), np.float32)
    elif case == "features":
        args["kernel"] = np.ones((4, 3), np.float32)
    elif case == "output_shape":
        kwargs = dict(activation="relu", output=np.ones((3, 4), np.float32))
    elif case == "output_without_activation":
        kwargs = dict(output=np.ones((4, 3), np.float32))
    elif case == "relu_without_output":
        kwargs = dict(activation="relu")
    elif case == "output_f64":
        kwargs = dict(activation="relu", output=np.ones((4, 3)))
    elif case == "activation":
        kwargs = dict(activation="sigmoid", output=np.ones((4, 3), np.float32))
    with pytest.raises(exc, match=pattern):
        impl.dense_backward(args["grad_out"], args["x"], args["kernel"], **kwargs)


# ================================================================ 5. dtypes and inputs
@pytest.mark.parametrize("int_dtype", [np.int8, np.int16, np.int64, np.uint8, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_dense_integer_inputs_compute_in_float32(int_dtype, rng):
    x = rng.integers(0, 3, size=(6, 9)).astype(int_dtype)
    kernel = rng.integers(-3, 4, size=(9, 4)).astype(np.int32)
    bias = rng.integers(-3, 4, size=4)
    g = rng.integers(-3, 4, size=(6, 4)).astype(np.int16)
    y = convpool.dense(x, kernel, bias)
    assert y.dtype == np.float32
    xf, kf, bf, gf = (a.astype(np.float32) for a in (x, kernel, bias, g))
    assert_bitwise_equal(y, convpool.dense(xf, kf, bf), int_dtype, what="int dense vs cast")
    # small integers: exact, and equal to the reference (which casts the same way)
    assert_bitwise_equal(y, reference.dense(x, kernel, bias), int_dtype, what="vs reference")
    got = convpool.dense_backward(g, x, kernel)
    want = convpool.dense_backward(gf, xf, kf)
    for name, a, b in zip(_GRAD_NAMES, got, want):
        assert a.dtype == np.float32, name
        assert_bitwise_equal(a, b, int_dtype, what=f"{name}: int inputs vs cast")
    with pytest.raises(TypeError, match="kernel has dtype float64 but the input is computed in"):
        convpool.dense(x, kf.astype(np.float64))


def test_dense_large_integers_round_to_float32_first():
    """An int64 beyond 2**24 is read as float32 (rounded) before the product,
    by the fast function and the reference alike."""
    x = np.array([[2**24 + 1, 3]], np.int64)
    kernel = np.array([[1], [0]], np.int64)
    want = np.array([[np.float32(2**24 + 1)]], np.float32)  # rounds to 2**24
    assert want[0, 0] == 2**24
    assert_bitwise_equal(convpool.dense(x, kernel), want, "int64", what="fast")
    assert_bitwise_equal(reference.dense(x, kernel), want, "int64", what="reference")


def _read_only(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_dense_inputs_untouched_and_read_only_accepted(dtype, rng):
    x = rng.standard_normal((3, 10, 24)).astype(dtype)
    kernel = rng.standard_normal((24, 17)).astype(dtype)
    bias = rng.standard_normal(17).astype(dtype)
    g = rng.standard_normal((3, 10, 17)).astype(dtype)
    y = convpool.dense(x, kernel, bias, activation="relu")
    y[0, 0, :] = np.nan  # a NaN in output: its gradient is 0, and output is not rewritten
    arrays = dict(x=x, kernel=kernel, bias=bias, grad_out=g, output=y)
    kept = {k: v.copy() for k, v in arrays.items()}
    ro = {k: _read_only(v) for k, v in arrays.items()}
    fwd = convpool.dense(ro["x"], ro["kernel"], ro["bias"], activation="relu")
    assert_bitwise_equal(fwd, convpool.dense(x, kernel, bias, activation="relu"), dtype,
                         what="read-only vs writeable forward")
    got = convpool.dense_backward(ro["grad_out"], ro["x"], ro["kernel"], activation="relu",
                                  output=ro["output"])
    plain = convpool.dense_backward(g, x, kernel, activation="relu", output=y)
    for name, a, b in zip(_GRAD_NAMES, got, plain):
        assert_bitwise_equal(a, b, dtype, what=f"{name}: read-only vs writeable")
        assert a.flags.writeable
        for arr in (*arrays.values(), *ro.values()):
            assert not np.shares_memory(a, arr), f"{name} shares memory with an input"
    assert not got[0][0, 0].any(), "grad_x of a row whose outputs are all NaN must be 0"
    for name, arr in (*arrays.items(), *ro.items()):
        assert_bitwise_equal(arr, kept[name], dtype, what=f"{name} after the calls")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_dense_strided_views_equal_copies(dtype, rng):
    x = rng.standard_normal((2, 13, 30)).astype(dtype)
    kernel = rng.standard_normal((30, 21)).astype(dtype)
    bias = rng.standard_normal(21).astype(dtype)
    g = rng.standard_normal((2, 13, 21)).astype(dtype)
    plain = convpool.dense(x, kernel, bias)
    grads = convpool.dense_backward(g, x, kernel)
    for label, conv in (("strided", lambda a: strided_copy(a, 3)),
                        ("Fortran", np.asfortranarray),
                        ("guarded", lambda a: guarded(a).view)):
        views = [conv(a) for a in (x, kernel, bias, g)]
        assert_bitwise_equal(convpool.dense(*views[:3]), plain, label, what="dense")
        for name, a, b in zip(_GRAD_NAMES, convpool.dense_backward(views[3], *views[:2]), grads):
            assert_bitwise_equal(a, b, label, what=f"{name} of {label} views")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_dense_rows_and_grad_x_batch_invariance(dtype, rng, num_threads):
    """Each row's output (and grad_x) needs only its row: the same bits alone,
    in a batch split, or as a leading axis of another rank."""
    x = rng.standard_normal((37, 50)).astype(dtype)
    kernel = rng.standard_normal((50, 26)).astype(dtype)
    bias = rng.standard_normal(26).astype(dtype)
    g = rng.standard_normal((37, 26)).astype(dtype)
    num_threads(3)
    full = convpool.dense(x, kernel, bias)
    gx = convpool.dense_backward(g, x, kernel)[0]
    for i in (0, 5, 36):
        assert_bitwise_equal(convpool.dense(x[i], kernel, bias), full[i], i, what="row alone")
        one = convpool.dense_backward(g[i:i + 1], x[i:i + 1], kernel)[0]
        assert_bitwise_equal(one[0], gx[i], i, what="grad_x row alone")
    assert_bitwise_equal(convpool.dense(x[7:], kernel, bias), full[7:], dtype, what="split")
    assert_bitwise_equal(convpool.dense(x[:36].reshape(4, 9, 50), kernel, bias),
                         full[:36].reshape(4, 9, 26), dtype, what="rank 3 vs rank 2")


# ================================================================ 6. thread counts
THREAD_CASES = [
    dict(lead=(4500,), features=40, units=33, dtype=np.dtype(np.float32), bias=True,
         activation="relu"),
    dict(lead=(3, 1500), features=3, units=17, dtype=np.dtype(np.float64), bias=True,
         activation=None),  # 3 features: the direct weight-gradient kernel
    dict(lead=(256,), features=1600, units=10, dtype=np.dtype(np.float32), bias=False,
         activation=None),
    dict(lead=(2, 70, 30), features=64, units=128, dtype=np.dtype(np.float64), bias=True,
         activation="relu"),
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_cfg_id(c)) for c in THREAD_CASES])
def test_dense_bitwise_across_thread_counts(cfg, rng, num_threads):
    x, kernel, bias = _case(cfg, rng)
    xc, kc = _as_conv(x, kernel)
    assert convpool.conv2d_plan(xc, kc)["units"] >= max(THREAD_COUNTS), \
        "precondition: a work unit for every thread"
    g = rng.standard_normal(cfg["lead"] + (cfg["units"],)).astype(cfg["dtype"])
    results = {}
    for t in THREAD_COUNTS:
        num_threads(t)
        y = convpool.dense(x, kernel, bias, activation=cfg["activation"])
        kwargs = dict(activation="relu", output=y) if cfg["activation"] else {}
        results[t] = (y, *convpool.dense_backward(g, x, kernel, **kwargs))
    for t in THREAD_COUNTS[1:]:
        for name, a, b in zip(("y",) + _GRAD_NAMES, results[t], results[1]):
            assert_bitwise_equal(a, b, _cfg_id(cfg), what=f"{name}: {t} threads vs 1")
    # and the one-thread results are right (a wrong but deterministic one passes above)
    y = results[1][0]
    ref = reference.dense(*_f64(x, kernel, bias), activation=cfg["activation"])
    assert_conv_close(y, ref, dense_tolerance(x, kernel, bias, cfg["dtype"]), _cfg_id(cfg))
    g_eff = np.where(y > 0, g, 0).astype(cfg["dtype"]) if cfg["activation"] else g
    kwargs = dict(activation="relu", output=y.astype(np.float64)) if cfg["activation"] else {}
    refs = reference.dense_backward(*_f64(g, x, kernel), **kwargs)
    tols = dense_backward_tolerances(g_eff, x, kernel, cfg["dtype"])
    for name, fast, r, tol in zip(_GRAD_NAMES, results[1][1:], refs, tols):
        assert_conv_close(fast, r, tol, f"{name}: {_cfg_id(cfg)}")
