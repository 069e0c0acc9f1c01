"""NaN and infinities in conv2d and its backward pass: IEEE's rules, exactly.

A sum of products is NaN when one of its terms is NaN (a NaN factor, or
``inf * 0``: a zero weight, a zero input, a padding zero or a zero gradient
meeting an infinity) or when +inf and -inf terms meet; it is an infinity when
its infinite terms all share that sign; else finite.

Each case below plants NaN and infinities where they meet zeros, other
infinities, dilation holes, group boundaries and the padding, with small
nonzero integers everywhere else (so every finite sum is exact).  Three
computations must agree on every element:

* a plain Python loop over every term (IEEE arithmetic on Python floats,
  nothing skipped): the definition;
* ``convpool.reference``, whose BLAS products once dropped NaN: OpenBLAS
  skips zero terms in some shapes (a grouped 1x1 conv with one channel per
  group, a gradient over one output pixel), and ``NaN * 0`` or ``inf * 0``
  came out as 0;
* convpool's kernels.

NaN, +inf and -inf must sit at the same positions in all three, and the
finite values must be equal.  Each case also states, worked out by hand, a
few elements it exists for.
"""

from __future__ import annotations

import numpy as np
import pytest

import convpool
from convpool import reference
from convpool._shapes import window_2d
from _helpers import case_id

DTYPES = (np.float32, np.float64)
NAN, INF = np.nan, np.inf

_GEOMETRY = dict(n=1, strides=1, padding="valid", dilation=1, groups=1)


def _case(tag, *, specials, expect, zeros=(), **geometry):
    """One configuration: its geometry, the values planted and the hand-worked facts.

    ``specials`` maps (array, index) to a value, written over the nonzero
    integers; ``zeros`` names the arrays filled with zeros instead;
    ``expect`` lists (result, index, kind), kind one of "nan", "+inf",
    "-inf" and "finite".
    """
    cfg = dict(_GEOMETRY, **geometry)
    return pytest.param(dict(cfg, specials=specials, zeros=zeros, expect=expect),
                        id=f"{tag}-" + case_id(**cfg))


FORWARD_CASES = [
    # A grouped 1x1 conv, one channel per group, every weight zero: NaN * 0 and
    # +-inf * 0 are NaN (the reference's BLAS product gave 0).
    _case("zero_kernel", n=2, h=3, w=3, c=4, oc=4, kernel=1, groups=4, zeros=("kernel",),
          specials={("x", (0, 1, 1, 2)): NAN, ("x", (1, 0, 2, 1)): INF,
                    ("x", (1, 2, 0, 3)): -INF},
          expect=[("y", (0, 1, 1, 2), "nan"), ("y", (1, 0, 2, 1), "nan"),
                  ("y", (1, 2, 0, 3), "nan"), ("y", (0, 1, 1, 1), "finite")]),
    # inf * 0 from a zero tap, and 0 * inf from the padding under an infinite tap.
    _case("inf_times_zero", h=5, w=5, c=2, oc=3, kernel=3, padding="same",
          specials={("x", (0, 2, 2, 0)): INF, ("kernel", (1, 1, 0, 1)): 0,
                    ("kernel", (2, 2, 0, 0)): 2, ("kernel", (0, 0, 1, 2)): INF},
          expect=[("y", (0, 2, 2, 1), "nan"),     # the inf under the zero centre tap
                  ("y", (0, 1, 1, 0), "+inf"),    # the inf under tap (2, 2), weight 2
                  ("y", (0, 0, 0, 2), "nan"),     # tap (0, 0) reads the padding: 0 * inf
                  ("y", (0, 4, 4, 1), "finite")]),
    # NaN times nonzero weights: every window holding it, in its group only,
    # and not the window whose dilation steps over it.
    _case("nan", n=2, h=6, w=5, c=4, oc=6, kernel=(3, 2), padding="same", dilation=(1, 2),
          groups=2, specials={("x", (1, 3, 2, 1)): NAN},
          expect=[("y", (1, 3, 1, 0), "nan"), ("y", (1, 3, 3, 2), "nan"),
                  ("y", (1, 3, 1, 3), "finite"),  # the other group
                  ("y", (1, 3, 2, 0), "finite")]),  # its taps read columns 1 and 3
    # +inf and -inf in one window: NaN; one of them alone: its infinity.
    _case("inf_minus_inf", h=2, w=5, c=1, oc=2, kernel=(1, 2),
          specials={("x", (0, 1, 2, 0)): INF, ("x", (0, 1, 3, 0)): -INF,
                    ("kernel", (0, 0, 0, 0)): 1, ("kernel", (0, 1, 0, 0)): 1,
                    ("kernel", (0, 0, 0, 1)): 1, ("kernel", (0, 1, 0, 1)): -1},
          expect=[("y", (0, 1, 2, 0), "nan"), ("y", (0, 1, 1, 0), "+inf"),
                  ("y", (0, 1, 3, 0), "-inf"),
                  ("y", (0, 1, 2, 1), "+inf"),    # inf * 1 + (-inf) * (-1)
                  ("y", (0, 1, 1, 1), "-inf"), ("y", (0, 0, 2, 0), "finite")]),
    _case("inf_minus_inf_channels", h=3, w=3, c=2, oc=1, kernel=1,
          specials={("x", (0, 1, 1, 0)): INF, ("x", (0, 1, 1, 1)): -INF,
                    ("kernel", (0, 0, 0, 0)): 1, ("kernel", (0, 0, 1, 0)): 3},
          expect=[("y", (0, 1, 1, 0), "nan"), ("y", (0, 0, 0, 0), "finite")]),
]

BACKWARD_CASES = [
    # Zero weights: grad_x = g * 0 is NaN under a NaN or infinite g; grad_kernel
    # and grad_bias sum every pixel.
    _case("zero_kernel", n=2, h=3, w=3, c=4, oc=4, kernel=1, groups=4, zeros=("kernel",),
          specials={("g", (0, 1, 1, 2)): NAN, ("g", (1, 0, 2, 1)): INF,
                    ("x", (1, 0, 2, 1)): 2, ("x", (0, 0, 0, 3)): NAN},
          expect=[("grad_x", (0, 1, 1, 2), "nan"), ("grad_x", (1, 0, 2, 1), "nan"),
                  ("grad_x", (0, 0, 0, 3), "finite"),
                  ("grad_kernel", (0, 0, 0, 2), "nan"), ("grad_kernel", (0, 0, 0, 1), "+inf"),
                  ("grad_kernel", (0, 0, 0, 3), "nan"), ("grad_kernel", (0, 0, 0, 0), "finite"),
                  ("grad_bias", (2,), "nan"), ("grad_bias", (1,), "+inf"),
                  ("grad_bias", (3,), "finite")]),
    # One output pixel, zero grad_out: grad_kernel = x * 0, NaN for a NaN or
    # infinite x (the reference's BLAS product gave 0).
    _case("zero_grad_out", h=1, w=1, c=8, oc=4, kernel=1, groups=4, zeros=("g",),
          specials={("x", (0, 0, 0, 2)): NAN, ("x", (0, 0, 0, 5)): INF},
          expect=[("grad_kernel", (0, 0, 0, 1), "nan"), ("grad_kernel", (0, 0, 1, 2), "nan"),
                  ("grad_kernel", (0, 0, 1, 1), "finite"), ("grad_x", (0, 0, 0, 2), "finite"),
                  ("grad_bias", (1,), "finite")]),
    # inf * 0 from a zero tap (grad_x) and from the padding (grad_kernel).
    _case("inf_times_zero", h=4, w=4, c=1, oc=2, kernel=3, padding="same",
          specials={("g", (0, 0, 0, 0)): INF, ("kernel", (1, 1, 0, 0)): 0,
                    ("x", (0, 0, 0, 0)): -1},
          expect=[("grad_x", (0, 0, 0, 0), "nan"),      # g inf under the zero centre tap
                  ("grad_kernel", (0, 0, 0, 0), "nan"),  # tap (0, 0) of pixel (0, 0): padding
                  ("grad_kernel", (1, 1, 0, 0), "-inf"),  # x = -1 times inf
                  ("grad_kernel", (0, 0, 0, 1), "finite"),
                  ("grad_bias", (0,), "+inf"), ("grad_x", (0, 3, 3, 0), "finite")]),
    # A NaN gradient times nonzero weights: its window in grad_x (its group's
    # channels), every tap of its output channel in grad_kernel, its bias.
    _case("nan", n=2, h=5, w=6, c=4, oc=4, kernel=(2, 3), strides=(2, 1), padding=1,
          groups=2, specials={("g", (1, 1, 2, 3)): NAN},
          expect=[("grad_x", (1, 1, 1, 2), "nan"), ("grad_x", (1, 2, 3, 3), "nan"),
                  ("grad_x", (1, 1, 1, 0), "finite"),  # the other group
                  ("grad_x", (1, 0, 1, 2), "finite"),  # above the window
                  ("grad_kernel", (0, 0, 0, 3), "nan"), ("grad_kernel", (1, 2, 1, 3), "nan"),
                  ("grad_kernel", (0, 0, 0, 2), "finite"),
                  ("grad_bias", (3,), "nan"), ("grad_bias", (2,), "finite")]),
    # +inf and -inf gradients meeting in grad_x, grad_kernel and grad_bias.
    _case("inf_minus_inf", h=1, w=4, c=1, oc=1, kernel=(1, 2),
          specials={("g", (0, 0, 0, 0)): INF, ("g", (0, 0, 1, 0)): -INF,
                    ("kernel", (0, 0, 0, 0)): 1, ("kernel", (0, 1, 0, 0)): 2,
                    ("x", (0, 0, 0, 0)): 1, ("x", (0, 0, 1, 0)): 2, ("x", (0, 0, 2, 0)): 3},
          expect=[("grad_x", (0, 0, 1, 0), "nan"),   # inf * 2 + (-inf) * 1
                  ("grad_x", (0, 0, 0, 0), "+inf"), ("grad_x", (0, 0, 2, 0), "-inf"),
                  ("grad_kernel", (0, 0, 0, 0), "nan"), ("grad_bias", (0,), "nan")]),
]


# Every pairing at once (NaN * inf, inf * inf, -inf * -inf, inf * padding, ...):
# in x, kernel and grad_out, one value in 20 is NaN, +inf or -inf and one in
# 10 is zero, at random, and x holds at least one NaN.
RANDOM_GEOMETRIES = [
    pytest.param(dict(_GEOMETRY, **g), id=case_id(**dict(_GEOMETRY, **g))) for g in (
        dict(n=2, h=3, w=4, c=5, oc=4, kernel=1),  # a plain matrix product
        dict(h=4, w=4, c=4, oc=6, kernel=3, padding="same", groups=2),
        dict(n=2, h=9, w=7, c=2, oc=2, kernel=2, strides=2, padding=1),
        dict(h=6, w=5, c=3, oc=3, kernel=(2, 3), dilation=(2, 1), groups=3),
    )
]
RANDOM_SEEDS = range(4)


# ----------------------------------------------------------------------- helpers
def _window(cfg):
    return window_2d((cfg["h"], cfg["w"]), cfg["kernel"], cfg["strides"], cfg["padding"],
                     cfg["dilation"])


def _nonzero_ints(rng, shape, dtype):
    """Integers in [-3, 3] without 0, so that only the planted values make zeros."""
    values = rng.integers(1, 4, size=shape) * rng.choice([-1, 1], size=shape)
    return values.astype(dtype)


def _shapes(cfg, *, backward):
    win = _window(cfg)
    shapes = {"x": (cfg["n"], cfg["h"], cfg["w"], cfg["c"]),
              "kernel": (win.kh, win.kw, cfg["c"] // cfg["groups"], cfg["oc"])}
    if backward:
        shapes["g"] = (cfg["n"], win.oh, win.ow, cfg["oc"])
    return shapes


def _arrays(cfg, dtype, rng, *, backward):
    """x, kernel (and grad_out when ``backward``) of the case, values planted."""
    arrays = {name: (np.zeros(shape, dtype) if name in cfg["zeros"]
                     else _nonzero_ints(rng, shape, dtype))
              for name, shape in _shapes(cfg, backward=backward).items()}
    for (name, index), value in cfg["specials"].items():
        arrays[name][index] = value
    return arrays


def _random_arrays(cfg, dtype, seed, *, backward):
    """Nonzero integers, with 5% NaN or +-inf and 10% zeros at random places (and a NaN in x)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in _shapes(cfg, backward=backward).items():
        a = _nonzero_ints(rng, shape, dtype)
        u = rng.random(shape)
        a[u < 0.05] = rng.choice([NAN, INF, -INF], size=int((u < 0.05).sum()))
        a[(u >= 0.05) & (u < 0.15)] = 0
        arrays[name] = a
    arrays["x"].flat[rng.integers(arrays["x"].size)] = NAN
    return arrays


def _conv_kwargs(cfg):
    return dict(strides=cfg["strides"], padding=cfg["padding"],
                dilation_rate=cfg["dilation"], groups=cfg["groups"])


def _taps(cfg, x_shape, kernel_shape, out_index):
    """The terms of output ``(b, i, j, o)``: ``(x index or None for padding, kernel index)``."""
    win = _window(cfg)
    _, h, w, _ = x_shape
    kh, kw, cg, oc = kernel_shape
    b, i, j, o = out_index
    first = (o // (oc // cfg["groups"])) * cg
    for a, t, ci in np.ndindex(kh, kw, cg):
        r = i * win.sh + a * win.dh - win.pt
        s = j * win.sw + t * win.dw - win.pl
        inside = 0 <= r < h and 0 <= s < w
        yield ((b, r, s, first + ci) if inside else None), (a, t, ci, o)


def _loop_conv2d(cfg, x, kernel):
    """conv2d by its definition: every term, in Python floats (IEEE, nothing skipped)."""
    win = _window(cfg)
    y = np.zeros((x.shape[0], win.oh, win.ow, kernel.shape[3]))
    for out in np.ndindex(y.shape):
        total = 0.0
        for xi, ki in _taps(cfg, x.shape, kernel.shape, out):
            total += (0.0 if xi is None else float(x[xi])) * float(kernel[ki])
        y[out] = total
    return {"y": y}


def _loop_conv2d_backward(cfg, g, x, kernel):
    """The three gradients by their definition, term by term in Python floats."""
    grad_x = {index: 0.0 for index in np.ndindex(x.shape)}
    grad_kernel = {index: 0.0 for index in np.ndindex(kernel.shape)}
    grad_bias = [0.0] * kernel.shape[3]
    for out in np.ndindex(g.shape):
        gv = float(g[out])
        grad_bias[out[3]] += gv
        for xi, ki in _taps(cfg, x.shape, kernel.shape, out):
            grad_kernel[ki] += (0.0 if xi is None else float(x[xi])) * gv
            if xi is not None:  # a padding cell's gradient is dropped
                grad_x[xi] += gv * float(kernel[ki])

    def array(values, shape):
        return np.array(list(values.values())).reshape(shape)

    return {"grad_x": array(grad_x, x.shape), "grad_kernel": array(grad_kernel, kernel.shape),
            "grad_bias": np.array(grad_bias)}


_KINDS = {"nan": np.isnan, "+inf": np.isposinf, "-inf": np.isneginf, "finite": np.isfinite}


def _assert_same(got, want, what, cfg):
    """NaN, +inf and -inf at the same positions, and the same finite values."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}; {cfg}"
    for kind in ("nan", "+inf", "-inf"):
        a, b = _KINDS[kind](got), _KINDS[kind](want)
        if not np.array_equal(a, b):
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            raise AssertionError(
                f"{what}: {kind} positions differ in {int((a != b).sum())} of {got.size} "
                f"elements; first at {idx}: got {got[idx]!r}, want {want[idx]!r}; {cfg}")
    finite = np.isfinite(want)
    assert np.array_equal(got[finite], want[finite]), f"{what}: finite values differ; {cfg}"


def _check(results, loops, cfg, impl):
    for name, want in loops.items():
        _assert_same(results[name], want, f"{impl} {name}", cfg)


def _check_expectations(loops, cfg):
    """The hand-worked facts of the case hold for the definition itself."""
    for name, index, kind in cfg["expect"]:
        value = loops[name][index]
        assert _KINDS[kind](value), f"{name}{index} is {value!r}, not {kind}; {cfg}"


def _forward_agrees(cfg, loops, x, kernel, dtype):
    """The reference and convpool's conv2d agree with the loop's result ``loops``."""
    with np.errstate(invalid="ignore"):
        ref = reference.conv2d(x, kernel, **_conv_kwargs(cfg))
    fast = convpool.conv2d(x, kernel, **_conv_kwargs(cfg))
    assert ref.dtype == fast.dtype == dtype
    _check({"y": ref}, loops, cfg, "reference")
    _check({"y": fast}, loops, cfg, "convpool")


def _backward_agrees(cfg, loops, g, x, kernel, dtype):
    """The reference and convpool's conv2d_backward agree with the loop's ``loops``."""
    names = ("grad_x", "grad_kernel", "grad_bias")
    with np.errstate(invalid="ignore"):
        ref = dict(zip(names, reference.conv2d_backward(g, x, kernel, **_conv_kwargs(cfg))))
    fast = dict(zip(names, convpool.conv2d_backward(g, x, kernel, **_conv_kwargs(cfg))))
    assert all(a.dtype == dtype for a in (*ref.values(), *fast.values()))
    _check(ref, loops, cfg, "reference")
    _check(fast, loops, cfg, "convpool")


# ------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", FORWARD_CASES)
def test_conv2d_nonfinite_follows_ieee(cfg, dtype, rng):
    arrays = _arrays(cfg, dtype, rng, backward=False)
    loops = _loop_conv2d(cfg, arrays["x"], arrays["kernel"])
    _check_expectations(loops, cfg)
    _forward_agrees(cfg, loops, arrays["x"], arrays["kernel"], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", BACKWARD_CASES)
def test_conv2d_backward_nonfinite_follows_ieee(cfg, dtype, rng):
    arrays = _arrays(cfg, dtype, rng, backward=True)
    g, x, kernel = arrays["g"], arrays["x"], arrays["kernel"]
    loops = _loop_conv2d_backward(cfg, g, x, kernel)
    _check_expectations(loops, cfg)
    _backward_agrees(cfg, loops, g, x, kernel, dtype)


@pytest.mark.parametrize("seed", RANDOM_SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", RANDOM_GEOMETRIES)
def test_conv2d_random_specials_follow_ieee(cfg, dtype, seed):
    x, kernel = (_random_arrays(cfg, dtype, seed, backward=False)[k] for k in ("x", "kernel"))
    loops = _loop_conv2d(cfg, x, kernel)
    y = loops["y"]
    assert np.isnan(y).any() and not np.isnan(y).all(), f"a vacuous case; {cfg}"
    _forward_agrees(cfg, loops, x, kernel, dtype)


@pytest.mark.parametrize("seed", RANDOM_SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", RANDOM_GEOMETRIES)
def test_conv2d_backward_random_specials_follow_ieee(cfg, dtype, seed):
    arrays = _random_arrays(cfg, dtype, seed, backward=True)
    g, x, kernel = arrays["g"], arrays["x"], arrays["kernel"]
    loops = _loop_conv2d_backward(cfg, g, x, kernel)
    assert any(np.isnan(v).any() for v in loops.values()), f"a vacuous case; {cfg}"
    _backward_agrees(cfg, loops, g, x, kernel, dtype)
