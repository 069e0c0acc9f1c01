"""Shape arithmetic: the only place where window sizes, padding and output sizes are computed.

Every other module (the fast functions, the reference, the layers and the
``summary`` table) asks this module, so conv and pooling share one output-size
formula and one reading of ``padding``:

    out = (n + p0 + p1 - ((k - 1) * d + 1)) // s + 1

``padding`` is turned into explicit ``(top, bottom, left, right)`` integers here;
the kernels never see ``"same"`` or ``"valid"``.  ``"same"`` follows
TensorFlow: ``out = ceil(n / s)`` and the odd extra pad goes to the bottom/right.

All arithmetic is on Python ints, so nothing overflows however large the
arguments are; the results are range-checked against int64 before a kernel
sees them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, SupportsIndex, TypeAlias, Union, cast

import numpy as np
from numpy.typing import NDArray

from ._checks import INT64_MAX, check_int

__all__ = [
    "IntPair",
    "Padding",
    "Window2D",
    "as_pair",
    "effective_size",
    "output_length",
    "resolve_padding",
    "window_2d",
    "data_gradient_padding",
    "receptive_field_step",
    "PADDING_MODES",
    "check_padding_mode",
    "padding_mode_name",
    "padded_source",
    "adaptive_windows",
    "unpool_output_size",
    "adaptive_output_size",
    "TransposeWindow2D",
    "transpose_window_2d",
    "transpose_receptive_field_step",
]

#: Extra text for error messages (the shapes a call received): a string, or a
#: function giving it, so that a call that raises nothing formats nothing.
Context: TypeAlias = Union[str, Callable[[], str]]


def _suffix(context: Context) -> str:
    """`` (context)`` for an error message, or "" for no context."""
    text = context() if callable(context) else context
    return f" ({text})" if text else ""


#: What :func:`as_pair` accepts: one int for both axes, or ``(height, width)``
#: (a tuple, list, range or 1-D integer array of two ints).
IntPair: TypeAlias = Union[SupportsIndex, Sequence[SupportsIndex], NDArray[np.integer[Any]]]

#: What :func:`resolve_padding` accepts: ``"valid"`` or ``"same"`` (any case),
#: an int, ``(ph, pw)``, or ``((top, bottom), (left, right))``.
Padding: TypeAlias = Union[str, IntPair, Sequence[Sequence[SupportsIndex]]]


def _one_int(value: object, name: str) -> int:
    """One element of an int-or-pair argument; the range is checked on the pair."""
    return check_int(value, name, minimum=None, requirement="an int or a pair of ints")


def as_pair(value: IntPair, name: str, *, minimum: int | None = 1) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a ``(height, width)`` pair.

    Parameters
    ----------
    value : int or sequence of 2 ints
        One value for both axes, or ``(height, width)``.
    name : str
        The argument's public name, quoted in error messages.
    minimum : int or None
        Smallest allowed value (1 for strides, sizes and dilation; 0 for
        padding; None for no check).

    Returns
    -------
    (int, int)
    """
    if isinstance(value, (str, bytes, Mapping, set)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = tuple(value.tolist())
    elif not isinstance(value, (tuple, list)) and hasattr(value, "__len__") and not hasattr(
        value, "__index__"
    ):
        value = tuple(value)  # another sequence, e.g. a range
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be an int or a pair of ints, got {value!r} "
                f"with {len(value)} elements"
            )
        pair = (_one_int(value[0], name), _one_int(value[1], name))
    else:
        v = _one_int(value, name)
        pair = (v, v)
    if minimum is not None and min(pair) < minimum:
        word = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {word}, got {value!r}")
    return pair


def effective_size(k: int, d: int) -> int:
    """Extent of a window of ``k`` taps spaced ``d`` apart: ``(k - 1) * d + 1``."""
    return (k - 1) * d + 1


def output_length(n: int, k: int, s: int, d: int, p0: int, p1: int,
                  ceil_mode: bool = False) -> int:
    """Number of window positions along one axis (may be < 1: the caller raises).

    Parameters
    ----------
    n : int
        Input length.
    k, s, d : int
        Window taps, stride and dilation (all >= 1).
    p0, p1 : int
        Padding before and after (>= 0).
    ceil_mode : bool
        Round the last, partial step up (PyTorch's pooling ceil_mode), but
        drop a window that would start in the padding after the input.
    """
    span = n + p0 + p1 - effective_size(k, d)
    if not ceil_mode or span < 0:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= n + p0 else out


def resolve_padding(
    padding: Padding, in_hw: tuple[int, int], window_hw: tuple[int, int], strides: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Turn any accepted ``padding`` form into ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : {"valid", "same"} or int or (int, int) or ((int, int), (int, int))
        ``"valid"``: no padding.  ``"same"``: TensorFlow's rule, so that
        ``out = ceil(n / s)``, the odd extra pad at the bottom/right.  An int
        pads all four sides; ``(ph, pw)`` pads top and bottom by ``ph``, left and
        right by ``pw``; ``((top, bottom), (left, right))`` is explicit.
    in_hw : (int, int)
        Input height and width.
    window_hw : (int, int)
        Effective window extent per axis (``effective_size(k, d)``).
    strides : (int, int)

    Returns
    -------
    (top, bottom, left, right) : tuple of 4 non-negative ints
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            pads = []
            for n, k, s in zip(in_hw, window_hw, strides):
                out = -(-n // s)  # ceil(n / s)
                total = max((out - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            return cast("tuple[int, int, int, int]", tuple(pads))
        raise ValueError(
            f"padding must be 'valid', 'same', an int, a pair (ph, pw) or "
            f"((top, bottom), (left, right)); got the string {padding!r}"
        )
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        sides = cast("Sequence[Sequence[SupportsIndex]]", padding)  # checked just above
        (top, bottom) = as_pair(sides[0], "padding", minimum=0)
        (left, right) = as_pair(sides[1], "padding", minimum=0)
        return (top, bottom, left, right)
    try:
        ph, pw = as_pair(cast(IntPair, padding), "padding", minimum=0)  # else TypeError
    except TypeError:
        raise TypeError(
            f"padding must be 'valid', 'same', an int, a pair (ph, pw) or "
            f"((top, bottom), (left, right)); got {padding!r}"
        ) from None
    except ValueError as err:
        if "must be >= 0" in str(err):
            raise ValueError(f"padding must be non-negative, got {padding!r}") from None
        raise
    return (ph, ph, pw, pw)


@dataclass(frozen=True)
class Window2D:
    """A fully resolved 2-D sliding-window geometry, all explicit ints.

    Attributes
    ----------
    kh, kw : int
        Window taps (kernel or pool size).
    sh, sw : int
        Strides.
    dh, dw : int
        Dilation (1 for pooling).
    pt, pb, pl, pr : int
        Padding top, bottom, left, right.
    oh, ow : int
        Output height and width (>= 1).
    xb, xr : int
        Rows (columns) past the bottom (right) padding that the last windows
        reach with pooling's ``ceil_mode``: never real cells, never counted.
    """

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    oh: int
    ow: int
    xb: int = 0
    xr: int = 0


#: Windows resolved before, by their arguments when those are plain Python
#: ints, strings and tuples of them (by their repr when they hold lists), so
#: bools, NumPy scalars and arrays always take the checks.  Only valid
#: geometries are stored; a bad one raises each time.
_WINDOWS: dict[object, Window2D] = {}
_MAX_WINDOWS = 512


def window_2d(
    in_hw: tuple[int, int],
    window: IntPair,
    strides: IntPair,
    padding: Padding,
    dilation_rate: IntPair = 1,
    *,
    window_name: str = "kernel_size",
    context: Context = "",
    max_pad: tuple[int, int] | None = None,
    ceil_mode: bool = False,
) -> Window2D:
    """Resolve a sliding window over an ``(H, W)`` input; raise on anything invalid.

    Parameters
    ----------
    in_hw : (int, int)
        Input height and width.
    window : int or (int, int)
        Window taps per axis (kernel size or pool size).
    strides, dilation_rate : int or (int, int)
        Positive.
    padding :
        Any form accepted by :func:`resolve_padding`.
    window_name : str
        Public name of ``window`` for error messages.
    context : str or callable
        Extra text for error messages (the shapes received), or a function
        returning it, called only to raise.
    max_pad : (int, int) or None
        Largest pad allowed per axis (pooling: pool size - 1).
    ceil_mode : bool
        Pooling's ceil_mode (PyTorch's rule): count a last, partial window
        too, unless it would start in the bottom (right) padding.

    Returns
    -------
    Window2D
        Cached: a layer called on batches of one shape resolves its window
        once, and a repeated call skips the checks it already passed.
    """
    args = (in_hw, window, strides, padding, dilation_rate, max_pad, ceil_mode)
    key: object = None
    if type(ceil_mode) is bool and _plain(args[:-1]):
        try:
            hash(args)
            key = args
        except TypeError:  # lists: their repr is their value
            key = repr(args)
    cached = _WINDOWS.get(key) if key is not None else None
    if cached is not None:
        return cached
    win = _window_2d(in_hw, window, strides, padding, dilation_rate, window_name=window_name,
                     context=context, max_pad=max_pad, ceil_mode=ceil_mode)
    if key is not None:
        if len(_WINDOWS) >= _MAX_WINDOWS:
            _WINDOWS.clear()
        _WINDOWS[key] = win
    return win


def _plain(value: object) -> bool:
    """Built of Python ints (not bools), strings, None, tuples and lists only:
    equal values of these types are the same argument, so the value is a key.
    (A bool, a float or a NumPy scalar equals an int, and hashes like one,
    but must take the checks.)"""
    t = type(value)
    if t is int or t is str or value is None:
        return True
    if t is tuple or t is list:
        return all(map(_plain, cast("tuple[object, ...]", value)))
    return False


def _window_2d(
    in_hw: tuple[int, int],
    window: IntPair,
    strides: IntPair,
    padding: Padding,
    dilation_rate: IntPair,
    *,
    window_name: str,
    context: Context,
    max_pad: tuple[int, int] | None,
    ceil_mode: bool = False,
) -> Window2D:
    """:func:`window_2d` without the cache."""
    kh, kw = as_pair(window, window_name)
    sh, sw = as_pair(strides, "strides")
    dh, dw = as_pair(dilation_rate, "dilation_rate")
    h, w = in_hw
    eh, ew = effective_size(kh, dh), effective_size(kw, dw)
    pt, pb, pl, pr = resolve_padding(padding, (h, w), (eh, ew), (sh, sw))
    if max_pad is not None:
        mh, mw = max_pad
        what = window_name if (eh, ew) == (kh, kw) else f"dilated {window_name} {(eh, ew)}"
        if max(pt, pb) > mh or max(pl, pr) > mw:
            raise ValueError(
                f"padding {padding!r} resolves to (top, bottom, left, right) = "
                f"{(pt, pb, pl, pr)}, but a pad may not exceed the {what} "
                f"minus one, {(mh, mw)}: such windows could see only padding{_suffix(context)}"
            )
    oh = output_length(h, kh, sh, dh, pt, pb, ceil_mode)
    ow = output_length(w, kw, sw, dw, pl, pr, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"the window does not fit: the padded input is "
            f"{(h + pt + pb, w + pl + pr)} (input {(h, w)}, padding (top, bottom, "
            f"left, right) = {(pt, pb, pl, pr)}) but the effective {window_name} is "
            f"{(eh, ew)} ({window_name} {(kh, kw)}, dilation_rate {(dh, dw)}, "
            f"strides {(sh, sw)}){_suffix(context)}"
        )
    for value in (pt, pb, pl, pr, h + pt + pb, w + pl + pr, sh, sw, eh, ew):
        if value > INT64_MAX // 2:
            raise ValueError(
                f"the window geometry is too large for 64-bit indexing: padding "
                f"{(pt, pb, pl, pr)}, strides {(sh, sw)}, dilation_rate {(dh, dw)}, "
                f"{window_name} {(kh, kw)}, input {(h, w)}{_suffix(context)}"
            )
    # A one-tap axis has no spacing to dilate: any dilation gives the same
    # window, so it is normalised to 1 (and never reaches a 64-bit kernel).
    if max_pad is not None and (dh > 1 or dw > 1):
        # Dilated pooling windows can fall between the cells: each must hold one.
        for axis, (n, k, s, d, p0, out) in enumerate(((h, kh, sh, dh, pt, oh),
                                                      (w, kw, sw, dw, pl, ow))):
            empty = _window_without_cell(n, k, s, d, p0, out)
            if empty is not None:
                raise ValueError(
                    f"window {empty} along {'HW'[axis]} holds no input cell: its "
                    f"{k} taps {d} apart start at {empty * s - p0} and the input has {n} "
                    f"(padding {(pt, pb, pl, pr)}, strides {(sh, sw)}, dilation_rate "
                    f"{(dh, dw)}, {window_name} {(kh, kw)}){_suffix(context)}"
                )
    xb = max((oh - 1) * sh + eh - (h + pt + pb), 0)
    xr = max((ow - 1) * sw + ew - (w + pl + pr), 0)
    dh, dw = (1 if kh == 1 else dh), (1 if kw == 1 else dw)
    return Window2D(kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, oh, ow, xb, xr)


#: conv2d's padding modes, PyTorch's names: what a tap outside the input reads.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def padding_mode_name(padding_mode: object) -> str:
    """``padding_mode`` in lower case if it is one of :data:`PADDING_MODES`, else ValueError."""
    if not isinstance(padding_mode, str) or padding_mode.lower() not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
                         f"got {padding_mode!r}")
    return padding_mode.lower()


def check_padding_mode(padding_mode: object, win: Window2D, in_hw: tuple[int, int],
                       context: Context = "") -> str:
    """``padding_mode`` normalised, after checking the pads ``win`` resolved allow it.

    "reflect" mirrors the input about its edge pixel (PyTorch's reflect,
    NumPy's ``np.pad(mode="reflect")``): each pad must be smaller than the
    input along its axis.  "circular" wraps around (``mode="wrap"``): each pad
    at most the input's size.  "replicate" repeats the edge pixel
    (``mode="edge"``): any pad, on a non-empty input.
    """
    mode = padding_mode_name(padding_mode)
    if mode == "zeros":
        return mode
    h, w = in_hw
    sides = f"(top, bottom, left, right) = {(win.pt, win.pb, win.pl, win.pr)}"
    for axis, n, pads in (("H", h, (win.pt, win.pb)), ("W", w, (win.pl, win.pr))):
        if mode == "replicate":
            if n == 0 and max(pads) > 0:
                raise ValueError(f"padding_mode='replicate' has no edge pixel to repeat: {axis} "
                                 f"is 0 and the padding is {sides}{_suffix(context)}")
            continue
        limit, rule = (n - 1, "smaller than") if mode == "reflect" else (n, "at most")
        if max(pads) > limit:
            raise ValueError(
                f"padding_mode={mode!r} needs each pad {rule} the input along its axis: "
                f"{axis} is {n} but the padding resolves to {pads} there ({sides}){_suffix(context)}"
            )
    return mode


def padded_source(i: int, n: int, mode: str) -> int:
    """The input index that index ``i`` (in ``[-pad, n + pad)``) of the padded axis
    reads under ``mode`` (not "zeros"), as :func:`check_padding_mode` allows it."""
    if 0 <= i < n:
        return i
    if mode == "reflect":
        return -i if i < 0 else 2 * (n - 1) - i
    if mode == "replicate":
        return 0 if i < 0 else n - 1
    return i + n if i < 0 else i - n  # circular


def _window_without_cell(n: int, k: int, s: int, d: int, p0: int, out: int) -> int | None:
    """The first of ``out`` windows (k taps d apart, stride s, window i starting
    at ``i*s - p0``) with no tap inside [0, n), or None; in closed form, so a
    huge padding or dilation costs no loop over the windows.

    Window i's first tap at or after 0 lies at its start when that is >= 0,
    else at ``start mod d`` (if a tap reaches 0 at all).  So a window is
    empty when all its taps lie before 0 (only from window 0 on, as starts
    grow), when it starts at or past n, or when it starts before 0 and
    ``start mod d >= n``: its taps jump over the whole input (d > n).
    """
    if out < 1 or n < 1:
        return 0 if out >= 1 else None
    if -p0 + (k - 1) * d < 0:
        return 0  # window 0's taps all lie before the input
    first = -(-(p0 + n) // s)  # the first window starting at or past n
    below = min(-(-p0 // s), out)  # windows 0 .. below-1 start before 0
    if d > n and below > 0:
        # (i*s - p0) mod d in [n, d): i*s mod d in [n + p0, d - 1 + p0] mod d.
        lo, hi = (n + p0) % d, (d - 1 + p0) % d
        i = _first_multiple_in(s, d, lo, hi) if lo <= hi else 0  # a wrapped range holds 0
        if i is not None and i < below:
            return i
    return first if first < out else None


def _first_multiple_in(a: int, m: int, lo: int, hi: int) -> int | None:
    """The smallest x >= 0 with ``lo <= (a*x) mod m <= hi`` (0 <= lo <= hi < m), or None.

    Euclid's recursion: if no multiple of a lies in [lo, hi] before the first
    wrap, a solution ``a*x - m*y`` in [lo, hi] needs ``(m*y) mod a`` in
    ``[-hi mod a, -lo mod a]``, the same problem on (m mod a, a); x grows
    with y, so the smallest y gives the smallest x.
    """
    a %= m
    if lo == 0:
        return 0
    if a == 0:
        return None
    x = -(-lo // a)
    if a * x <= hi:
        return x
    y = _first_multiple_in(m % a, a, a - hi % a, a - lo % a)
    if y is None:
        return None
    return -(-(lo + m * y) // a)


def data_gradient_padding(win: Window2D) -> tuple[int, int] | None:
    """The (top, left) padding that makes a conv's input gradient a forward conv.

    For stride 1, ``grad_x[i] = sum over a of grad_out[i + pt - a*dh] * W[a]``:
    the stride-1 convolution of ``grad_out`` with the kernel flipped (and its
    channel axes swapped), padded by ``dh*(KH-1) - pt`` on top and
    ``dh*(KH-1) - pb`` below (likewise the columns), whose output is H x W.
    Returns None when that is not a plain convolution: a stride above 1, or
    a pad wider than the dilated kernel (a negative pad).
    """
    if (win.sh, win.sw) != (1, 1):
        return None
    span_h, span_w = win.dh * (win.kh - 1), win.dw * (win.kw - 1)
    if max(win.pt, win.pb) > span_h or max(win.pl, win.pr) > span_w:
        return None
    return span_h - win.pt, span_w - win.pl


def receptive_field_step(
    field: tuple[int, int], jump: tuple[int, int], win: Window2D
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Receptive field and jump after one more sliding-window layer.

    ``r_out = r_in + (effective_size - 1) * j_in`` and ``j_out = j_in * stride``,
    per axis, where ``j`` is the distance on the input between neighbouring
    outputs (the effective stride).

    Parameters
    ----------
    field, jump : (int, int)
        Receptive field and jump of the layer's input, on the network input.
    win : Window2D
        The layer's window.

    Returns
    -------
    (field, jump) : tuple of two (int, int)
    """
    eh, ew = effective_size(win.kh, win.dh), effective_size(win.kw, win.dw)
    new_field = (field[0] + (eh - 1) * jump[0], field[1] + (ew - 1) * jump[1])
    new_jump = (jump[0] * win.sh, jump[1] * win.sw)
    return new_field, new_jump


# ------------------------------------------------------------ transposed conv
@dataclass(frozen=True)
class TransposeWindow2D:
    """A fully resolved transposed-convolution geometry, all explicit ints.

    Input pixel ``i`` of an axis reaches the rows ``i*s + a*d`` (tap ``a < KH``)
    of the full output, ``(H - 1)*s + d*(KH - 1) + 1 + oph`` long (the last
    ``oph`` rows reached by no pixel); ``pt`` rows are then cropped from its
    top and ``pb`` from its bottom, so

        OH = (H - 1)*s - (pt + pb) + d*(KH - 1) + oph + 1.

    It is the adjoint (the input gradient) of the conv2d of stride s,
    dilation d and top padding pt from an (OH, OW) input to the (H, W) one.

    Attributes
    ----------
    kh, kw, sh, sw, dh, dw : int
        Kernel taps, strides, dilation.
    pt, pb, pl, pr : int
        Rows and columns cropped from the full output (>= 0).
    oph, opw : int
        Output padding: rows and columns added at the bottom and right.
    oh, ow : int
        Output height and width (>= 1).
    """

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    oph: int
    opw: int
    oh: int
    ow: int


def _keras_transpose_axis(
    mode: str, k: int, s: int, d: int, output_padding: int | None
) -> tuple[int, int, int]:
    """Keras 3's "valid" / "same" on one axis as (crop top, crop bottom, output padding).

    Keras pads the stride-dilated input by (left, right) before a full
    correlation; a pad of ``eff - 1`` is no crop, a smaller one crops the
    difference, a larger one adds rows that no pixel reaches.
    """
    eff = effective_size(k, d)
    if mode == "valid":
        # Without output_padding the output is (H - 1)*s + max(eff, s).
        return 0, 0, max(eff, s) - eff if output_padding is None else output_padding
    if output_padding is None:
        pad_len = s + eff - 2  # the output is H*s
    else:
        pad_len = eff + eff % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, eff - 1)
    right = pad_len - left
    return eff - 1 - left, max(eff - 1 - right, 0), max(right - (eff - 1), 0)


def transpose_window_2d(
    in_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: IntPair,
    padding: Padding,
    output_padding: IntPair | None,
    dilation_rate: IntPair = 1,
    *,
    context: Context = "",
) -> TransposeWindow2D:
    """Resolve a transposed convolution over an ``(H, W)`` input; raise on anything invalid.

    Parameters
    ----------
    in_hw : (int, int)
        Input height and width.
    kernel_hw : (int, int)
        Kernel taps per axis (>= 1).
    strides, dilation_rate : int or (int, int)
        Positive.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        ``"valid"`` and ``"same"`` follow Keras's Conv2DTranspose (output
        ``(H - 1)*s + max(eff, s)`` and ``H*s`` without output_padding);
        numbers follow PyTorch's ConvTranspose2d: rows and columns cropped
        from the full output.
    output_padding : None, int or (int, int)
        Rows (columns) added at the bottom (right), each smaller than
        ``max(stride, dilation)`` as in PyTorch.  None: 0 for numeric
        padding, Keras's default for "valid" / "same".
    context : str or callable
        As in :func:`window_2d`.

    Returns
    -------
    TransposeWindow2D
    """
    kh, kw = kernel_hw
    sh, sw = as_pair(strides, "strides")
    dh, dw = as_pair(dilation_rate, "dilation_rate")
    op = None if output_padding is None else as_pair(output_padding, "output_padding", minimum=0)
    if op is not None:
        for axis, (o, s, d) in enumerate(zip(op, (sh, sw), (dh, dw))):
            if o >= max(s, d):
                raise ValueError(
                    f"output_padding {op} must be smaller than the stride or the dilation "
                    f"on each axis; axis {axis} has output_padding {o}, strides {s}, "
                    f"dilation_rate {d}{_suffix(context)}"
                )
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("valid", "same"):
            resolve_padding(padding, in_hw, (1, 1), (1, 1))  # raises the usual message
        rows = _keras_transpose_axis(mode, kh, sh, dh, None if op is None else op[0])
        cols = _keras_transpose_axis(mode, kw, sw, dw, None if op is None else op[1])
        (pt, pb, oph), (pl, pr, opw) = rows, cols
    else:
        pt, pb, pl, pr = resolve_padding(padding, in_hw, (1, 1), (1, 1))
        oph, opw = op if op is not None else (0, 0)
    h, w = in_hw
    oh = (h - 1) * sh - (pt + pb) + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - (pl + pr) + dw * (kw - 1) + opw + 1
    if h < 1 or w < 1:
        raise ValueError(f"conv2d_transpose needs an input of at least 1x1, got {in_hw}{_suffix(context)}")
    if oh < 1 or ow < 1:
        raise ValueError(
            f"the output would be empty: {(oh, ow)} = (H - 1)*strides - (crop) + "
            f"dilation_rate*(kernel - 1) + output_padding + 1 for input {in_hw}, kernel "
            f"{kernel_hw}, strides {(sh, sw)}, dilation_rate {(dh, dw)}, padding "
            f"{padding!r} (crop top, bottom, left, right = {(pt, pb, pl, pr)}), "
            f"output_padding {(oph, opw)}{_suffix(context)}"
        )
    for value in (oh, ow, pt, pb, pl, pr, sh, sw, dh * kh, dw * kw):
        if value > INT64_MAX // 4:
            raise ValueError(
                f"the transposed convolution is too large for 64-bit indexing: output "
                f"{(oh, ow)}, padding {(pt, pb, pl, pr)}, strides {(sh, sw)}, "
                f"dilation_rate {(dh, dw)}, kernel {kernel_hw}{_suffix(context)}"
            )
    dh, dw = (1 if kh == 1 else dh), (1 if kw == 1 else dw)
    return TransposeWindow2D(kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, oph, opw, oh, ow)


def _transpose_span(k: int, s: int, d: int, p0: int) -> int:
    """The most input pixels apart (last minus first) that feed one output on an axis."""
    span = 0
    for r in range(s):  # output rows o with (o + p0) % s == r share their taps
        f = r + p0
        offsets = [(f - a * d) // s for a in range(k) if (f - a * d) % s == 0]
        if offsets:
            span = max(span, max(offsets) - min(offsets))
    return span


def transpose_receptive_field_step(
    field: tuple[Any, Any], jump: tuple[Any, Any], win: TransposeWindow2D
) -> tuple[tuple[Any, Any], tuple[Fraction, Fraction]]:
    """Receptive field and jump after a transposed convolution.

    Neighbouring outputs are ``1/s`` input pixels apart, so the jump is
    ``j_in / s`` (a fraction); an output sees up to ``span + 1`` input pixels,
    where ``span`` is the largest distance between two input pixels that feed
    it (over every output position), so ``r_out = r_in + span * j_in``.
    """
    span_h = _transpose_span(win.kh, win.sh, win.dh, win.pt)
    span_w = _transpose_span(win.kw, win.sw, win.dw, win.pl)
    new_field = (field[0] + span_h * jump[0], field[1] + span_w * jump[1])
    new_jump = (Fraction(jump[0]) / win.sh, Fraction(jump[1]) / win.sw)
    return new_field, new_jump


# ------------------------------------------------------------ adaptive pooling
#: The longest adaptive output axis allowed beyond the input's length (an
#: output longer than its input repeats cells; its windows are listed).
MAX_ADAPTIVE_UPSAMPLE = 2**16


def adaptive_output_size(output_size: object, in_hw: tuple[int, int],
                         context: str = "") -> tuple[int, int]:
    """``output_size`` (an int, a pair, None entries meaning the input's size) as (OH, OW)."""
    if output_size is None:
        raise TypeError("output_size must be an int or a pair of ints (or None entries), got None")
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        pair = tuple(in_hw[i] if v is None else v for i, v in enumerate(output_size))
    else:
        pair = output_size  # type: ignore[assignment]
    oh, ow = as_pair(cast(IntPair, pair), "output_size")
    h, w = in_hw
    if h < 1 or w < 1:
        raise ValueError(f"adaptive pooling needs an input of at least 1x1, got {in_hw}{_suffix(context)}")
    if oh > max(h, MAX_ADAPTIVE_UPSAMPLE) or ow > max(w, MAX_ADAPTIVE_UPSAMPLE):
        raise ValueError(
            f"output_size {(oh, ow)} is too large for an input of {in_hw}: an axis's output "
            f"may exceed its input only up to {MAX_ADAPTIVE_UPSAMPLE} (each output's window "
            f"is listed){_suffix(context)}")
    return oh, ow


def adaptive_windows(n: int, out: int) -> tuple[list[int], list[int]] | int:
    """PyTorch's adaptive windows on an axis of ``n`` cells split ``out`` ways.

    Window ``i`` is ``[floor(i*n/out), ceil((i+1)*n/out))``.  Returns the
    window (= stride) when ``out`` divides ``n`` (the windows then tile the
    axis: a plain pooling), else the lists of starts and ends.
    """
    if n % out == 0:
        return n // out
    starts = [(i * n) // out for i in range(out)]
    ends = [-((-(i + 1) * n) // out) for i in range(out)]
    return starts, ends


def unpool_output_size(
    in_hw: tuple[int, int], pool_size: IntPair, strides: IntPair | None, padding: IntPair,
    output_size: IntPair | None,
) -> tuple[int, int]:
    """max_unpool2d's (OH, OW): ``(H - 1)*s - 2*p + k``, or ``output_size`` when it
    lies strictly within ``s`` of that (PyTorch's rule)."""
    kh, kw = as_pair(pool_size, "pool_size")
    sh, sw = as_pair(strides, "strides") if strides is not None else (kh, kw)
    ph, pw = as_pair(padding, "padding", minimum=0)
    default = ((in_hw[0] - 1) * sh - 2 * ph + kh, (in_hw[1] - 1) * sw - 2 * pw + kw)
    if output_size is None:
        size = default
    else:
        size = as_pair(output_size, "output_size")
        for axis, (o, d, s) in enumerate(zip(size, default, (sh, sw))):
            if not d - s < o < d + s:
                raise ValueError(
                    f"output_size {size} must lie strictly within the stride {(sh, sw)} of "
                    f"the default size {default} on each axis (axis {axis} is {o})"
                )
    if min(size) < 1:
        raise ValueError(f"max_unpool2d's output would be empty: {size} for input {in_hw}, "
                         f"pool_size {(kh, kw)}, strides {(sh, sw)}, padding {(ph, pw)}")
    return size
