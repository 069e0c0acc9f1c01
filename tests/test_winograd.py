"""Winograd F(4x4, 3x3), forward and backward: its error bound against
float64, its bits (the same for any thread count, batch split, layout and
SIMD variant), the choice of ``algorithm="auto"``, the fallback on inf and
NaN, and the argument checks."""

import numpy as np
import pytest

import convpool
from convpool import Conv2D, reference
from convpool._kernels import _core

from _helpers import assert_bitwise_equal, forced_conv


def _layer(rng, n, h, w, c, oc, dtype=np.float32):
    """N(0, 1) inputs and Glorot-uniform weights (Keras's default init), with a bias."""
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    limit = np.sqrt(6.0 / (9 * c + 9 * oc))
    kernel = rng.uniform(-limit, limit, (3, 3, c, oc)).astype(dtype)
    bias = rng.uniform(-0.1, 0.1, oc).astype(dtype)
    return x, kernel, bias


def _error(y, ref):
    return float(np.abs(y - ref).max() / np.abs(ref).max())


# ---- accuracy --------------------------------------------------------------------------
@pytest.mark.parametrize("c, oc, hw", [(16, 16, 20), (32, 64, 16), (64, 64, 14), (128, 128, 10),
                                       (256, 256, 8), (512, 512, 6), (3, 32, 17), (64, 5, 9)])
def test_error_within_the_bound_against_float64(rng, c, oc, hw):
    """README's bound: max error <= 2e-5 of max|y| on N(0, 1) inputs with
    Glorot weights, from 16 to 512 channels, and at most 10x the direct
    algorithm's error on the same layer (both against a float64 oracle of
    the same float32 inputs)."""
    x, kernel, bias = _layer(rng, 2, hw, hw + 3, c, oc)
    ref = reference.conv2d(x.astype(np.float64), kernel.astype(np.float64),
                           bias.astype(np.float64), padding="same")
    wino = _error(convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd"), ref)
    direct = _error(convpool.conv2d(x, kernel, bias, padding="same", algorithm="direct"), ref)
    assert wino <= 2e-5, f"Winograd error {wino:.2e} of max|y|"
    assert wino <= 10 * direct, f"Winograd {wino:.2e} vs direct {direct:.2e}"


def test_float64_winograd_is_accurate_to_float64_rounding(rng):
    x, kernel, bias = _layer(rng, 1, 11, 9, 24, 20, np.float64)
    ref = reference.conv2d(x, kernel, bias, padding="same")
    y = convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
    assert _error(y, ref) < 1e-13


@pytest.mark.parametrize("h, w, padding", [(3, 3, "valid"), (5, 4, "valid"), (6, 6, "valid"),
                                           (1, 1, "same"), (2, 7, "same"), (9, 13, "same"),
                                           (7, 5, ((2, 0), (1, 2))), (4, 4, ((0, 2), (2, 0)))])
def test_every_tile_edge_and_padding(rng, h, w, padding):
    """Outputs that are not whole tiles, smaller than one tile, and asymmetric
    pads up to the kernel's span: float64 Winograd equals the reference."""
    x, kernel, bias = _layer(rng, 3, h, w, 5, 7, np.float64)
    ref = reference.conv2d(x, kernel, bias, padding=padding)
    y = convpool.conv2d(x, kernel, bias, padding=padding, algorithm="winograd")
    assert y.shape == ref.shape
    assert np.allclose(y, ref, rtol=0, atol=1e-13 * max(1.0, np.abs(ref).max()))


# ---- the bits ------------------------------------------------------------------------------
def test_bits_are_the_same_for_any_thread_count_batch_split_and_layout(rng):
    x, kernel, bias = _layer(rng, 5, 13, 18, 48, 40)
    kw = dict(padding="same", algorithm="winograd")
    try:
        results = []
        for threads in (1, 2, 3):
            convpool.set_num_threads(threads)
            results.append(convpool.conv2d(x, kernel, bias, **kw))
    finally:
        convpool.set_num_threads(None)
    for got in results[1:]:
        assert_bitwise_equal(got, results[0], "threads", what="1 vs 2, 3 threads")
    halves = np.concatenate([convpool.conv2d(x[:2], kernel, bias, **kw),
                             convpool.conv2d(x[2:], kernel, bias, **kw)])
    assert_bitwise_equal(halves, results[0], "batch split", what="split vs whole")
    nchw = convpool.conv2d(x.transpose(0, 3, 1, 2), kernel, bias, data_format="channels_first",
                           **kw)
    assert_bitwise_equal(nchw.transpose(0, 2, 3, 1), results[0], "layout", what="NCHW vs NHWC")


def test_simd_variants_give_the_same_bits(rng):
    """AVX2 and AVX-512 compute every transform by the same expressions and
    every product by fused multiply-adds in channel order: identical output
    (the baseline's GEMM rounds separately, as on the direct path)."""
    x, kernel, bias = _layer(rng, 2, 10, 21, 40, 33)
    old = _core.isa_selected()
    out = {}
    try:
        for name in ("avx2", "avx512"):
            if name in _core.isa_names() and _core.isa_supported(name):
                _core.isa_select(name)
                out[name] = convpool.conv2d(x, kernel, bias, padding="same",
                                            algorithm="winograd")
    finally:
        _core.isa_select(old)
    if len(out) < 2:
        pytest.skip("this CPU runs one SIMD variant only")
    assert_bitwise_equal(out["avx512"], out["avx2"], "isa", what="AVX-512 vs AVX2")


# ---- the kept kernel transforms --------------------------------------------------------
def _fresh(x, kernel, bias, **kw):
    """The Winograd result with no kept transform to reuse."""
    _core.winograd_cache_clear()
    return convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd", **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_kept_transform_is_used_only_for_the_same_kernel_bytes(rng, dtype):
    """A kernel's transform is kept between calls and reused when a later
    call's kernel has the same bytes (another array too); a kernel changed in
    place (a training step) or another one of the same shape gets its own
    transform: every result equals the one computed with nothing kept."""
    x, kernel, bias = _layer(rng, 2, 9, 11, 16, 24, dtype)
    want = _fresh(x, kernel, bias)
    assert _core.winograd_cache_bytes() > 0
    again = convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
    assert_bitwise_equal(again, want, "same kernel", what="kept transform")
    copy = convpool.conv2d(x, kernel.copy(), bias, padding="same", algorithm="winograd")
    assert_bitwise_equal(copy, want, "copied kernel", what="kept transform")
    kernel[1, 2, 3, 4] += 1  # in place, as an optimizer step
    changed = convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
    assert_bitwise_equal(changed, _fresh(x, kernel, bias), "changed kernel", what="repacked")
    assert not np.array_equal(changed, want)
    other = rng.uniform(-0.1, 0.1, kernel.shape).astype(dtype)
    assert_bitwise_equal(convpool.conv2d(x, other, bias, padding="same", algorithm="winograd"),
                         _fresh(x, other, bias), "another kernel", what="repacked")


def test_kept_transforms_follow_the_isa(rng, simd_isas):
    """Each SIMD variant packs its own panels (the key holds the ISA)."""
    x, kernel, bias = _layer(rng, 1, 8, 8, 32, 40)
    old = _core.isa_selected()
    try:
        results = []
        for name in simd_isas:
            _core.isa_select(name)
            results.append(convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd"))
            results.append(convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd"))
    finally:
        _core.isa_select(old)
    for got in results[1:]:
        assert_bitwise_equal(got, results[0], "ISA", what="kept transform across ISAs")


def test_buffer_cache_off_keeps_no_transform(rng):
    """set_buffer_cache(0) drops every kept transform and keeps none after."""
    x, kernel, bias = _layer(rng, 1, 8, 8, 32, 40)
    convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
    assert _core.winograd_cache_bytes() > 0
    before = convpool.get_buffer_cache()["max_bytes"]
    try:
        convpool.set_buffer_cache(0)
        assert _core.winograd_cache_bytes() == 0
        convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
        assert _core.winograd_cache_bytes() == 0
    finally:
        convpool.set_buffer_cache(before)


def test_fused_relu_is_max_of_the_unfused_output(rng):
    x, kernel, bias = _layer(rng, 2, 9, 9, 16, 24)
    y = convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
    relu = convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd",
                           activation="relu")
    assert_bitwise_equal(relu, np.maximum(y, 0), "relu", what="fused vs max(0, y)")


@pytest.mark.parametrize("where", ["x", "kernel"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_inf_and_nan_get_the_direct_result(rng, where, value):
    """An inf or NaN would spread through a tile's transforms to outputs whose
    window holds none: such calls are recomputed by the direct algorithms."""
    x, kernel, bias = _layer(rng, 1, 12, 12, 16, 16)
    (x if where == "x" else kernel)[(0, 5, 5, 3) if where == "x" else (1, 1, 3, 5)] = value
    y = convpool.conv2d(x, kernel, bias, padding="same", algorithm="winograd")
    direct = convpool.conv2d(x, kernel, bias, padding="same", algorithm="direct")
    assert_bitwise_equal(y, direct, (where, value), what="Winograd with inf/NaN vs direct")
    if where == "x":
        assert np.isfinite(y[0, 0]).all()  # far from the bad pixel


def test_overflow_in_the_transforms_falls_back_to_direct(rng):
    x, kernel, bias = _layer(rng, 1, 8, 8, 16, 16)
    x *= np.float32(3e37)  # finite products; the transforms' sums overflow
    with np.errstate(over="ignore"):
        y = convpool.conv2d(x, kernel, None, padding="same", algorithm="winograd")
        direct = convpool.conv2d(x, kernel, None, padding="same", algorithm="direct")
    assert_bitwise_equal(y, direct, "overflow", what="Winograd overflow vs direct")


# ---- the choice and the arguments ---------------------------------------------------------
@pytest.mark.parametrize("shape, kernel, kw, dtype, expected", [
    ((1, 16, 16, 32), (3, 3, 32, 32), dict(padding="same"), np.float32, "winograd"),
    ((1, 16, 40, 32), (3, 3, 32, 32), dict(padding="same"), np.float64, "rows"),
    ((1, 16, 40, 8), (3, 3, 8, 32), dict(padding="same"), np.float32, "rows"),
    ((1, 16, 40, 32), (3, 3, 32, 8), dict(padding="same"), np.float32, "rows"),
    ((1, 3, 40, 32), (3, 3, 32, 32), dict(padding="same"), np.float32, "rows"),
    ((1, 16, 64, 32), (3, 3, 32, 32), dict(strides=2, padding="same"), np.float32, "rows"),
    ((1, 16, 40, 32), (5, 5, 32, 32), dict(padding="same"), np.float32, "rows"),
    ((1, 16, 16, 32), (3, 3, 32, 32), dict(padding="same", algorithm="direct"), np.float32,
     "gather"),
    ((1, 16, 16, 32), (3, 3, 32, 32), dict(padding="same", algorithm="winograd"), np.float64,
     "winograd"),
])
def test_auto_takes_winograd_by_geometry_and_dtype(shape, kernel, kw, dtype, expected):
    plan = convpool.conv2d_plan(np.empty(shape, dtype), np.empty(kernel, dtype), **kw)
    assert plan["algorithm"] == expected
    assert plan["exact"] == (expected != "winograd")


def test_auto_runs_the_planned_algorithm(rng):
    x, kernel, bias = _layer(rng, 2, 12, 12, 32, 32)
    assert_bitwise_equal(convpool.conv2d(x, kernel, bias, padding="same"),
                         forced_conv(x, kernel, bias, "winograd", padding="same"), "auto",
                         what="auto vs forced Winograd")


@pytest.mark.parametrize("kw, match", [
    (dict(strides=2), r"strides=\(2, 2\)"),
    (dict(dilation_rate=2), r"dilation_rate=\(2, 2\)"),
    (dict(groups=2), "groups=2"),
    (dict(padding="same", padding_mode="reflect"), "padding_mode='reflect'"),
])
def test_winograd_refuses_what_it_cannot_compute(rng, kw, match):
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4 // kw.get("groups", 1), 4)).astype(np.float32)
    before = x.copy()
    with pytest.raises(ValueError, match=match):
        convpool.conv2d(x, kernel, algorithm="winograd", **kw)
    with pytest.raises(ValueError, match=match):
        convpool.conv2d_backward(np.zeros((1, 8, 8, 4), np.float32), x, kernel,
                                 algorithm="winograd", **kw)
    assert np.array_equal(x, before)


def test_winograd_refuses_other_kernel_sizes_and_unknown_algorithms(rng):
    x = np.zeros((1, 8, 8, 4), np.float32)
    with pytest.raises(ValueError, match=r"kernel_size=\(5, 5\)"):
        convpool.conv2d(x, np.zeros((5, 5, 4, 4), np.float32), algorithm="winograd")
    for bad in ("fft", "rows", None, 3):
        with pytest.raises(ValueError, match="algorithm must be one of"):
            convpool.conv2d(x, np.zeros((3, 3, 4, 4), np.float32), algorithm=bad)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        convpool.conv2d_plan(x, np.zeros((3, 3, 4, 4), np.float32), algorithm="fast")


# ---- the backward pass and the layer --------------------------------------------------------
@pytest.mark.parametrize("n, h, w, c, oc, padding", [
    (2, 12, 11, 32, 48, "same"), (3, 9, 14, 16, 20, "valid"), (1, 5, 5, 17, 33, "same"),
    (40, 16, 16, 24, 24, ((1, 0), (2, 1))), (64, 32, 32, 32, 32, "same"),
])
def test_backward_by_winograd_within_the_bound(rng, n, h, w, c, oc, padding):
    """grad_x of a 3x3 stride-1 conv is a 3x3 stride-1 conv, and the kernel
    gradient sums V_e^T dM_e over the tiles: both by Winograd, within 2e-5 of
    max|grad| against float64 (the kernel gradient's sum runs over up to 256
    tiles per pass; (64, 32, 32, 32) takes 16 passes); grad_bias is summed
    directly, within float32 rounding."""
    x, kernel, _ = _layer(rng, n, h, w, c, oc)
    oh, ow = convpool.conv2d(x[:1], kernel, padding=padding).shape[1:3]
    gy = rng.standard_normal((n, oh, ow, oc)).astype(np.float32)
    wino = convpool.conv2d_backward(gy, x, kernel, padding=padding, algorithm="winograd")
    direct = convpool.conv2d_backward(gy, x, kernel, padding=padding, algorithm="direct")
    ref = reference.conv2d_backward(gy.astype(np.float64), x.astype(np.float64),
                                    kernel.astype(np.float64), padding=padding)
    assert _error(wino[0], ref[0]) <= 2e-5
    assert _error(wino[1], ref[1]) <= 2e-5
    assert _error(wino[2], ref[2]) <= 2e-6
    assert not np.array_equal(wino[1], direct[1])  # another algorithm did run
    auto = convpool.conv2d_backward(gy, x, kernel, padding=padding)
    for a, b in zip(auto, wino):
        assert_bitwise_equal(a, b, "auto", what="auto vs winograd backward")


def test_backward_bits_are_the_same_for_any_thread_count_layout_and_simd_variant(rng):
    # 20 images of 16 tiles: three passes of the kernel gradient (128 tiles
    # each for 24 -> 40 channels, the last one partial); 40 output channels
    # fill the AVX2 and AVX-512 panels differently.
    x, kernel, _ = _layer(rng, 20, 14, 13, 24, 40)
    gy = rng.standard_normal((20, 14, 13, 40)).astype(np.float32)
    kw = dict(padding="same", algorithm="winograd")
    try:
        results = []
        for threads in (1, 2, 3):
            convpool.set_num_threads(threads)
            results.append(convpool.conv2d_backward(gy, x, kernel, **kw))
    finally:
        convpool.set_num_threads(None)
    nchw = convpool.conv2d_backward(gy.transpose(0, 3, 1, 2), x.transpose(0, 3, 1, 2), kernel,
                                    data_format="channels_first", **kw)
    results.append((nchw[0].transpose(0, 2, 3, 1), nchw[1], nchw[2]))
    old = _core.isa_selected()
    try:
        for name in ("avx2", "avx512"):
            if name != old and name in _core.isa_names() and _core.isa_supported(name):
                _core.isa_select(name)
                results.append(convpool.conv2d_backward(gy, x, kernel, **kw))
    finally:
        _core.isa_select(old)
    for got in results[1:]:
        for a, b, what in zip(got, results[0], ("grad_x", "grad_kernel", "grad_bias")):
            assert_bitwise_equal(a, b, "backward", what=what)


@pytest.mark.parametrize("where", ["x", "grad_out"])
def test_backward_inf_and_nan_get_the_direct_kernel_gradient(rng, where):
    x, kernel, _ = _layer(rng, 2, 10, 10, 16, 16)
    gy = rng.standard_normal((2, 10, 10, 16)).astype(np.float32)
    (x if where == "x" else gy)[1, 4, 4, 3] = np.inf
    wino = convpool.conv2d_backward(gy, x, kernel, padding="same", algorithm="winograd",
                                    input_grad=False)
    direct = convpool.conv2d_backward(gy, x, kernel, padding="same", algorithm="direct",
                                      input_grad=False)
    assert_bitwise_equal(wino[1], direct[1], where, what="grad_kernel with an inf")


def test_conv2d_layer_takes_the_algorithm(rng):
    x, _, _ = _layer(rng, 2, 10, 10, 16, 16)
    layers = {a: Conv2D(16, 3, padding="same", algorithm=a, seed=0) for a in
              ("auto", "direct", "winograd")}
    out = {a: layer(x) for a, layer in layers.items()}
    assert_bitwise_equal(out["auto"], out["winograd"], "layer", what="auto vs winograd")
    assert not np.array_equal(out["auto"], out["direct"])
    assert layers["direct"].get_config()["algorithm"] == "direct"
    clone = Conv2D.from_config(layers["winograd"].get_config())
    assert clone.algorithm == "winograd"
    with pytest.raises(ValueError, match="strides=\\(2, 2\\)"):
        Conv2D(16, 3, strides=2, algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        Conv2D(16, 3, algorithm="fast")
