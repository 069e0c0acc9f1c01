"""The pooling options and padding modes against PyTorch, where it is installed.

PyTorch is not a test requirement: these tests skip without it (CI has no
torch).  They pin the claims of the README's "pooling options" and "padding
modes": values, indices, NaN rules and gradients equal to PyTorch's (float64,
maxima and indices exactly).  A run with ``torch==2.13.0`` (the CPU build)
passes them all.
"""

import itertools

import numpy as np
import pytest

import convpool

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _t(x_nhwc, grad=False):
    t = torch.tensor(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    return t.requires_grad_() if grad else t


def _n(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def _grad_of(y, x, g_nhwc):
    return _n(torch.autograd.grad(y, x, _t(g_nhwc))[0])


MAX_CASES = list(itertools.product((5, 8), (6, 9), (2, 3), (1, 2, 3), (0, 1), (1, 2), (False, True)))


@pytest.mark.parametrize("h, w, k, s, p, d, ceil", MAX_CASES)
def test_max_pool_values_indices_gradients(h, w, k, s, p, d, ceil, rng):
    x = rng.standard_normal((2, h, w, 3))
    x[1, 2, 3, 1] = np.nan
    x[0, 1, 1, 0] = x[0, 1, 2, 0] = 9.0  # a tie
    xt = _t(x, grad=True)
    try:
        yt, it = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    except RuntimeError:
        pytest.skip("PyTorch refuses this geometry")
    args = dict(strides=s, padding=p, dilation_rate=d, ceil_mode=ceil)
    y, idx = convpool.max_pool2d(x, k, return_indices=True, **args)
    np.testing.assert_array_equal(y, _n(yt))
    np.testing.assert_array_equal(idx, _n(it))
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(convpool.max_pool2d_backward(g, x, k, **args), _grad_of(yt, xt, g),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("divisor", [None, 3])
@pytest.mark.parametrize("cip", [False, True])
@pytest.mark.parametrize("h, w, k, s, p, ceil",
                         list(itertools.product((5, 8), (6, 9), (2, 3), (1, 2, 3), (0, 1), (False, True))))
def test_avg_pool_ceil_count_include_pad_divisor(h, w, k, s, p, ceil, cip, divisor, rng):
    x = rng.standard_normal((2, h, w, 3))
    xt = _t(x, grad=True)
    try:
        yt = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip,
                          divisor_override=divisor)
    except RuntimeError:
        pytest.skip("PyTorch refuses this geometry")
    args = dict(strides=s, padding=p, count_include_pad=cip, ceil_mode=ceil,
                divisor_override=divisor)
    np.testing.assert_allclose(convpool.avg_pool2d(x, k, **args), _n(yt), rtol=1e-13, atol=1e-15)
    g = rng.standard_normal(yt.shape).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(convpool.avg_pool2d_backward(g, x, k, **args), _grad_of(yt, xt, g),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("h, w, oh, ow", list(itertools.product((1, 7, 12), (3, 10), (1, 3, 5), (1, 4, 7))))
def test_adaptive_pools(h, w, oh, ow, rng):
    x = rng.standard_normal((2, h, w, 3))
    if h * w > 4:
        x[0, 0, 0, 0] = np.nan
    xt = _t(x, grad=True)
    ya = F.adaptive_avg_pool2d(xt, (oh, ow))
    ym, it = F.adaptive_max_pool2d(xt, (oh, ow), return_indices=True)
    np.testing.assert_allclose(convpool.adaptive_avg_pool2d(x, (oh, ow)), _n(ya), rtol=1e-13,
                               atol=1e-15)
    y, idx = convpool.adaptive_max_pool2d(x, (oh, ow), return_indices=True)
    np.testing.assert_array_equal(y, _n(ym))
    np.testing.assert_array_equal(idx, _n(it))
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(convpool.adaptive_avg_pool2d_backward(g, x, (oh, ow)),
                               _grad_of(ya, xt, g), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(convpool.adaptive_max_pool2d_backward(g, x, (oh, ow)),
                               _grad_of(ym, xt, g), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("p", [1, 2, 3.5])
@pytest.mark.parametrize("k, s", [(2, None), (3, 2), (3, 1)])
def test_lp_pool(k, s, p, ceil, rng):
    x = np.abs(rng.standard_normal((2, 8, 7, 3))) + 0.1
    xt = _t(x, grad=True)
    yt = F.lp_pool2d(xt, p, k, s, ceil_mode=ceil)
    np.testing.assert_allclose(convpool.lp_pool2d(x, p, k, s, ceil_mode=ceil), _n(yt), rtol=1e-12)
    g = rng.standard_normal(yt.shape).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(convpool.lp_pool2d_backward(g, x, p, k, s, ceil_mode=ceil),
                               _grad_of(yt, xt, g), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k, s, pad", list(itertools.product((2, 3), (1, 2, 3), (0, 1))))
def test_max_unpool(k, s, pad, rng):
    x = rng.standard_normal((2, 7, 9, 3))
    try:
        yt, it = F.max_pool2d(_t(x), k, s, pad, return_indices=True)
    except RuntimeError:
        pytest.skip("PyTorch refuses this geometry")
    y, idx = convpool.max_pool2d(x, k, s, pad, return_indices=True)
    for size in (None, (7, 9)):
        try:
            ut = F.max_unpool2d(yt, it, k, s, pad, output_size=size)
        except (RuntimeError, ValueError):
            with pytest.raises(ValueError):
                convpool.max_unpool2d(y, idx, k, s, pad, size)
            continue
        np.testing.assert_array_equal(convpool.max_unpool2d(y, idx, k, s, pad, size), _n(ut))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "zeros"])
@pytest.mark.parametrize("k, s, d, pad, groups",
                         list(itertools.product((1, 3, (3, 2)), (1, 2), (1, 2),
                                                (1, 2, ((2, 0), (1, 3))), (1, 2))))
def test_conv2d_padding_modes(mode, k, s, d, pad, groups, rng):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((2, 5, 6, 4))
    kernel = rng.standard_normal((kh, kw, 4 // groups, 6))
    b = rng.standard_normal(6)
    if isinstance(pad, tuple):
        (t_, b_), (l_, r_) = pad
    else:
        t_ = b_ = l_ = r_ = pad
    xt = _t(x, grad=True)
    wt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy()).requires_grad_()
    try:
        xp = F.pad(xt, (l_, r_, t_, b_), mode="constant" if mode == "zeros" else mode)
        yt = F.conv2d(xp, wt, torch.tensor(b), stride=s, dilation=d, groups=groups)
    except (RuntimeError, NotImplementedError):
        with pytest.raises(ValueError):
            convpool.conv2d(x, kernel, b, strides=s, padding=pad, dilation_rate=d,
                            groups=groups, padding_mode=mode)
        return
    args = dict(strides=s, padding=pad, dilation_rate=d, groups=groups, padding_mode=mode)
    np.testing.assert_allclose(convpool.conv2d(x, kernel, b, **args), _n(yt), rtol=1e-12,
                               atol=1e-12)
    g = rng.standard_normal(yt.shape).transpose(0, 2, 3, 1)
    gx, gk, _ = convpool.conv2d_backward(g, x, kernel, **args)
    tgx, tgk = torch.autograd.grad(yt, (xt, wt), _t(g))
    np.testing.assert_allclose(gx, _n(tgx), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(gk, tgk.numpy().transpose(2, 3, 1, 0), rtol=1e-11, atol=1e-11)
