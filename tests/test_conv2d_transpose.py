"""convpool.conv2d_transpose and conv2d_transpose_backward.

Tiers, as for conv2d (``tests/test_conv2d.py``, ``tests/test_backward.py``):
  * random data against ``convpool.reference`` in float64, under bounds derived
    from the summation error (:func:`transpose_tolerance`,
    :func:`transpose_backward_tolerances`), over a sweep of edge geometries;
  * integer data in [-8, 8]: every partial sum is an exact integer, so the fast
    results must equal the float64 reference bit for bit, in both dtypes;
  * the two fast paths, each asserted to run (stride 1 through the forward
    conv of the flipped kernel; everything else, and any kernel holding inf
    or NaN, through the data-gradient kernel), NaN and infinities included;
  * checks of the reference that do not trust it: a literal loop over every
    term, the adjoint identity with ``reference.conv2d`` (the transposed conv
    is the adjoint of the conv with the same kernel), finite differences;
  * the output-shape formulas of PyTorch (numbers) and Keras 3 (strings);
  * bitwise invariance under the thread count; ``out=``, guard regions,
    untouched and read-only inputs, views, empty sizes, integer inputs;
  * every bad argument raises before any kernel runs, naming the argument;
  * optional cross-checks against PyTorch and Keras (skipped without them).
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import convpool
from convpool import functional, reference
from convpool._shapes import effective_size, transpose_window_2d
from _helpers import (
    assert_bitwise_equal,
    assert_conv_close,
    assert_guard_intact,
    case_id,
    gamma,
    guarded,
    guarded_out,
    small_ints,
    strided_copy,
    to_layout,
    transpose_tolerance,
)

DTYPES = (np.float32, np.float64)
LAYOUTS = ("channels_last", "channels_first")
F32 = np.float32
OPENMP = convpool._config.config()["openmp"]


# ============================================================================ helpers
def _pair(value):
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def _abs64(a):
    return None if a is None else np.abs(np.asarray(a, dtype=np.float64))


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _crops(padding):
    """(top, bottom, left, right) of a numeric padding (PyTorch: rows cropped)."""
    if np.ndim(padding) == 0:
        return (int(padding),) * 4
    if all(np.ndim(p) == 1 for p in padding):
        (t, b), (l, r) = padding
        return (t, b, l, r)
    ph, pw = padding
    return (ph, ph, pw, pw)


def transpose_backward_tolerances(grad_out, x, kernel, dtype, **kwargs):
    """Elementwise bounds on ``|fast - ref|`` for ``(grad_x, grad_kernel, grad_bias)``.

    Derivation (as ``tests/test_backward.py``'s ``conv_backward_tolerances``):

    * ``grad_x[n, i, j, c] = sum g[n, i*sh + a*dh - pt, j*sw + b*dw - pl, o] *
      kernel[a, b, o, c]`` over the taps and the ``o`` of c's group: at most
      ``n_x = KH * KW * C_out / groups`` products (a conv2d of grad_out);
    * ``grad_kernel[a, b, o, c] = sum x[n, i, j, c] * g[...]`` over the
      ``n_k = N * H * W`` input pixels;
    * ``grad_bias[o] = sum g``: ``N * OH * OW`` terms.

    A sum of m products in any order and grouping is within ``gamma_m S`` of
    the exact value (S the sum of |products|), the float64 reference too, so
    ``|fast - ref| <= 2 gamma_m S``.  S is the same gradient of absolute values
    (float64 reference), its own error absorbed by ``1 + gamma^{f64}_m``;
    ``4 * tiny`` covers underflow.

    Returns
    -------
    (tol_x, tol_kernel, tol_bias) : ndarrays of float64, shaped like the gradients
    """
    kh, kw, ocg, _ = np.shape(kernel)
    layout = kwargs.get("data_format", "channels_last")
    xs = np.shape(x)
    n, h, w = (xs[0], xs[1], xs[2]) if layout == "channels_last" else (xs[0], xs[2], xs[3])
    oc = ocg * kwargs.get("groups", 1)
    n_x = max(kh * kw * ocg, 1)
    n_k = max(n * h * w, 1)
    n_b = max(int(np.size(grad_out)) // max(oc, 1), 1)
    g_abs = _abs64(grad_out)
    s_x = reference.conv2d_transpose_backward(g_abs, _abs64(x), _abs64(kernel), **kwargs)[0]
    _, s_k, s_b = reference.conv2d_transpose_backward(
        g_abs, _abs64(x), _f64(kernel), input_grad=False, **kwargs)
    tiny = 4 * float(np.finfo(dtype).tiny)

    def bound(s, m):
        return 2 * gamma(m, dtype) * (s * (1 + gamma(m, np.float64))) + tiny

    return bound(s_x, n_x), bound(s_k, n_k), bound(s_b, n_b)


class KernelSpy:
    """Stands in for ``convpool.functional._core``: records which compute
    kernel each call runs (and the ``op`` it names), then runs it."""

    KERNELS = ("conv2d_nhwc", "conv2d_backward_nhwc", "relu_grad", "pool2d_nhwc",
               "pool2d_backward_nhwc")

    def __init__(self, core):
        self._core = core
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._core, name)
        if name not in self.KERNELS:
            return attr

        def run(*args, **kwargs):
            self.calls.append((name, kwargs.get("op")))
            return attr(*args, **kwargs)

        return run


@pytest.fixture
def spy(monkeypatch):
    s = KernelSpy(functional._core)
    monkeypatch.setattr(functional, "_core", s)
    return s


# Which kernel each path runs (src/convpool/functional.py: conv2d_transpose).
CONV_PATH = [("conv2d_nhwc", "conv2d_transpose")]
COL2IM_PATH = [("conv2d_backward_nhwc", "conv2d_transpose")]


# ======================================================================== the sweep
_DEFAULTS = dict(n=1, strides=1, padding="valid", op=None, dilation=1, groups=1)


def _geom(**kw):
    cfg = dict(_DEFAULTS)
    cfg.update(kw)
    return cfg


# c is C_in, oc is C_out; the kernel is (KH, KW, oc // groups, c).
GEOMETRIES = [
    _geom(h=1, w=1, c=1, oc=1, kernel=1),
    _geom(h=1, w=1, c=3, oc=7, kernel=3, strides=2, padding="same"),
    _geom(n=2, h=7, w=5, c=3, oc=4, kernel=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1)),
          dilation=(1, 2)),
    # stride 1: the forward conv of the flipped kernel
    _geom(n=2, h=5, w=7, c=2, oc=5, kernel=4),
    _geom(h=5, w=7, c=3, oc=4, kernel=(3, 2)),
    _geom(h=5, w=6, c=3, oc=2, kernel=4, padding="same"),  # even kernel: crop (1, 2)
    _geom(h=5, w=7, c=2, oc=3, kernel=3, padding=2),  # crop == dilation * (k - 1)
    _geom(h=6, w=7, c=3, oc=4, kernel=3, padding=((0, 3), (1, 0))),  # big bottom crop
    _geom(h=5, w=6, c=2, oc=3, kernel=3, dilation=2, op=1),  # op < dilation at stride 1
    _geom(n=2, h=5, w=7, c=5, oc=7, kernel=1),  # pointwise
    # stride 1 with a crop past the kernel's span: the data-gradient kernel
    _geom(h=6, w=7, c=2, oc=3, kernel=2, padding=((3, 0), (0, 2))),
    _geom(h=5, w=7, c=3, oc=2, kernel=(3, 2), padding=((0, 1), (2, 0))),
    # strides, non-square strides and kernels, stride larger than the kernel
    _geom(h=7, w=5, c=3, oc=2, kernel=(2, 3), strides=3),
    _geom(h=5, w=7, c=2, oc=3, kernel=(1, 4), strides=(1, 3), padding="same"),
    _geom(h=6, w=5, c=4, oc=6, kernel=(4, 1), strides=(3, 1), padding=2),
    _geom(h=3, w=5, c=3, oc=4, kernel=2, strides=2),
    _geom(n=2, h=3, w=4, c=2, oc=3, kernel=1, strides=2),  # unreached rows: bias only
    _geom(h=3, w=5, c=2, oc=5, kernel=1, strides=(2, 3), padding="same"),
    _geom(h=4, w=5, c=3, oc=2, kernel=4, strides=2, padding=1),  # DCGAN's upsampling
    _geom(h=5, w=7, c=4, oc=8, kernel=3, strides=2, padding=1, op=1),  # PyTorch's x2
    _geom(h=5, w=7, c=4, oc=3, kernel=3, strides=2, padding="same"),
    _geom(h=5, w=7, c=3, oc=2, kernel=(3, 2), strides=2, padding=(1, 2)),
    # output_padding forms with each padding form
    _geom(h=5, w=7, c=2, oc=3, kernel=3, strides=2, padding="same", op=0),
    _geom(h=4, w=5, c=2, oc=3, kernel=4, strides=2, padding="same", op=1),
    _geom(h=5, w=4, c=3, oc=2, kernel=3, strides=2, padding="valid", op=1),
    _geom(h=5, w=7, c=2, oc=2, kernel=(2, 3), strides=(3, 2), padding="valid", op=(2, 0)),
    _geom(h=4, w=6, c=2, oc=3, kernel=3, strides=2, padding=1, op=0),
    # dilation with stride
    _geom(h=5, w=7, c=2, oc=3, kernel=3, strides=2, padding="same", dilation=2),
    _geom(h=5, w=6, c=3, oc=2, kernel=(2, 3), strides=(1, 2), dilation=(2, 1), op=(1, 1)),
    _geom(h=5, w=7, c=2, oc=3, kernel=(2, 3), strides=(3, 2), padding=((2, 1), (0, 3)),
          dilation=(1, 2), op=(2, 1)),
    _geom(h=5, w=7, c=3, oc=2, kernel=3, strides=3, dilation=2, op=(2, 1)),
    # groups
    _geom(n=2, h=5, w=7, c=4, oc=6, kernel=3, strides=2, padding="same", groups=2),
    _geom(h=6, w=5, c=6, oc=9, kernel=(2, 3), strides=(1, 2), padding=1, groups=3),
    _geom(h=5, w=7, c=3, oc=3, kernel=3, padding="same", groups=3),  # depthwise, stride 1
    _geom(h=5, w=6, c=2, oc=4, kernel=3, strides=2, padding=1, op=1, groups=2),
    _geom(n=2, h=5, w=7, c=3, oc=6, kernel=(3, 2), strides=2, padding=((1, 0), (0, 1)),
          op=(1, 0), dilation=(1, 2), groups=3),
    _geom(h=5, w=7, c=6, oc=4, kernel=2, groups=2),  # stride 1, grouped
    # asymmetric crops as large as the output allows
    _geom(h=3, w=4, c=2, oc=3, kernel=(4, 3), strides=(2, 3), padding=((3, 2), (1, 4))),
    # channel counts around the SIMD widths (f32 panel 16, f64 panel 8)
    _geom(h=5, w=7, c=17, oc=9, kernel=3, strides=2, padding="same"),
    _geom(h=4, w=6, c=8, oc=17, kernel=2),
    _geom(n=2, h=4, w=9, c=33, oc=16, kernel=(3, 1), strides=(2, 1), padding=((1, 1), (0, 0))),
]


def _op_text(op):
    if op is None:
        return "def"
    return str(int(op)) if np.ndim(op) == 0 else "x".join(str(v) for v in op)


def _tid(cfg) -> str:
    """``case_id`` plus the output padding and the activation."""
    base = {k: v for k, v in cfg.items() if k not in ("op", "act", "seed")}
    return case_id(**base) + f"-op{_op_text(cfg['op'])}" + ("-relu" if cfg.get("act") else "")


def _sweep(geometries):
    """Each geometry in both dtypes and layouts; the four get bias and ReLU on and off."""
    out = []
    for gi, geo in enumerate(geometries):
        for j, (dtype, layout) in enumerate(itertools.product(DTYPES, LAYOUTS)):
            cfg = dict(geo, dtype=np.dtype(dtype), data_format=layout,
                       bias=(j + gi) % 2 == 0, act="relu" if (j // 2 + gi) % 2 else None)
            out.append(pytest.param(cfg, id=_tid(cfg)))
    return out


SWEEP = _sweep(GEOMETRIES)


def _kernel_shape(cfg):
    kh, kw = _pair(cfg["kernel"])
    return (kh, kw, cfg["oc"] // cfg["groups"], cfg["c"])


def _kwargs(cfg):
    return dict(strides=cfg["strides"], padding=cfg["padding"], output_padding=cfg["op"],
                dilation_rate=cfg["dilation"], groups=cfg["groups"],
                data_format=cfg.get("data_format", "channels_last"))


def _make_case(cfg, rng, fill):
    """x (in cfg's layout), kernel, bias, and the conv2d_transpose keyword arguments."""
    dtype = cfg["dtype"]
    layout = cfg.get("data_format", "channels_last")
    x = to_layout(fill(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]), dtype), layout)
    kernel = fill(rng, _kernel_shape(cfg), dtype)
    bias = fill(rng, (cfg["oc"],), dtype) if cfg.get("bias") else None
    return x, kernel, bias, _kwargs(cfg)


def _out_length(n, k, s, d, padding_mode, crop0, crop1, op):
    """The documented output length of one axis (PyTorch's formula for numbers,
    Keras 3's ``deconv_output_length`` for "valid" / "same")."""
    eff = d * (k - 1) + 1
    if padding_mode == "valid":
        return (n - 1) * s + max(eff, s) if op is None else (n - 1) * s + eff + op
    if padding_mode == "same":
        return n * s if op is None else (n - 1) * s + eff - 2 * (eff // 2) + op
    return (n - 1) * s - (crop0 + crop1) + d * (k - 1) + (op or 0) + 1


def _expected_nhwc(cfg):
    kh, kw = _pair(cfg["kernel"])
    sh, sw = _pair(cfg["strides"])
    dh, dw = _pair(cfg["dilation"])
    oph, opw = (None, None) if cfg["op"] is None else _pair(cfg["op"])
    mode = cfg["padding"].lower() if isinstance(cfg["padding"], str) else None
    t, b, l, r = (0, 0, 0, 0) if mode else _crops(cfg["padding"])
    oh = _out_length(cfg["h"], kh, sh, dh, mode, t, b, oph)
    ow = _out_length(cfg["w"], kw, sw, dw, mode, l, r, opw)
    return (cfg["n"], oh, ow, cfg["oc"])


def _expected_shape(cfg):
    n, oh, ow, oc = _expected_nhwc(cfg)
    return (n, oc, oh, ow) if cfg.get("data_format") == "channels_first" else (n, oh, ow, oc)


def _window(cfg):
    return transpose_window_2d((cfg["h"], cfg["w"]), _pair(cfg["kernel"]), cfg["strides"],
                               cfg["padding"], cfg["op"], cfg["dilation"])


def _takes_conv_path(cfg):
    """functional.conv2d_transpose's test for the stride-1 path (finite kernel)."""
    w = _window(cfg)
    return (w.sh, w.sw) == (1, 1) and w.pt <= w.dh * (w.kh - 1) and w.pl <= w.dw * (w.kw - 1)


def _ref64(x, kernel, bias, activation=None, **kwargs):
    return reference.conv2d_transpose(_f64(x), _f64(kernel), _f64(bias), activation=activation,
                                      **kwargs)


def _support(x, kernel, **kwargs):
    """True on the outputs some input pixel reaches (the others hold the bias only)."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("out", "activation")}
    return reference.conv2d_transpose(np.ones(np.shape(x)), np.ones(np.shape(kernel)),
                                      **kwargs) > 0


def _assert_exact(got, ref, cfg, what="fast vs exact reference", support=None):
    """Bitwise equality with a float64 reference whose values are all exact integers.

    benchdnn's rule: a mostly-zero result proves little, so at least 30% of
    the values (of those in ``support``, when given: stride > kernel and output
    padding leave zeros by construction) must be nonzero; 15% after a ReLU.
    """
    ref = np.asarray(ref)
    assert np.all(np.abs(ref) < 2**24) and np.array_equal(ref, np.round(ref)), (
        f"precondition: the reference must be small integers; {cfg}")
    judged = ref if support is None else ref[support]
    if judged.size >= 16:
        nonzero = np.count_nonzero(judged) / judged.size
        floor = 0.15 if "relu" in str(cfg) else 0.3
        assert nonzero >= floor, f"mistrusted case: only {nonzero:.0%} of values non-zero; {cfg}"
    assert_bitwise_equal(got, ref.astype(got.dtype), cfg, what=what)


def test_sweep_covers_every_requested_value():
    """The sweep holds each kernel size, stride, dilation, padding form,
    output-padding form, group count, activation, bias, batch size and both
    fast paths at least once."""
    cfgs = [p.values[0] for p in SWEEP]
    assert len(cfgs) == 4 * len(GEOMETRIES) > 100

    def seen(fn):
        return {v for c in cfgs for v in fn(c)}

    assert {1, 2, 3, 4} <= seen(lambda c: _pair(c["kernel"]))
    assert any(_pair(c["kernel"])[0] != _pair(c["kernel"])[1] for c in cfgs)
    assert {1, 2, 3} <= seen(lambda c: _pair(c["strides"]))
    assert any(_pair(c["strides"])[0] != _pair(c["strides"])[1] for c in cfgs)
    assert {1, 2} <= seen(lambda c: _pair(c["dilation"]))
    assert any(max(_pair(c["dilation"])) > 1 and max(_pair(c["strides"])) > 1 for c in cfgs)

    def padding_form(c):
        p = c["padding"]
        if isinstance(p, str):
            return [p]
        if np.ndim(p) == 0:
            return ["int"]
        if all(np.ndim(q) == 1 for q in p):
            (t, b), (l, r) = p
            return ["explicit-asymmetric"] if (t != b or l != r) else ["explicit"]
        return ["pair"]

    assert {"valid", "same", "int", "pair", "explicit-asymmetric"} <= seen(padding_form)
    assert {"def", "0", "1", "pair"} <= seen(
        lambda c: ["pair" if np.ndim(c["op"]) == 1 else _op_text(c["op"])])
    assert {1, 2, 3} <= seen(lambda c: [c["groups"]])
    assert {None, "relu"} <= seen(lambda c: [c["act"]])
    assert {True, False} <= seen(lambda c: [c["bias"]])
    assert {1, 2} <= seen(lambda c: [c["n"]])
    assert (5, 7) in seen(lambda c: [(c["h"], c["w"])])
    assert {True, False} <= seen(lambda c: [_takes_conv_path(c)])


# ------------------------------------------------------------ forward: random data
@pytest.mark.parametrize("cfg", SWEEP)
def test_forward_matches_reference(cfg, rng):
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    got = convpool.conv2d_transpose(x, kernel, bias, activation=cfg["act"], **kwargs)
    assert got.dtype == cfg["dtype"]
    assert got.shape == _expected_shape(cfg), _tid(cfg)
    assert got.flags.c_contiguous
    ref = _ref64(x, kernel, bias, cfg["act"], **kwargs)
    tol = transpose_tolerance(x, kernel, cfg["dtype"], bias=bias, **kwargs)
    assert_conv_close(got, ref, tol, _tid(cfg))
    if cfg["act"]:
        assert (got >= 0).all(), _tid(cfg)


# ------------------------------------------------------- forward: exact integer data
@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cfg", SWEEP)
def test_forward_exact_on_small_integers(cfg, rng):
    x, kernel, bias, kwargs = _make_case(cfg, rng, small_ints)
    got = convpool.conv2d_transpose(x, kernel, bias, activation=cfg["act"], **kwargs)
    assert got.dtype == cfg["dtype"] and got.shape == _expected_shape(cfg)
    _assert_exact(got, _ref64(x, kernel, bias, cfg["act"], **kwargs), _tid(cfg),
                  support=_support(x, kernel, **kwargs))


# ---------------------------------------------------------- backward: random data
def _grad_out(cfg, rng, fill):
    return to_layout(fill(rng, _expected_nhwc(cfg), cfg["dtype"]), cfg["data_format"])


@pytest.mark.parametrize("cfg", SWEEP)
def test_backward_matches_reference(cfg, rng):
    x, kernel, _, kwargs = _make_case(cfg, rng, _normal)
    g = _grad_out(cfg, rng, _normal)
    got = convpool.conv2d_transpose_backward(g, x, kernel, **kwargs)
    ref = reference.conv2d_transpose_backward(_f64(g), _f64(x), _f64(kernel), **kwargs)
    tols = transpose_backward_tolerances(g, x, kernel, cfg["dtype"], **kwargs)
    shapes = (x.shape, kernel.shape, (cfg["oc"],))
    for name, a, r, tol, shape in zip(("grad_x", "grad_kernel", "grad_bias"), got, ref, tols,
                                      shapes):
        assert a.dtype == cfg["dtype"] and a.shape == shape, f"{name}: {_tid(cfg)}"
        assert_conv_close(a, r, tol, f"{name}: {_tid(cfg)}")
    # input_grad=False: no grad_x, the other two bit for bit the same
    skip = convpool.conv2d_transpose_backward(g, x, kernel, input_grad=False, **kwargs)
    assert skip[0] is None
    assert_bitwise_equal(skip[1], got[1], _tid(cfg), what="grad_kernel, input_grad=False")
    assert_bitwise_equal(skip[2], got[2], _tid(cfg), what="grad_bias, input_grad=False")


# ------------------------------------------------------ backward: exact integer data
@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cfg", SWEEP)
def test_backward_exact_on_small_integers(cfg, rng):
    x, kernel, _, kwargs = _make_case(cfg, rng, small_ints)
    g = _grad_out(cfg, rng, small_ints)
    got = convpool.conv2d_transpose_backward(g, x, kernel, **kwargs)
    ref = reference.conv2d_transpose_backward(_f64(g), _f64(x), _f64(kernel), **kwargs)
    supports = [s > 0 for s in reference.conv2d_transpose_backward(
        np.ones(g.shape), np.ones(x.shape), np.ones(kernel.shape), **kwargs)]
    for name, a, r, support in zip(("grad_x", "grad_kernel", "grad_bias"), got, ref, supports):
        assert a.dtype == cfg["dtype"], name
        _assert_exact(a, r, _tid(cfg), what=f"{name}: fast vs exact reference", support=support)
    skip = convpool.conv2d_transpose_backward(g, x, kernel, input_grad=False, **kwargs)
    ref_skip = reference.conv2d_transpose_backward(g, x, kernel, input_grad=False, **kwargs)
    assert skip[0] is None and ref_skip[0] is None
    for name, a, r in zip(("grad_kernel", "grad_bias"), skip[1:], ref_skip[1:]):
        assert_bitwise_equal(a, r, _tid(cfg), what=f"{name}, input_grad=False, vs reference")


# ====================================================================== fast paths
# (name, geometry, the path it must take, where NaN/inf are planted)
PATH_CASES = [
    ("stride1", _geom(n=2, h=5, w=7, c=3, oc=4, kernel=(3, 2)), CONV_PATH, None),
    ("stride1-same", _geom(h=6, w=5, c=2, oc=3, kernel=(4, 3), padding="same"), CONV_PATH, None),
    ("stride1-crop-at-span", _geom(h=5, w=7, c=2, oc=3, kernel=3, padding=(2, 2),
                                   dilation=(1, 1)), CONV_PATH, None),
    ("stride1-dilated-op", _geom(h=5, w=6, c=3, oc=2, kernel=(3, 2), dilation=2, op=(1, 1),
                                 padding=((1, 0), (2, 1))), CONV_PATH, None),
    ("stride1-depthwise", _geom(h=6, w=7, c=4, oc=4, kernel=3, padding=1, groups=4),
     CONV_PATH, None),
    ("stride1-crop-past-span-top", _geom(h=6, w=7, c=2, oc=3, kernel=2,
                                         padding=((2, 0), (0, 0))), COL2IM_PATH, None),
    ("stride1-crop-past-span-left", _geom(h=5, w=7, c=3, oc=2, kernel=(3, 2), dilation=(1, 2),
                                          padding=((0, 0), (3, 1))), COL2IM_PATH, None),
    ("stride2", _geom(n=2, h=5, w=7, c=3, oc=4, kernel=3, strides=2, padding=1, op=1),
     COL2IM_PATH, None),
    ("stride1x2", _geom(h=5, w=4, c=2, oc=5, kernel=(2, 3), strides=(1, 2)), COL2IM_PATH, None),
    ("stride2x1-grouped", _geom(h=4, w=6, c=4, oc=6, kernel=2, strides=(2, 1), groups=2),
     COL2IM_PATH, None),
    # a kernel holding inf or NaN: the stride-1 conv would multiply its padding
    # zeros by it, so the data-gradient kernel runs instead
    ("stride1-inf-kernel", _geom(n=2, h=5, w=7, c=3, oc=4, kernel=3), COL2IM_PATH, "kernel-inf"),
    ("stride1-nan-kernel", _geom(h=5, w=6, c=2, oc=3, kernel=(2, 3), padding="same", groups=1),
     COL2IM_PATH, "kernel-nan"),
    ("stride1-inf-kernel-grouped", _geom(h=4, w=5, c=4, oc=6, kernel=3, padding=1, groups=2),
     COL2IM_PATH, "kernel-both"),
    ("stride2-inf-kernel", _geom(h=4, w=5, c=2, oc=3, kernel=3, strides=2, padding="same"),
     COL2IM_PATH, "kernel-both"),
    # NaN and infinities in x only: each path keeps its kernel
    ("stride1-nonfinite-x", _geom(n=2, h=5, w=7, c=3, oc=4, kernel=(3, 2), padding=1),
     CONV_PATH, "x"),
    ("stride2-nonfinite-x", _geom(n=2, h=5, w=7, c=3, oc=4, kernel=3, strides=2, op=1),
     COL2IM_PATH, "x"),
]


def _plant(x_nhwc, kernel, where):
    """NaN and +-inf (in place) over integer data: in x, or in the kernel."""
    if where == "x":
        n, h, w, c = x_nhwc.shape
        x_nhwc[0, 1, 2, c - 1] = np.nan
        x_nhwc[-1, h - 1, w - 1, 0] = np.inf
        x_nhwc[0, 0, w - 1, 0] = -np.inf
    elif where is not None:
        kh, kw, ocg, cin = kernel.shape
        if where in ("kernel-inf", "kernel-both"):
            kernel[0, 0, 0, 0] = np.inf
            kernel[kh - 1, kw - 1, ocg - 1, cin - 1] = -np.inf
        if where in ("kernel-nan", "kernel-both"):
            kernel[kh // 2, kw - 1, 0, cin - 1] = np.nan
    return x_nhwc, kernel


def _path_params():
    out = []
    for name, geo, path, where in PATH_CASES:
        for dtype in DTYPES:
            cfg = dict(geo, dtype=np.dtype(dtype), data_format="channels_last", bias=True,
                       act="relu" if dtype == np.float32 else None)
            out.append(pytest.param(name, cfg, path, where, id=f"{name}-{_tid(cfg)}"))
    return out


def test_path_cases_cover_both_paths():
    paths = {tuple(p) for _, _, p, _ in PATH_CASES}
    assert paths == {tuple(CONV_PATH), tuple(COL2IM_PATH)}
    for name, geo, path, where in PATH_CASES:
        finite_kernel = where in (None, "x")
        cfg = dict(geo)
        assert (path == CONV_PATH) == (finite_kernel and _takes_conv_path(cfg)), name


@pytest.mark.parametrize("name, cfg, path, where", _path_params())
def test_each_path_runs_and_matches_reference(name, cfg, path, where, spy, rng):
    x, kernel, bias, kwargs = _make_case(cfg, rng, small_ints)
    x, kernel = _plant(x, kernel, where)
    got = convpool.conv2d_transpose(x, kernel, bias, activation=cfg["act"], **kwargs)
    assert spy.calls == path, f"{name} ran {spy.calls}, expected {path}"
    with np.errstate(invalid="ignore"):
        ref = _ref64(x, kernel, bias, cfg["act"], **kwargs)
    if where is None:
        _assert_exact(got, ref, _tid(cfg), support=_support(x, kernel, **kwargs))
        return
    assert np.isnan(ref).any() or np.isinf(ref).any(), f"a vacuous case: all finite; {name}"
    assert np.isfinite(ref).any(), f"a vacuous case: nothing finite; {name}"
    # integer data: finite values exact; NaN, +inf, -inf in the same places
    np.testing.assert_array_equal(got, ref.astype(cfg["dtype"]), err_msg=_tid(cfg))
    # the backward pass too (it names its conv's padding zeros terms, as the reference)
    g = small_ints(rng, got.shape, cfg["dtype"])
    fast_b = convpool.conv2d_transpose_backward(g, x, kernel, **kwargs)
    with np.errstate(invalid="ignore"):
        ref_b = reference.conv2d_transpose_backward(_f64(g), _f64(x), _f64(kernel), **kwargs)
    for what, a, r in zip(("grad_x", "grad_kernel", "grad_bias"), fast_b, ref_b):
        np.testing.assert_array_equal(a, r.astype(cfg["dtype"]), err_msg=f"{what}: {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_infinite_tap_reaches_only_its_outputs(dtype, spy):
    """x of ones (1, 3, 3, 1), a 3x3 kernel of ones but for +inf at tap (0, 0),
    stride 1, no crop: the output is 5x5, ``y[r, s] = sum of x[i, j] k[r-i, s-j]``.
    Tap (0, 0) reaches only rows and columns 0..2 (from pixel (r, s)); y[4, 4]
    is x[2, 2] * k[2, 2] = 1 alone.  The conv of the flipped kernel would read a
    padding zero under the inf there and give NaN."""
    x = np.ones((1, 3, 3, 1), dtype)
    kernel = np.ones((3, 3, 1, 1), dtype)
    kernel[0, 0, 0, 0] = np.inf
    y = convpool.conv2d_transpose(x, kernel)[0, :, :, 0]
    assert spy.calls == COL2IM_PATH
    assert y.shape == (5, 5)
    assert np.isposinf(y[:3, :3]).all(), y
    assert y[4, 4] == 1 and y[3, 4] == 2 and y[4, 3] == 2 and y[3, 3] == 4, y
    assert np.isfinite(y[3:, :]).all() and np.isfinite(y[:, 3:]).all(), y
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(y, reference.conv2d_transpose(x, kernel)[0, :, :, 0])


# ===================================================== checks of the reference itself
def _literal_transpose(x, kernel, bias, strides, crops, op, dilation, groups):
    """The definition, one Python float at a time: scatter every term into the
    full output, crop (top, bottom, left, right), add the bias."""
    n, h, w, c = x.shape
    kh, kw, ocg, _ = kernel.shape
    (sh, sw), (dh, dw), (oph, opw) = strides, dilation, op
    t, b, l, r = crops
    cg = c // groups
    fh = (h - 1) * sh + dh * (kh - 1) + 1 + oph
    fw = (w - 1) * sw + dw * (kw - 1) + 1 + opw
    full = np.zeros((n, fh, fw, ocg * groups))
    for ni, i, j, ci, a, bb, o in itertools.product(range(n), range(h), range(w), range(c),
                                                    range(kh), range(kw), range(ocg)):
        g = ci // cg
        full[ni, i * sh + a * dh, j * sw + bb * dw, g * ocg + o] += (
            float(x[ni, i, j, ci]) * float(kernel[a, bb, o, ci]))
    y = full[:, t:fh - b, l:fw - r]
    return y if bias is None else y + bias


LITERAL_CASES = [
    _geom(n=2, h=3, w=4, c=2, oc=3, kernel=(3, 2), strides=(2, 1), padding=((1, 0), (0, 1)),
          dilation=(1, 2), op=(1, 1)),
    _geom(h=4, w=3, c=4, oc=4, kernel=2, strides=3, padding=((0, 2), (1, 0)), op=(2, 1),
          groups=2),
    _geom(h=3, w=3, c=3, oc=6, kernel=3, strides=(1, 2), padding=(2, 1), dilation=(2, 1),
          op=(1, 0), groups=3),
    _geom(h=2, w=5, c=1, oc=2, kernel=(1, 4), strides=(2, 1), padding=((0, 1), (3, 2)),
          op=(1, 0)),
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_tid(c)) for c in LITERAL_CASES])
def test_reference_and_fast_match_the_literal_definition(cfg, rng):
    cfg = dict(cfg, dtype=np.dtype(np.float64), data_format="channels_last", bias=True)
    x, kernel, bias, kwargs = _make_case(cfg, rng, small_ints)
    want = _literal_transpose(x, kernel, bias, _pair(cfg["strides"]), _crops(cfg["padding"]),
                              _pair(cfg["op"]), _pair(cfg["dilation"]), cfg["groups"])
    assert want.shape == _expected_nhwc(cfg)
    for who, fn in (("reference", reference.conv2d_transpose),
                    ("fast", convpool.conv2d_transpose)):
        _assert_exact(fn(x, kernel, bias, **kwargs), want, _tid(cfg),
                      what=f"{who} vs the literal definition")


ADJOINT_CASES = [
    _geom(n=2, h=5, w=7, c=3, oc=4, kernel=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1)),
          dilation=(1, 2)),
    _geom(h=5, w=4, c=4, oc=6, kernel=3, strides=2, padding=1, op=1, groups=2),
    _geom(h=4, w=6, c=6, oc=3, kernel=(2, 3), strides=(3, 2), padding=((2, 0), (0, 3)),
          op=(2, 1), groups=3),
    _geom(n=2, h=6, w=5, c=2, oc=3, kernel=3, dilation=2, op=(1, 0), padding=((0, 3), (1, 0))),
    _geom(h=3, w=4, c=2, oc=5, kernel=1, strides=3, padding=0, op=(2, 2)),  # rows no window reads
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_tid(c)) for c in ADJOINT_CASES])
def test_transpose_is_the_adjoint_of_conv2d(cfg, rng):
    """``<conv2d(z, W), x> == <z, conv2d_transpose(x, W)>`` (float64, random data).

    conv2d (``reference.conv2d``, an independent code path) reads z, of the
    transposed output's shape, with the same kernel, strides and dilation, the
    crop as its top/left padding and the bottom/right padding that brings its
    output to x's (H, W); rows of z below the last window (output padding)
    pair with zeros of the transposed output and are dropped.
    """
    cfg = dict(cfg, dtype=np.dtype(np.float64), data_format="channels_last")
    x, kernel, _, kwargs = _make_case(cfg, rng, _normal)
    n, oh, ow, oc = _expected_nhwc(cfg)
    z = rng.standard_normal((n, oh, ow, oc))
    (sh, sw), (dh, dw) = _pair(cfg["strides"]), _pair(cfg["dilation"])
    kh, kw = _pair(cfg["kernel"])
    t, _, l, _ = _crops(cfg["padding"])
    bottom = (cfg["h"] - 1) * sh + effective_size(kh, dh) - t - oh
    right = (cfg["w"] - 1) * sw + effective_size(kw, dw) - l - ow
    z_read = z[:, :oh + min(bottom, 0), :ow + min(right, 0)]
    conv_kw = dict(strides=(sh, sw), padding=((t, max(bottom, 0)), (l, max(right, 0))),
                   dilation_rate=(dh, dw), groups=cfg["groups"])
    cz = reference.conv2d(z_read, kernel, **conv_kw)
    assert cz.shape == x.shape, f"the adjoint conv's geometry is wrong; {_tid(cfg)}"
    lhs = float(np.sum(cz * x))
    scale = float(np.sum(reference.conv2d(np.abs(z_read), np.abs(kernel), **conv_kw) * np.abs(x)))
    terms = kh * kw * oc + kh * kw * cfg["c"] + x.size + z.size
    tol = 2 * gamma(terms, np.float64) * scale
    assert scale > 0
    for who, fn in (("reference", reference.conv2d_transpose),
                    ("fast", convpool.conv2d_transpose)):
        rhs = float(np.sum(z * fn(x, kernel, **kwargs)))
        assert abs(lhs - rhs) <= tol, (
            f"{who}: <conv2d(z, W), x> = {lhs!r} but <z, conv2d_transpose(x, W)> = {rhs!r} "
            f"(|diff| {abs(lhs - rhs):.3e}, bound {tol:.3e}); {_tid(cfg)}")
    # ... and the transposed backward's grad_x is that conv2d, so <x, grad_x(z)>
    # is the same number (the adjoint identity of the gradient)
    for who, fn in (("reference", reference.conv2d_transpose_backward),
                    ("fast", convpool.conv2d_transpose_backward)):
        gx = fn(z, x, kernel, **kwargs)[0]
        rhs = float(np.sum(x * gx))
        assert abs(lhs - rhs) <= tol, f"{who} grad_x: {lhs!r} vs {rhs!r}; {_tid(cfg)}"


FD_EPS = 1e-6
FD_RTOL = 1e-3


def _assert_directional(fd, analytic, scale, what):
    """|fd - analytic| <= rtol |analytic| + 1e-6 scale.

    L is linear in each argument, so the central difference has no truncation
    error; what remains is the rounding of the two L values, about
    ``u * scale / eps`` ~ 1e-10 * scale (``scale`` bounds the sum of |terms| of L):
    ``atol = 1e-6 * scale`` is a wide margin and far below a wrong gradient's effect.
    """
    atol = 1e-6 * scale
    assert abs(fd - analytic) <= FD_RTOL * abs(analytic) + atol, (
        f"{what}: finite difference {fd!r} vs <gradient, direction> {analytic!r} "
        f"(|diff| {abs(fd - analytic):.3e}, atol {atol:.3e})")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cfg", [pytest.param(c, id=_tid(c)) for c in ADJOINT_CASES[:4]])
def test_backward_finite_differences(cfg, layout, rng):
    """Central differences of ``L = sum(conv2d_transpose(x, W, b) * G)`` (the
    reference's scatter over the taps, not the conv its backward uses) along
    random directions, against the fast and the reference gradients."""
    cfg = dict(cfg, dtype=np.dtype(np.float64), data_format=layout, bias=True)
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    big_g = _grad_out(cfg, rng, _normal)

    def loss(x_, k_, b_):
        return float(np.sum(reference.conv2d_transpose(x_, k_, b_, **kwargs) * big_g))

    scale = float(np.sum(np.abs(big_g) * reference.conv2d_transpose(
        np.abs(x) + 1, np.abs(kernel) + 1, np.abs(bias) + 1, **kwargs)))
    grads = {"fast": convpool.conv2d_transpose_backward(big_g, x, kernel, **kwargs),
             "reference": reference.conv2d_transpose_backward(big_g, x, kernel, **kwargs)}
    for trial in range(3):
        dx, dk, db = (rng.standard_normal(a.shape) for a in (x, kernel, bias))
        fd_x = (loss(x + FD_EPS * dx, kernel, bias) - loss(x - FD_EPS * dx, kernel, bias)) / (
            2 * FD_EPS)
        fd_k = (loss(x, kernel + FD_EPS * dk, bias) - loss(x, kernel - FD_EPS * dk, bias)) / (
            2 * FD_EPS)
        fd_b = (loss(x, kernel, bias + FD_EPS * db) - loss(x, kernel, bias - FD_EPS * db)) / (
            2 * FD_EPS)
        for who, (gx, gk, gb) in grads.items():
            where = f"{who}, direction {trial}; {_tid(cfg)}"
            _assert_directional(fd_x, float(np.sum(gx * dx)), scale, f"grad_x ({where})")
            _assert_directional(fd_k, float(np.sum(gk * dk)), scale, f"grad_kernel ({where})")
            _assert_directional(fd_b, float(np.sum(gb * db)), scale, f"grad_bias ({where})")


# =========================================================================== shapes
def test_output_shapes_follow_the_documented_formulas():
    """Numbers: ``(H - 1)*s - (pt + pb) + d*(k - 1) + op + 1`` (PyTorch); "same":
    ``H*s`` and "valid": ``(H - 1)*s + max(eff, s)`` without output_padding, Keras
    3's ``deconv_output_length`` with it.  An empty output raises ValueError.
    Each axis is checked with the other fixed, over every combination here."""
    checked = {"shape": 0, "empty": 0}
    paddings = ["valid", "same", "SAME", 0, 1, 2, (0, 2), ((0, 2), (1, 0)), ((3, 1), (0, 0))]
    for h, k, s, d, padding, op in itertools.product(
            (1, 2, 5), (1, 2, 3, 4), (1, 2, 3), (1, 2), paddings, (None, 0, 1, 2)):
        if op is not None and op >= max(s, d):
            continue
        x = np.zeros((1, h, 3, 1), F32)
        kernel = np.zeros((k, 2, 1, 1), F32)
        args = dict(strides=(s, 1), padding=padding, output_padding=None if op is None
                    else (op, 0), dilation_rate=(d, 1))
        mode = padding.lower() if isinstance(padding, str) else None
        t, b, l, r = (0, 0, 0, 0) if mode else _crops(padding)
        want_h = _out_length(h, k, s, d, mode, t, b, op)
        want_w = _out_length(3, 2, 1, 1, mode, l, r, None if op is None else 0)
        where = f"H={h} k={k} s={s} d={d} padding={padding!r} output_padding={op}"
        if want_h < 1 or want_w < 1:
            for fn in (convpool.conv2d_transpose, reference.conv2d_transpose):
                with pytest.raises(ValueError, match=r"the output would be empty"):
                    fn(x, kernel, **args)
            checked["empty"] += 1
            continue
        got = convpool.conv2d_transpose(x, kernel, **args).shape
        assert got == (1, want_h, want_w, 1), f"{got}; {where}"
        assert reference.conv2d_transpose(x, kernel, **args).shape == got, where
        checked["shape"] += 1
    assert checked["shape"] > 500 and checked["empty"] > 10, checked


@pytest.mark.parametrize("layout", LAYOUTS)
def test_docstring_shape_examples(layout):
    x = to_layout(np.zeros((1, 5, 7, 8), F32), layout)
    kernel = np.zeros((3, 3, 4, 8), F32)
    want = (1, 4, 10, 14) if layout == "channels_first" else (1, 10, 14, 4)
    assert convpool.conv2d_transpose(x, kernel, strides=2, padding=1, output_padding=1,
                                     data_format=layout).shape == want
    assert convpool.conv2d_transpose(x, kernel, strides=2, padding="same",
                                     data_format=layout).shape == want


# ========================================================================== threads
THREAD_CASES = [
    dict(n=2, h=13, w=11, c=8, oc=16, kernel=3, strides=2, padding=1, op=1, dilation=1,
         groups=1, dtype=np.dtype(np.float32), act="relu", bias=True),
    dict(n=3, h=9, w=14, c=6, oc=9, kernel=(3, 2), strides=(1, 2), padding=((1, 0), (0, 1)),
         op=None, dilation=(2, 1), groups=3, dtype=np.dtype(np.float64), act=None, bias=True),
    dict(n=2, h=15, w=17, c=8, oc=12, kernel=3, strides=1, padding="same", op=None,
         dilation=1, groups=2, dtype=np.dtype(np.float32), act="relu", bias=True),  # conv path
    dict(n=2, h=12, w=13, c=16, oc=8, kernel=(2, 4), strides=1, padding="valid", op=None,
         dilation=(1, 2), groups=1, dtype=np.dtype(np.float64), act=None, bias=False),
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_tid(c)) for c in THREAD_CASES])
def test_bitwise_across_thread_counts(cfg, rng, num_threads):
    cfg = dict(cfg, data_format="channels_last")
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    g = _grad_out(cfg, rng, _normal)
    fwd, bwd = {}, {}
    for n in (1, 2, 3):
        num_threads(n)
        assert convpool.get_num_threads() == (n if OPENMP else 1)
        fwd[n] = convpool.conv2d_transpose(x, kernel, bias, activation=cfg["act"], **kwargs)
        bwd[n] = convpool.conv2d_transpose_backward(g, x, kernel, **kwargs)
    for n in (2, 3):
        assert_bitwise_equal(fwd[n], fwd[1], _tid(cfg), what=f"forward, {n} threads vs 1")
        for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), bwd[n], bwd[1]):
            assert_bitwise_equal(a, b, _tid(cfg), what=f"{name}, {n} threads vs 1")
    tol = transpose_tolerance(x, kernel, cfg["dtype"], bias=bias, **kwargs)
    assert_conv_close(fwd[1], _ref64(x, kernel, bias, cfg["act"], **kwargs), tol, _tid(cfg))


# ====================================================================== out= and guards
GUARD_CASES = [
    _geom(n=2, h=5, w=7, c=3, oc=17, kernel=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1)),
          dilation=(1, 2), op=(1, 0), bias=True),  # data-gradient path
    _geom(h=4, w=5, c=2, oc=9, kernel=1, strides=3, op=(2, 1), bias=True),  # unreached rows
    _geom(n=2, h=6, w=13, c=4, oc=8, kernel=3, padding="same", bias=False),  # conv path
    _geom(h=5, w=6, c=6, oc=6, kernel=3, padding=1, groups=6, bias=True),  # conv, depthwise
]


def _guard_params():
    return [pytest.param(dict(g, dtype=np.dtype(dt), data_format=lay, act="relu"),
                         id=_tid(dict(g, dtype=np.dtype(dt), data_format=lay, act="relu")))
            for g in GUARD_CASES for dt in DTYPES for lay in LAYOUTS]


@pytest.mark.parametrize("contiguous", [True, False], ids=["contig", "strided"])
@pytest.mark.parametrize("cfg", _guard_params())
def test_nan_guard_regions(cfg, contiguous, rng):
    """NaN around x, kernel and bias never reaches the result; out= starts as
    NaN and every cell of it is written (the output-padding and unreached rows
    hold the bias); nothing is written outside it."""
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    plain = convpool.conv2d_transpose(x, kernel, bias, activation="relu", **kwargs)
    gx = guarded(x, contiguous=contiguous)
    gk = guarded(kernel)
    gb = guarded(bias) if bias is not None else None
    gout = guarded_out(plain.shape, cfg["dtype"])
    res = convpool.conv2d_transpose(gx.view, gk.view, None if gb is None else gb.view,
                                    out=gout.view, activation="relu", **kwargs)
    assert res is gout.view
    assert not np.isnan(res).any(), (
        f"NaN in the result: a guard cell was read or an output left unwritten; {_tid(cfg)}")
    assert_bitwise_equal(res, plain, _tid(cfg), what="guarded vs plain")
    tol = transpose_tolerance(x, kernel, cfg["dtype"], bias=bias, **kwargs)
    assert_conv_close(res, _ref64(x, kernel, bias, "relu", **kwargs), tol, _tid(cfg))
    for g, name in ((gx, "x"), (gk, "kernel"), (gb, "bias"), (gout, "out")):
        if g is not None:
            assert_guard_intact(g, name)
    assert_bitwise_equal(gx.view, x, _tid(cfg), what="x after the call")


@pytest.mark.parametrize("cfg", _guard_params()[::2])
def test_backward_nan_guard_regions(cfg, rng):
    """grad_out, x and kernel in NaN guards (passed in place): the gradients
    equal the unguarded ones bit for bit; no guard cell is touched."""
    x, kernel, _, kwargs = _make_case(cfg, rng, _normal)
    g = _grad_out(cfg, rng, _normal)
    plain = convpool.conv2d_transpose_backward(g, x, kernel, **kwargs)
    gg, gx, gk = guarded(g), guarded(x), guarded(kernel)
    got = convpool.conv2d_transpose_backward(gg.view, gx.view, gk.view, **kwargs)
    for what, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), got, plain):
        assert not np.isnan(a).any(), f"{what}: a guard cell was read; {_tid(cfg)}"
        assert_bitwise_equal(a, b, _tid(cfg), what=f"{what}: guarded vs plain")
    for gd, what in ((gg, "grad_out"), (gx, "x"), (gk, "kernel")):
        assert_guard_intact(gd, what)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_out_matches_return_value(strides, dtype, layout, rng):
    x = to_layout(rng.standard_normal((2, 5, 7, 4)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 2, 5, 4)).astype(dtype)
    bias = rng.standard_normal(10).astype(dtype)
    kw = dict(strides=strides, padding="same", groups=2, data_format=layout, activation="relu")
    plain = convpool.conv2d_transpose(x, kernel, bias, **kw)
    gout = guarded_out(plain.shape, dtype)
    got = convpool.conv2d_transpose(x, kernel, bias, out=gout.view, **kw)
    assert got is gout.view
    assert_bitwise_equal(got, plain, kw, what="out= vs returned")
    assert_guard_intact(gout, "out")
    # a huge sentinel (not NaN) is gone everywhere too
    big = np.full(plain.shape, np.finfo(dtype).max, dtype)
    assert convpool.conv2d_transpose(x, kernel, bias, out=big, **kw) is big
    assert_bitwise_equal(big, plain, kw, what="out= over a huge sentinel")
    # the reference honours out= the same way
    rout = np.full(plain.shape, np.nan, dtype)
    assert reference.conv2d_transpose(x, kernel, bias, out=rout, **kw) is rout
    assert not np.isnan(rout).any()


X = (np.arange(105, dtype=F32).reshape(1, 5, 7, 3) % 11 - 5) / 4  # (N, H, W, C_in)
K = ((np.arange(72, dtype=F32).reshape(3, 2, 4, 3) % 7) - 3) / 2  # (KH, KW, C_out, C_in)
OUT_SHAPE = (1, 7, 8, 4)  # valid, stride 1


def _out_cases():
    base = np.zeros(400, F32)
    x_in_base = base[:105].reshape(1, 5, 7, 3)
    k_base = np.zeros(400, F32)
    k_in_base = k_base[:72].reshape(3, 2, 4, 3)
    b_base = np.zeros(300, F32)
    ro = np.zeros(OUT_SHAPE, F32)
    ro.flags.writeable = False
    return [
        ("dtype", dict(out=np.zeros(OUT_SHAPE, np.float64)), TypeError,
         r"out has dtype float64 but the result has dtype float32"),
        ("shape", dict(out=np.zeros((1, 7, 8, 3), F32)), ValueError,
         r"out has shape \(1, 7, 8, 3\) but the result has shape \(1, 7, 8, 4\)"),
        ("shape-nchw", dict(out=np.zeros(OUT_SHAPE, F32), x=np.ones((1, 3, 5, 7), F32),
                            data_format="channels_first"), ValueError,
         r"out has shape \(1, 7, 8, 4\) but the result has shape \(1, 4, 7, 8\)"),
        ("non-contiguous", dict(out=np.zeros((1, 7, 8, 8), F32)[..., ::2]), ValueError,
         r"out must be C-contiguous"),
        ("fortran", dict(out=np.asfortranarray(np.zeros(OUT_SHAPE, F32))), ValueError,
         r"out must be C-contiguous"),
        ("read-only", dict(out=ro), ValueError, r"out of shape \(1, 7, 8, 4\) is read-only"),
        ("list", dict(out=[[0.0]]), TypeError, r"out must be a numpy.ndarray, got list"),
        ("overlap-x", dict(x=x_in_base, out=base[100:324].reshape(OUT_SHAPE)), ValueError,
         r"out \(shape \(1, 7, 8, 4\)\) shares memory with x \(shape \(1, 5, 7, 3\)\)"),
        ("overlap-kernel", dict(kernel=k_in_base, out=k_base[70:294].reshape(OUT_SHAPE)),
         ValueError, r"shares memory with kernel \(shape \(3, 2, 4, 3\)\)"),
        ("overlap-bias", dict(bias=b_base[:4], out=b_base[2:226].reshape(OUT_SHAPE)),
         ValueError, r"shares memory with bias"),
    ]


@pytest.mark.parametrize("fn", [convpool.conv2d_transpose, reference.conv2d_transpose],
                         ids=["fast", "ref"])
@pytest.mark.parametrize("over, exc, pattern",
                         [pytest.param(*c[1:], id=c[0]) for c in _out_cases()])
def test_out_rejected_and_untouched(over, exc, pattern, fn):
    args = dict(x=X, kernel=K, bias=None)
    args.update(over)
    out = args["out"]
    before = np.array(out, copy=True)
    with pytest.raises(exc, match=pattern):
        fn(**args)
    assert np.array_equal(np.asarray(out), before)


def test_out_adjacent_to_x_is_accepted():
    """Sharing a base array is fine as long as the bytes do not overlap."""
    base = np.zeros(105 + 224, F32)
    x = base[:105].reshape(X.shape)
    x[...] = X
    out = base[105:].reshape(OUT_SHAPE)
    assert convpool.conv2d_transpose(x, K, out=out) is out
    assert_bitwise_equal(out, convpool.conv2d_transpose(X, K), "adjacent")


# ============================================================= inputs, views, dtypes
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_inputs_never_modified(strides, dtype, layout, rng):
    x = to_layout(rng.standard_normal((2, 5, 7, 4)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 3, 6, 4)).astype(dtype)
    bias = rng.standard_normal(6).astype(dtype)
    kw = dict(strides=strides, padding=1, data_format=layout)
    copies = [a.copy() for a in (x, kernel, bias)]
    y = convpool.conv2d_transpose(x, kernel, bias, activation="relu", **kw)
    convpool.conv2d_transpose(x, kernel, bias, out=np.empty_like(y), **kw)
    g = rng.standard_normal(y.shape).astype(dtype)
    g_copy = g.copy()
    convpool.conv2d_transpose_backward(g, x, kernel, **kw)
    for a, c, name in zip((x, kernel, bias, g), copies + [g_copy],
                          ("x", "kernel", "bias", "grad_out")):
        assert_bitwise_equal(a, c, (strides, layout), what=f"{name} after the calls")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8], ids=["f32", "f64", "u8"])
@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_read_only_inputs_work(strides, dtype, rng):
    x = (rng.integers(0, 5, (2, 5, 6, 3)) if dtype == np.uint8
         else rng.standard_normal((2, 5, 6, 3))).astype(dtype)
    wdt = np.float32 if dtype == np.uint8 else dtype
    kernel = rng.standard_normal((2, 3, 4, 3)).astype(wdt)
    bias = rng.standard_normal(4).astype(wdt)
    kw = dict(strides=strides, padding="same")
    want = convpool.conv2d_transpose(x, kernel, bias, **kw)
    g = rng.standard_normal(want.shape).astype(wdt)
    want_b = convpool.conv2d_transpose_backward(g, x, kernel, **kw)
    for a in (x, kernel, bias, g):
        a.flags.writeable = False
    assert reference.conv2d_transpose(x, kernel, bias, **kw).shape == want.shape
    assert_bitwise_equal(convpool.conv2d_transpose(x, kernel, bias, **kw), want, "read-only")
    for a, b in zip(convpool.conv2d_transpose_backward(g, x, kernel, **kw), want_b):
        assert_bitwise_equal(a, b, "read-only backward")
    reference.conv2d_transpose_backward(g, x, kernel, **kw)  # accepted


def _views(a):
    return {
        "strided": strided_copy(a),
        "negative": np.ascontiguousarray(a[::-1])[::-1],
        "fortran": np.asfortranarray(a),
        "offset-slice": np.concatenate([a, a], axis=0)[a.shape[0]:],
    }


@pytest.mark.parametrize("view", ["strided", "negative", "fortran", "offset-slice"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_views_give_bitwise_the_contiguous_result(strides, view, layout, dtype, rng):
    x = to_layout(rng.standard_normal((2, 5, 7, 4)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 2, 6, 4)).astype(dtype)
    bias = rng.standard_normal(12).astype(dtype)
    kw = dict(strides=strides, padding=((1, 0), (0, 1)), output_padding=strides - 1, groups=2,
              data_format=layout)
    want = convpool.conv2d_transpose(x, kernel, bias, **kw)
    g = rng.standard_normal(want.shape).astype(dtype)
    want_b = convpool.conv2d_transpose_backward(g, x, kernel, **kw)
    xv, kv, bv, gv = (_views(a)[view] for a in (x, kernel, bias, g))
    assert not (xv.flags.c_contiguous and view != "offset-slice")
    assert_bitwise_equal(convpool.conv2d_transpose(xv, kv, bv, **kw), want, view)
    for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"),
                          convpool.conv2d_transpose_backward(gv, xv, kv, **kw), want_b):
        assert_bitwise_equal(a, b, view, what=f"{name} from views")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_channels_first_equals_channels_last(dtype, rng):
    """An NCHW transpose view of NHWC data gives the NHWC result, transposed, bit for bit."""
    x = rng.standard_normal((2, 5, 7, 4)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    for strides in (1, 2):
        kw = dict(strides=strides, padding="same", dilation_rate=(1, 2) if strides == 1 else 1)
        last = convpool.conv2d_transpose(x, kernel, bias, **kw)
        first = convpool.conv2d_transpose(x.transpose(0, 3, 1, 2), kernel, bias,
                                          data_format="channels_first", **kw)
        assert_bitwise_equal(first, last.transpose(0, 3, 1, 2), strides, what="NCHW vs NHWC")
        g = rng.standard_normal(last.shape).astype(dtype)
        bl = convpool.conv2d_transpose_backward(g, x, kernel, **kw)
        bf = convpool.conv2d_transpose_backward(g.transpose(0, 3, 1, 2), x.transpose(0, 3, 1, 2),
                                                kernel, data_format="channels_first", **kw)
        assert_bitwise_equal(bf[0], bl[0].transpose(0, 3, 1, 2), strides, what="grad_x")
        assert_bitwise_equal(bf[1], bl[1], strides, what="grad_kernel")
        assert_bitwise_equal(bf[2], bl[2], strides, what="grad_bias")


def test_array_like_inputs():
    xl = X.astype(np.float64).tolist()
    kl = K.astype(np.float64).tolist()
    got = convpool.conv2d_transpose(xl, kl, [0.0, 1.0, 2.0, 3.0], strides=2)
    assert got.dtype == np.float64
    want = convpool.conv2d_transpose(np.array(xl), np.array(kl), np.arange(4.0), strides=2)
    assert_bitwise_equal(got, want, "lists")


@pytest.mark.parametrize(
    "x_dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.bool_, np.float16])
@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_small_dtypes_compute_in_float32(x_dtype, strides, rng):
    raw = rng.integers(0 if np.dtype(x_dtype).kind in "ub" else -8, 9, size=(2, 5, 6, 3))
    x = raw.astype(x_dtype)
    kernel = small_ints(rng, (3, 2, 4, 3), F32)
    bias = small_ints(rng, (4,), F32)
    kw = dict(strides=strides, padding="same")
    got = convpool.conv2d_transpose(x, kernel, bias, **kw)
    assert got.dtype == F32
    as_f32 = convpool.conv2d_transpose(x.astype(F32), kernel, bias, **kw)
    assert_bitwise_equal(got, as_f32, x_dtype, what=f"{np.dtype(x_dtype)} input vs float32 copy")
    ref = _ref64(x.astype(np.float64), kernel, bias, **kw)
    assert np.array_equal(got, ref.astype(F32))
    # the backward pass too, with an integer grad_out
    g = rng.integers(-3, 4, size=got.shape)
    gb = convpool.conv2d_transpose_backward(g, x, kernel, **kw)
    gf = convpool.conv2d_transpose_backward(g.astype(F32), x.astype(F32), kernel, **kw)
    for a, b in zip(gb, gf):
        assert a.dtype == F32
        assert_bitwise_equal(a, b, x_dtype, what="backward of an integer input")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("w_dtype", [np.int8, np.int64, np.uint8, np.bool_])
def test_integer_weights_are_cast(dtype, w_dtype, rng):
    x = rng.standard_normal((2, 5, 5, 3)).astype(dtype)
    kernel = rng.integers(0, 3, size=(3, 2, 4, 3)).astype(w_dtype)
    bias = rng.integers(0, 3, size=(4,)).astype(w_dtype)
    for strides in (1, 2):
        got = convpool.conv2d_transpose(x, kernel, bias, strides=strides, padding=1)
        assert got.dtype == dtype
        cast = convpool.conv2d_transpose(x, kernel.astype(dtype), bias.astype(dtype),
                                         strides=strides, padding=1)
        assert_bitwise_equal(got, cast, (dtype, w_dtype), what="integer vs cast weights")


# ===================================================================== empty sizes
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("impl", ["fast", "ref"])
def test_empty_batch(impl, dtype, layout):
    fwd = convpool.conv2d_transpose if impl == "fast" else reference.conv2d_transpose
    bwd = (convpool.conv2d_transpose_backward if impl == "fast"
           else reference.conv2d_transpose_backward)
    x = to_layout(np.zeros((0, 5, 7, 3), dtype), layout)
    kernel = np.ones((3, 2, 4, 3), dtype)
    kw = dict(strides=(2, 1), padding="same", data_format=layout)
    want = (0, 4, 10, 7) if layout == "channels_first" else (0, 10, 7, 4)
    got = fwd(x, kernel, np.ones(4, dtype), **kw)
    assert got.shape == want and got.dtype == dtype
    out = np.zeros(want, dtype)
    assert fwd(x, kernel, np.ones(4, dtype), out=out, **kw) is out
    gx, gk, gb = bwd(np.zeros(want, dtype), x, kernel, **kw)
    assert gx.shape == x.shape and gx.dtype == dtype
    assert gk.shape == kernel.shape and not gk.any()
    assert gb.shape == (4,) and not gb.any()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_zero_input_channels_gives_bias(strides, activation, with_bias, groups, layout):
    """C_in = 0: every sum is empty, so the output is the bias (or 0), the ReLU
    applied, like the reference; the backward pass gives grad_bias = sum of grad_out."""
    x = to_layout(np.ones((2, 4, 3, 0), F32), layout)
    kernel = np.ones((2, 3, 2, 0), F32)  # C_out = 2 * groups
    oc = 2 * groups
    bias = np.array([1.5, -2.0, 0.25, -7.0][:oc], F32) if with_bias else None
    oh, ow = (4 - 1) * strides + 2, (3 - 1) * strides + 3
    shape = (2, oc, oh, ow) if layout == "channels_first" else (2, oh, ow, oc)
    kw = dict(strides=strides, groups=groups, data_format=layout, activation=activation)
    gout = guarded_out(shape, F32)
    got = convpool.conv2d_transpose(x, kernel, bias, out=gout.view, **kw)
    assert got is gout.view
    per_channel = bias.copy() if with_bias else np.zeros(oc, F32)
    if activation == "relu":
        per_channel = np.maximum(per_channel, 0)
    axis_shape = (1, oc, 1, 1) if layout == "channels_first" else (1, 1, 1, oc)
    assert np.array_equal(got, np.broadcast_to(per_channel.reshape(axis_shape), shape))
    assert np.array_equal(got, reference.conv2d_transpose(x, kernel, bias, **kw))
    assert_guard_intact(gout, "out")
    g = np.arange(np.prod(shape), dtype=F32).reshape(shape) % 5 - 2
    kw.pop("activation")
    for fn in (convpool.conv2d_transpose_backward, reference.conv2d_transpose_backward):
        gx, gk, gb = fn(g, x, kernel, **kw)
        assert gx.shape == x.shape and gk.shape == kernel.shape
        axes = (0, 2, 3) if layout == "channels_first" else (0, 1, 2)
        assert np.array_equal(gb, g.sum(axis=axes)), fn


@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
def test_zero_output_channels(strides, rng):
    """C_out = 0 (kernel (2, 2, 0, 3)): an empty result; the backward pass gives
    grad_x = 0 (no output reads x), an empty grad_kernel and grad_bias, as the
    reference does (conv2d_backward handles its C_out = 0 the same way)."""
    x = rng.standard_normal((2, 5, 5, 3)).astype(F32)
    kernel = np.ones((2, 2, 0, 3), F32)
    got = convpool.conv2d_transpose(x, kernel, np.ones(0, F32), strides=strides)
    side = (5 - 1) * strides + max(2, strides)
    assert got.shape == (2, side, side, 0) and got.dtype == F32
    g = np.ones(got.shape, F32)
    want = reference.conv2d_transpose_backward(g, x, kernel, strides=strides)
    assert want[0].shape == x.shape and not want[0].any()
    for input_grad in (True, False):
        fast = convpool.conv2d_transpose_backward(g, x, kernel, strides=strides,
                                                  input_grad=input_grad)
        if input_grad:
            assert_bitwise_equal(fast[0], want[0], strides, what="grad_x with C_out = 0")
        else:
            assert fast[0] is None
        assert fast[1].shape == kernel.shape and fast[2].shape == (0,)


# ====================================================================== validation
_BASE_OUT = np.zeros(OUT_SHAPE, F32)

TRANSPOSE_ERRORS = [
    # rank and taps
    ("x-3d", dict(x=X[0]), ValueError, r"x must be 4-D \(N, H, W, C\).*got shape \(5, 7, 3\)"),
    ("x-none", dict(x=None), TypeError, r"x must be an array, got None"),
    ("kernel-3d", dict(kernel=K[0]), ValueError,
     r"kernel must be 4-D \(kernel_h, kernel_w, C_out // groups, C_in\), got shape \(2, 4, 3\)"),
    ("kernel-5d", dict(kernel=K[None]), ValueError, r"kernel must be 4-D.*\(1, 3, 2, 4, 3\)"),
    ("kernel-none", dict(kernel=None), TypeError, r"kernel must be an array, got None"),
    ("zero-taps", dict(kernel=np.ones((0, 2, 4, 3), F32)), ValueError,
     r"kernel must have at least one tap.*kernel shape \(0, 2, 4, 3\)"),
    ("zero-height", dict(x=np.ones((1, 0, 7, 3), F32)), ValueError,
     r"conv2d_transpose needs an input of at least 1x1, got \(0, 7\)"),
    # channels and groups
    ("cin-mismatch", dict(kernel=np.ones((3, 2, 4, 2), F32)), ValueError,
     r"kernel expects 2 input channels on its last axis.*but x has 3.*"
     r"x shape \(1, 5, 7, 3\).*kernel shape \(3, 2, 4, 2\)"),
    ("cin-mismatch-nchw", dict(data_format="channels_first"), ValueError,
     r"kernel expects 3 input channels.*but x has 5.*\(channels_first\)"),
    ("groups-cin", dict(groups=2), ValueError, r"groups=2 must divide the input channels \(3\)"),
    ("groups-0", dict(groups=0), ValueError, r"groups must be positive, got 0"),
    ("groups-bool", dict(groups=True), TypeError, r"groups must be an int, got the bool True"),
    ("groups-float", dict(groups=1.0), TypeError, r"groups must be an int"),
    # bias
    ("bias-short", dict(bias=np.ones(3, F32)), ValueError,
     r"bias must have shape \(C_out,\) = \(4,\).*got \(3,\)"),
    ("bias-groups", dict(x=np.ones((1, 5, 7, 6), F32), kernel=np.ones((3, 2, 4, 6), F32),
                         groups=2, bias=np.ones(4, F32)), ValueError,
     r"bias must have shape \(C_out,\) = \(8,\) \(kernel's C_out // groups = 4 times "
     r"groups = 2\), got \(4,\)"),
    ("bias-2d", dict(bias=np.ones((1, 4), F32)), ValueError, r"bias must have shape.*\(1, 4\)"),
    ("bias-scalar", dict(bias=F32(1)), ValueError, r"bias must have shape.*got \(\)"),
    # output_padding
    ("op-stride-1", dict(output_padding=1), ValueError,
     r"output_padding \(1, 1\) must be smaller than the stride or the dilation.*"
     r"axis 0 has output_padding 1, strides 1, dilation_rate 1"),
    ("op-eq-stride", dict(strides=2, output_padding=2), ValueError,
     r"output_padding \(2, 2\) must be smaller.*axis 0 has output_padding 2, strides 2"),
    ("op-eq-dilation", dict(dilation_rate=2, output_padding=(0, 2)), ValueError,
     r"output_padding \(0, 2\) must be smaller.*axis 1 has output_padding 2, strides 1, "
     r"dilation_rate 2"),
    ("op-same", dict(strides=(2, 1), padding="same", output_padding=(1, 1)), ValueError,
     r"output_padding \(1, 1\) must be smaller.*axis 1"),
    ("op-neg", dict(strides=2, output_padding=-1), ValueError,
     r"output_padding must be >= 0, got -1"),
    ("op-float", dict(strides=2, output_padding=0.5), TypeError,
     r"output_padding must be an int or a pair of ints"),
    # strides, dilation
    ("strides-0", dict(strides=0), ValueError, r"strides must be positive, got 0"),
    ("strides-float", dict(strides=1.5), TypeError, r"strides must be an int"),
    ("dilation-0", dict(dilation_rate=0), ValueError, r"dilation_rate must be positive, got 0"),
    # padding
    ("padding-neg", dict(padding=-1), ValueError, r"padding must be non-negative, got -1"),
    ("padding-neg-pair", dict(padding=(0, -2)), ValueError, r"padding must be non-negative"),
    ("padding-neg-explicit", dict(padding=((0, -1), (0, 0))), ValueError,
     r"padding must be >= 0"),
    ("padding-str", dict(padding="full"), ValueError,
     r"padding must be 'valid', 'same'.*'full'"),
    ("padding-none", dict(padding=None), TypeError, r"padding must be 'valid', 'same'"),
    ("output-empty", dict(padding=5), ValueError,
     r"the output would be empty.*input \(5, 7\), kernel \(3, 2\).*padding 5"),
    ("output-empty-width", dict(padding=((0, 0), (4, 4))), ValueError,
     r"the output would be empty: \(7, 0\)"),
    # dtypes, layout, activation
    ("kernel-f64", dict(kernel=K.astype(np.float64)), TypeError,
     r"kernel has dtype float64 but the input is computed in float32"),
    ("kernel-f32-for-f64", dict(x=X.astype(np.float64)), TypeError,
     r"kernel has dtype float32 but the input is computed in float64"),
    ("bias-f64", dict(bias=np.zeros(4)), TypeError, r"bias has dtype float64.*float32"),
    ("kernel-complex", dict(kernel=K.astype(complex)), TypeError, r"kernel has dtype complex128"),
    ("x-complex", dict(x=X.astype(np.complex64)), TypeError, r"x has dtype complex64"),
    ("data-format", dict(data_format="NHWC"), ValueError,
     r"data_format must be 'channels_last' or 'channels_first', got 'NHWC'"),
    ("data-format-int", dict(data_format=1), ValueError, r"data_format must be"),
    ("activation", dict(activation="tanh"), ValueError, r"activation must be.*'tanh'"),
]


@pytest.mark.parametrize("impl", ["fast", "ref"])
@pytest.mark.parametrize("over, exc, pattern",
                         [pytest.param(*c[1:], id=c[0]) for c in TRANSPOSE_ERRORS])
def test_rejects_before_any_kernel_runs(over, exc, pattern, impl, spy):
    """Each bad argument raises, naming it; no kernel runs, out= is untouched."""
    fn = convpool.conv2d_transpose if impl == "fast" else reference.conv2d_transpose
    args = dict(x=X, kernel=K, bias=None, out=np.full(OUT_SHAPE, -4321.0, F32))
    args.update(over)
    with pytest.raises(exc, match=pattern):
        fn(**args)
    assert spy.calls == [], f"a kernel ran before the error: {spy.calls}"
    assert (args["out"] == -4321.0).all()


BACKWARD_ERRORS = [
    ("grad-out-shape", dict(grad_out=np.ones((1, 7, 8, 5), F32)), ValueError,
     r"grad_out must have the forward output's shape \(1, 7, 8, 4\).*got \(1, 7, 8, 5\)"),
    ("grad-out-rank3", dict(grad_out=np.ones((7, 8, 4), F32)), ValueError,
     r"grad_out must have the forward output's shape \(1, 7, 8, 4\).*got \(7, 8, 4\)"),
    ("grad-out-nchw-shape", dict(data_format="channels_first", x=np.ones((1, 3, 5, 7), F32),
                                 grad_out=np.ones(OUT_SHAPE, F32)), ValueError,
     r"grad_out must have the forward output's shape \(1, 4, 7, 8\)"),
    ("grad-out-f64", dict(grad_out=np.ones(OUT_SHAPE)), TypeError,
     r"grad_out has dtype float64 but the input is computed in float32"),
    ("grad-out-complex", dict(grad_out=np.ones(OUT_SHAPE, np.complex64)), TypeError,
     r"grad_out has dtype complex64"),
    ("grad-out-none", dict(grad_out=None), TypeError, r"grad_out must be an array, got None"),
    # the forward call's errors, still raised
    ("kernel-3d", dict(kernel=K[0]), ValueError, r"kernel must be 4-D"),
    ("groups-cin", dict(groups=2), ValueError, r"groups=2 must divide the input channels"),
    ("op-stride-1", dict(output_padding=1), ValueError, r"output_padding \(1, 1\) must be"),
    ("padding-neg", dict(padding=-1), ValueError, r"padding must be non-negative"),
    ("output-empty", dict(padding=5), ValueError, r"the output would be empty"),
    ("kernel-f64", dict(kernel=K.astype(np.float64)), TypeError, r"kernel has dtype float64"),
]


@pytest.mark.parametrize("impl", ["fast", "ref"])
@pytest.mark.parametrize("over, exc, pattern",
                         [pytest.param(*c[1:], id=c[0]) for c in BACKWARD_ERRORS])
def test_backward_rejects_before_any_kernel_runs(over, exc, pattern, impl, spy):
    fn = (convpool.conv2d_transpose_backward if impl == "fast"
          else reference.conv2d_transpose_backward)
    args = dict(grad_out=np.ones(OUT_SHAPE, F32), x=X, kernel=K)
    args.update(over)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(exc, match=pattern):
        fn(**args)
    assert spy.calls == [], f"a kernel ran before the error: {spy.calls}"
    for k, v in before.items():
        assert_bitwise_equal(args[k], v, k, what=f"{k} after the error")


# =========================================================== optional cross-checks
def _torch_grid():
    """Modest: each kernel size, stride, dilation, padding form PyTorch has
    (and asymmetric crops, cropped by hand from padding 0), output padding, groups."""
    rows = [
        _geom(n=2, h=5, w=7, c=3, oc=4, kernel=3, strides=2, padding=1, op=1),
        _geom(n=1, h=4, w=6, c=2, oc=6, kernel=(4, 2), strides=(2, 3), padding=(1, 0),
              op=(1, 2), groups=2),
        _geom(n=2, h=5, w=5, c=6, oc=3, kernel=(2, 3), strides=(3, 1), padding=(2, 1),
              dilation=(2, 1), op=(2, 0), groups=3),
        _geom(n=1, h=6, w=5, c=4, oc=4, kernel=3, strides=1, padding=2, dilation=2, op=1,
              groups=4),
        _geom(n=2, h=3, w=4, c=2, oc=5, kernel=1, strides=3, padding=0, op=2),
        _geom(n=1, h=5, w=7, c=3, oc=2, kernel=(3, 4), strides=1, padding=(0, 3)),
        _geom(n=2, h=4, w=5, c=4, oc=6, kernel=4, strides=2, padding=1, groups=2),
        _geom(n=1, h=5, w=6, c=2, oc=3, kernel=(2, 3), strides=(2, 2), padding=((1, 0), (2, 1)),
              dilation=(1, 2), op=(1, 1)),
        _geom(n=2, h=6, w=5, c=3, oc=3, kernel=3, strides=1, padding=((3, 0), (0, 2))),
        _geom(n=1, h=7, w=5, c=2, oc=4, kernel=(3, 2), strides=(1, 2), padding=((0, 2), (1, 1)),
              dilation=(2, 2), op=(1, 1), groups=2),
    ]
    return [pytest.param(dict(r, dtype=np.dtype(np.float64), data_format="channels_first",
                              bias=True, act=None), id=_tid(dict(r, act=None)))
            for r in rows]


@pytest.mark.parametrize("cfg", _torch_grid())
def test_matches_torch_conv_transpose2d(cfg, rng):
    """Forward and autograd gradients, float64, against PyTorch (NCHW; weight
    (C_in, C_out // groups, KH, KW) is our kernel transposed (3, 2, 0, 1))."""
    torch = pytest.importorskip("torch")
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    g = _grad_out(cfg, rng, _normal)
    t, b, l, r = _crops(cfg["padding"])
    symmetric = t == b and l == r
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(
        xt, wt, bt, stride=_pair(cfg["strides"]), padding=(t, l) if symmetric else 0,
        output_padding=_pair(cfg["op"] or 0), groups=cfg["groups"],
        dilation=_pair(cfg["dilation"]))
    if not symmetric:  # crop (top, bottom, left, right) by hand
        yt = yt[:, :, t:yt.shape[2] - b, l:yt.shape[3] - r]
    (yt * torch.tensor(g)).sum().backward()
    y = convpool.conv2d_transpose(x, kernel, bias, **kwargs)
    assert tuple(yt.shape) == y.shape, (tuple(yt.shape), y.shape, _tid(cfg))
    tol = transpose_tolerance(x, kernel, np.float64, bias=bias, **kwargs)
    assert_conv_close(y, yt.detach().numpy(), tol, f"forward vs torch: {_tid(cfg)}")
    grads = convpool.conv2d_transpose_backward(g, x, kernel, **kwargs)
    tols = transpose_backward_tolerances(g, x, kernel, np.float64, **kwargs)
    theirs = (xt.grad.numpy(), wt.grad.numpy().transpose(2, 3, 1, 0), bt.grad.numpy())
    for name, a, e, tol in zip(("grad_x", "grad_kernel", "grad_bias"), grads, theirs, tols):
        assert_conv_close(a, e, tol, f"{name} vs torch: {_tid(cfg)}")


def _keras_grid():
    """Where TensorFlow's CPU kernel computes Conv2DTranspose: dilation 1,
    output_padding below the stride (Keras's rule), "same" with an output
    padding only where ``ceil(OH / s) == H`` (TF's check)."""
    rows = [
        _geom(n=2, h=5, w=7, c=3, oc=4, kernel=3, strides=2, padding="same"),
        _geom(n=2, h=5, w=7, c=3, oc=4, kernel=3, strides=2, padding="valid"),
        _geom(n=1, h=5, w=7, c=3, oc=4, kernel=(3, 2), strides=(2, 3), padding="same", op=1),
        _geom(n=1, h=5, w=7, c=2, oc=5, kernel=4, strides=2, padding="same", op=1),
        _geom(n=1, h=5, w=6, c=4, oc=3, kernel=1, strides=3, padding="valid"),
        _geom(n=2, h=4, w=5, c=3, oc=2, kernel=(2, 4), strides=(3, 2), padding="valid",
              op=(2, 1)),
        _geom(n=1, h=6, w=5, c=5, oc=3, kernel=(4, 1), strides=1, padding="same"),
        _geom(n=1, h=5, w=7, c=3, oc=3, kernel=2, strides=1, padding="valid", op=0),
        _geom(n=2, h=3, w=4, c=17, oc=9, kernel=3, strides=(1, 2), padding="same"),
        _geom(n=1, h=5, w=7, c=2, oc=2, kernel=(2, 3), strides=(2, 1), padding="valid",
              op=(1, 0)),
    ]
    return [pytest.param(dict(r, dtype=np.dtype(np.float32), data_format="channels_last",
                              bias=True, act=None), id=_tid(dict(r, act=None)))
            for r in rows]


@pytest.fixture(scope="module")
def keras_tf():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"the grid is TensorFlow's; Keras runs on {keras.backend.backend()}")
    return keras


@pytest.mark.parametrize("cfg", _keras_grid())
def test_matches_keras_conv2d_transpose(cfg, rng, keras_tf):
    """Float32 against keras.layers.Conv2DTranspose (TensorFlow backend), whose
    kernel layout (KH, KW, filters, C_in) is ours."""
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    layer = keras_tf.layers.Conv2DTranspose(
        cfg["oc"], _pair(cfg["kernel"]), strides=_pair(cfg["strides"]), padding=cfg["padding"],
        output_padding=cfg["op"], dilation_rate=1, use_bias=True)
    layer.build((None,) + x.shape[1:])
    layer.set_weights([kernel, bias])
    theirs = np.asarray(layer(x))
    y = convpool.conv2d_transpose(x, kernel, bias, **kwargs)
    assert theirs.shape == y.shape == _expected_shape(cfg), (theirs.shape, y.shape)
    tol = transpose_tolerance(x, kernel, np.float32, bias=bias, **kwargs)
    assert_conv_close(y, theirs, tol, f"vs keras: {_tid(cfg)}")
