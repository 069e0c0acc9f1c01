"""convpool._shapes: the one place with shape arithmetic.

Expected values are worked out by hand in the comments (TensorFlow's "same":
``out = ceil(n / s)``, ``total = max((out - 1) * s + k_eff - n, 0)``, the odd
extra pad at the bottom/right).
"""

from __future__ import annotations

import numpy as np
import pytest

import convpool
from convpool._shapes import (
    INT64_MAX,
    Window2D,
    as_pair,
    effective_size,
    output_length,
    receptive_field_step,
    resolve_padding,
    window_2d,
)


# ------------------------------------------------------------------ as_pair
@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param(3, (3, 3), id="int"),
        pytest.param((2, 5), (2, 5), id="tuple"),
        pytest.param([4, 1], (4, 1), id="list"),
        pytest.param(np.int64(7), (7, 7), id="np-int64"),
        pytest.param((np.int32(1), np.uint8(2)), (1, 2), id="tuple-of-np-ints"),
        pytest.param(np.array(3), (3, 3), id="0d-array"),
        pytest.param(range(2, 4), (2, 3), id="range"),
    ],
)
def test_as_pair_accepts(value, expected):
    got = as_pair(value, "strides")
    assert got == expected
    assert all(type(v) is int for v in got)


def test_as_pair_minimum_zero_and_none():
    assert as_pair(0, "padding", minimum=0) == (0, 0)
    assert as_pair((0, 3), "padding", minimum=0) == (0, 3)
    assert as_pair(-5, "offset", minimum=None) == (-5, -5)


@pytest.mark.parametrize(
    "value, exc, pattern",
    [
        pytest.param(0, ValueError, r"strides must be positive, got 0", id="zero"),
        pytest.param((1, -1), ValueError, r"strides must be positive.*\(1, -1\)", id="negative"),
        pytest.param((1, 2, 3), ValueError, r"strides .*3 elements", id="three"),
        pytest.param((1,), ValueError, r"strides .*1 elements", id="one"),
        pytest.param(1.0, TypeError, r"strides .*float", id="float"),
        pytest.param((1, 2.5), TypeError, r"strides", id="float-in-pair"),
        pytest.param(True, TypeError, r"strides .*bool", id="bool"),
        pytest.param((1, False), TypeError, r"strides .*bool", id="bool-in-pair"),
        pytest.param("2", TypeError, r"strides", id="str"),
        pytest.param(b"22", TypeError, r"strides", id="bytes"),
        pytest.param(None, TypeError, r"strides .*None", id="none"),
    ],
)
def test_as_pair_rejects(value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        as_pair(value, "strides")


def test_as_pair_accepts_a_two_element_array():
    # _shapes.as_pair's own comment: "A NumPy array or other sequence: accept exactly two ints."
    assert as_pair(np.array([1, 2]), "strides") == (1, 2)


def test_conv2d_accepts_array_strides():
    x = np.ones((1, 5, 5, 1), np.float32)
    k = np.ones((1, 1, 1, 1), np.float32)
    assert convpool.conv2d(x, k, strides=np.array([2, 1])).shape == (1, 3, 5, 1)


# --------------------------------------------------------- effective_size, output_length
@pytest.mark.parametrize(
    "k, d, expected", [(1, 1, 1), (1, 7, 1), (3, 1, 3), (3, 2, 5), (2, 3, 4), (5, 4, 17)]
)
def test_effective_size(k, d, expected):
    assert effective_size(k, d) == expected


@pytest.mark.parametrize(
    "n, k, s, d, p0, p1, expected",
    [
        (5, 3, 1, 1, 0, 0, 3),  # 5 - 3 + 1
        (5, 3, 2, 1, 0, 0, 2),  # (5 - 3) // 2 + 1
        (6, 3, 2, 1, 0, 0, 2),  # (6 - 3) // 2 + 1 = 2: the last column is dropped
        (7, 3, 2, 1, 0, 0, 3),
        (7, 3, 1, 2, 0, 0, 3),  # k_eff = 5
        (7, 2, 3, 3, 1, 2, 3),  # (7 + 3 - 4) // 3 + 1
        (1, 1, 5, 1, 0, 0, 1),  # stride larger than the input
        (4, 1, 5, 1, 0, 0, 1),
        (2, 3, 1, 1, 0, 0, 0),  # does not fit: < 1, the caller raises
        (2, 3, 1, 1, 1, 0, 1),
        (10**30, 1, 1, 1, 0, 0, 10**30),  # Python ints: no overflow
    ],
)
def test_output_length(n, k, s, d, p0, p1, expected):
    assert output_length(n, k, s, d, p0, p1) == expected


# ------------------------------------------------------------------ resolve_padding
@pytest.mark.parametrize(
    "in_hw, window_hw, strides, expected",
    [
        # n=5, k=3, s=1: out 5, total (5-1)*1 + 3 - 5 = 2 -> (1, 1)
        pytest.param((5, 5), (3, 3), (1, 1), (1, 1, 1, 1), id="n5-k3-s1"),
        # n=5, k=3, s=2: out 3, total 2*2 + 3 - 5 = 2 -> (1, 1)
        pytest.param((5, 5), (3, 3), (2, 2), (1, 1, 1, 1), id="n5-k3-s2"),
        # n=6, k=3, s=2: out 3, total 2*2 + 3 - 6 = 1 -> (0, 1): the extra pad goes bottom/right
        pytest.param((6, 6), (3, 3), (2, 2), (0, 1, 0, 1), id="n6-k3-s2"),
        # H: n=7, k=4, s=3: out 3, total 6 + 4 - 7 = 3 -> (1, 2);  W: n=6, k=3, s=2 -> (0, 1)
        pytest.param((7, 6), (4, 3), (3, 2), (1, 2, 0, 1), id="n7x6-k4x3-s3x2"),
        # even kernel, stride 1: n=4, k=2: total 1 -> (0, 1)
        pytest.param((4, 4), (2, 2), (1, 1), (0, 1, 0, 1), id="n4-k2-s1"),
        # kernel larger than the input: n=1, k=5: total 4 -> (2, 2)
        pytest.param((1, 1), (5, 5), (1, 1), (2, 2, 2, 2), id="n1-k5"),
        # stride > kernel: n=10, k=1, s=4: out 3, total 8 + 1 - 10 = -1 -> 0
        pytest.param((10, 10), (1, 1), (4, 4), (0, 0, 0, 0), id="n10-k1-s4"),
        # stride > kernel, non-zero: n=9, k=2, s=4: out 3, total 8 + 2 - 9 = 1 -> (0, 1)
        pytest.param((9, 9), (2, 2), (4, 4), (0, 1, 0, 1), id="n9-k2-s4"),
        # dilated effective window 5 (k=3, d=2), n=7, s=1: total 4 -> (2, 2);  W k_eff=1 -> 0
        pytest.param((7, 7), (5, 1), (1, 1), (2, 2, 0, 0), id="n7-keff5x1"),
    ],
)
def test_resolve_padding_same_matches_tensorflow(in_hw, window_hw, strides, expected):
    assert resolve_padding("same", in_hw, window_hw, strides) == expected
    assert resolve_padding("SAME", in_hw, window_hw, strides) == expected
    # ...and gives out = ceil(n / s) on both axes
    t, b, l, r = expected
    for n, k, s, p0, p1 in zip(in_hw, window_hw, strides, (t, l), (b, r)):
        assert output_length(n, k, s, 1, p0, p1) == -(-n // s)


@pytest.mark.parametrize(
    "padding, expected",
    [
        pytest.param("valid", (0, 0, 0, 0), id="valid"),
        pytest.param("Valid", (0, 0, 0, 0), id="Valid"),
        pytest.param(0, (0, 0, 0, 0), id="int0"),
        pytest.param(2, (2, 2, 2, 2), id="int"),
        pytest.param(np.int16(1), (1, 1, 1, 1), id="np-int"),
        pytest.param((1, 3), (1, 1, 3, 3), id="pair"),
        pytest.param([0, 2], (0, 0, 2, 2), id="pair-list"),
        pytest.param(((1, 2), (3, 4)), (1, 2, 3, 4), id="explicit"),
        pytest.param([[0, 1], [1, 0]], (0, 1, 1, 0), id="explicit-lists"),
    ],
)
def test_resolve_padding_explicit_forms(padding, expected):
    assert resolve_padding(padding, (9, 9), (3, 3), (1, 1)) == expected


@pytest.mark.parametrize(
    "padding, exc, pattern",
    [
        pytest.param("full", ValueError, r"padding must be 'valid', 'same'.*'full'", id="str"),
        pytest.param(-1, ValueError, r"padding must be non-negative, got -1", id="neg-int"),
        pytest.param((0, -2), ValueError, r"padding must be non-negative", id="neg-pair"),
        pytest.param(((0, -1), (0, 0)), ValueError, r"padding must be >= 0", id="neg-explicit"),
        pytest.param((1, 2, 3), ValueError, r"padding .*3 elements", id="triple"),
        pytest.param(((1, 2), (3,)), ValueError, r"padding .*1 elements", id="ragged"),
        pytest.param(1.5, TypeError, r"padding must be 'valid', 'same'.*1\.5", id="float"),
        pytest.param(None, TypeError, r"padding must be 'valid', 'same'.*None", id="none"),
        pytest.param(((1, 2), 3), TypeError, r"padding", id="mixed"),
        pytest.param(((True, 2), (3, 4)), TypeError, r"padding .*bool", id="bool"),
    ],
)
def test_resolve_padding_rejects(padding, exc, pattern):
    with pytest.raises(exc, match=pattern):
        resolve_padding(padding, (9, 9), (3, 3), (1, 1))


# ------------------------------------------------------------------ window_2d
def test_window_2d_resolves_everything():
    # H=7, k=3 (s=2): out 4, total 3*2 + 3 - 7 = 2 -> (1, 1)
    # W=5, k=2 d=2 -> k_eff 3, s=1: out 5, total 4 + 3 - 5 = 2 -> (1, 1)
    win = window_2d((7, 5), (3, 2), (2, 1), "same", (1, 2))
    assert win == Window2D(kh=3, kw=2, sh=2, sw=1, dh=1, dw=2,
                           pt=1, pb=1, pl=1, pr=1, oh=4, ow=5)


@pytest.mark.parametrize(
    "args, kwargs, exc, pattern",
    [
        pytest.param(((5, 5), (6, 2), 1, "valid", 1), {}, ValueError,
                     r"window does not fit.*padded input is \(5, 5\)"
                     r".*effective kernel_size is \(6, 2\)",
                     id="too-big"),
        pytest.param(((5, 5), (2, 2), 1, "valid", 5), {}, ValueError,
                     r"window does not fit.*\(6, 6\).*dilation_rate \(5, 5\)",
                     id="dilated-too-big"),
        pytest.param(((0, 5), (1, 1), 1, "valid", 1), {}, ValueError, r"window does not fit",
                     id="zero-height"),
        pytest.param(((5, 5), (3, 3), 0, "valid", 1), {}, ValueError, r"strides must be positive",
                     id="stride0"),
        pytest.param(((5, 5), (3, 3), 1, "valid", 0), {}, ValueError,
                     r"dilation_rate must be positive", id="dilation0"),
        pytest.param(((5, 5), 0, 1, "valid", 1), {"window_name": "pool_size"}, ValueError,
                     r"pool_size must be positive", id="size0"),
        pytest.param(((5, 5), (3, 2), 1, 2, 1), {"window_name": "pool_size", "max_pad": (2, 1)},
                     ValueError, r"pad may not exceed the pool_size minus one, \(2, 1\)",
                     id="pool-pad-too-big"),
        pytest.param(((5, 5), (1, 1), 2**62, "valid", 1), {}, ValueError, r"64-bit",
                     id="int64-overflow"),
    ],
)
def test_window_2d_errors(args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        window_2d(*args, **kwargs)


def test_window_2d_error_quotes_context():
    with pytest.raises(ValueError, match=r"\(x shape \(1, 2, 2, 3\)\)"):
        window_2d((2, 2), (3, 3), 1, "valid", context="x shape (1, 2, 2, 3)")


def test_window_2d_context_function_is_called_only_to_raise():
    calls = []

    def context():
        calls.append(1)
        return "x shape (1, 2, 2, 3)"

    window_2d((5, 5), (3, 3), 1, "valid", context=context)
    assert calls == []
    with pytest.raises(ValueError, match=r"\(x shape \(1, 2, 2, 3\)\)"):
        window_2d((2, 2), (3, 3), 1, "valid", context=context)
    assert calls == [1]


def test_window_2d_pool_same_never_exceeds_max_pad():
    # "same" needs total = (ceil(n/s) - 1) * s + k - n <= k - 1, so it is always allowed.
    checked = 0
    for n in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 6):
                win = window_2d((n, n), (k, k), (s, s), "same", max_pad=(k - 1, k - 1))
                assert max(win.pt, win.pb) <= k - 1
                assert win.oh == -(-n // s)
                checked += 1
    assert checked == 11 * 4 * 5


def test_window_2d_limit_is_int64():
    assert INT64_MAX == 2**63 - 1
    win = window_2d((5, 5), (1, 1), 2**40, "valid")
    assert (win.sh, win.oh) == (2**40, 1)


# --------------------------------------------------------------- receptive_field_step
def test_receptive_field_step_single_layer():
    win = window_2d((7, 5), (3, 2), (2, 1), "same", (1, 2))
    # k_eff (3, 3): field 1 + 2*1 = 3 on both axes; jump (2, 1)
    assert receptive_field_step((1, 1), (1, 1), win) == ((3, 3), (2, 1))


def test_receptive_field_step_chains():
    # conv 3x3 s1, pool 2x2 s2, conv 3x3 d2 s1: fields 3, 4, 4 + (5-1)*2 = 12; jumps 1, 2, 2
    field, jump = (1, 1), (1, 1)
    for win in (
        window_2d((32, 32), 3, 1, "same", 1),
        window_2d((32, 32), 2, 2, "valid", 1),
        window_2d((16, 16), 3, 1, "same", 2),
    ):
        field, jump = receptive_field_step(field, jump, win)
    assert (field, jump) == ((12, 12), (2, 2))


def test_receptive_field_step_non_square():
    win = Window2D(kh=1, kw=4, sh=3, sw=1, dh=1, dw=3, pt=0, pb=0, pl=0, pr=0, oh=1, ow=1)
    # H: k_eff 1 -> field stays 2, jump 2*3 = 6;  W: k_eff (4-1)*3+1 = 10 -> field 5 + 9*3 = 32
    assert receptive_field_step((2, 5), (2, 3), win) == ((2, 32), (6, 3))


def test_window_2d_cache_returns_the_checked_answer():
    """A repeated geometry comes from the cache; arguments the checks reject
    (a bool, a float) still raise after an equal-valued int was cached, and
    NumPy integers and arrays are resolved afresh with the same result."""
    first = window_2d((9, 7), 3, 2, "same", 1)
    assert window_2d((9, 7), 3, 2, "same", 1) is first
    assert window_2d((9, 7), (3, 3), (2, 2), "same", (1, 1)) == first
    assert window_2d((9, 7), np.int64(3), np.array([2, 2]), "same", 1) == first
    assert window_2d((9, 7), [3, 3], [2, 2], "same", [1, 1]) == first  # lists: keyed by repr
    assert window_2d((9, 7), [3, 3], [2, 2], "same", [1, 1]) == first
    with pytest.raises(TypeError):
        window_2d((9, 7), 3, True, "same", 1)
    with pytest.raises(TypeError):  # a bool inside a tuple equals 1 too
        window_2d((9, 7), 3, (2, 2), "same", (1, True))
    with pytest.raises((TypeError, ValueError)):
        window_2d((9, 7), 3, 2.0, "same", 1)
    with pytest.raises(ValueError, match="does not fit"):
        window_2d((2, 2), 5, 1, "valid", 1)
    with pytest.raises(ValueError, match="does not fit"):  # a bad geometry is never cached
        window_2d((2, 2), 5, 1, "valid", 1)


def _window_without_cell_by_loop(n, k, s, d, p0, out):
    for i in range(out):
        if not any(0 <= i * s - p0 + t * d < n for t in range(k)):
            return i
    return None


def test_window_without_cell_closed_form_matches_a_loop():
    """Every small geometry (dilation up to 9, beyond the input's length included)."""
    import itertools

    from convpool._shapes import _window_without_cell

    for n, k, s, d in itertools.product(range(1, 6), range(1, 4), range(1, 5), range(1, 10)):
        for p0 in range(0, d * (k - 1) + 3):
            for out in (1, 5, 17):
                assert (_window_without_cell(n, k, s, d, p0, out)
                        == _window_without_cell_by_loop(n, k, s, d, p0, out)), (n, k, s, d, p0, out)
