"""Type stub of ``convpool._kernels._core`` (compiled from _core.pyx).

Private: every kernel trusts its arguments (C-contiguous NHWC arrays of one
float dtype, valid geometry, ``y`` not overlapping the inputs);
``convpool.functional`` checks all of that first.  The kernels are Cython fused
functions over ``float`` and ``double``: every array of one call must be
float32, or every one float64.  They write their results into the ``y`` /
``gx`` / ``gk`` / ``gb`` arrays and return None.
"""

from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

ISA_NAMES: dict[str, int]
CONV_ALGORITHMS: tuple[str, ...]
EXACT_ALGORITHMS: tuple[str, ...]
CONV_CHOICES: dict[str, int]
PAD_MODES: dict[str, int]

def isa_names() -> tuple[str, ...]: ...
def isa_emulated(name: str) -> bool: ...
def conv_plan(
    n: int, h: int, w: int, c: int, kh: int, kw: int, oc: int, oh: int, ow: int,
    sh: int, sw: int, dh: int, dw: int, pt: int, pl: int, groups: int, itemsize: int,
    algorithm: str | None = None, pad_mode: int = 0,
) -> dict[str, Any]: ...
def gemm_shape(itemsize: int, kind: int) -> tuple[int, int]: ...
def gemm_ukernel(
    isa: str, kind: int, a: NDArray[_F], nseg: int, kseg: int, b: NDArray[_F], c: NDArray[_F],
    nr: int, bias: NDArray[_F] | None, relu: bool, stream: bool,
) -> None: ...

def compiler() -> str: ...
def openmp_enabled() -> bool: ...
def openmp_version() -> int: ...
def omp_max_threads() -> int: ...
def omp_set_max_threads(n: int) -> None: ...
def _set_stream_threshold(nbytes: int) -> int: ...
def _set_rows_prefetch_threshold(nbytes: int) -> int: ...
def winograd_cache_clear() -> None: ...
def winograd_cache_bytes() -> int: ...
def isa_supported(name: str) -> bool: ...
def isa_compiled(name: str) -> bool: ...
def isa_select(name: str) -> None: ...
def isa_selected() -> str: ...
def data_address(a: object) -> int: ...
def set_workspace_limit(nbytes: int) -> None: ...
def get_workspace_limit() -> int: ...
def last_workspace_bytes() -> int: ...
def workspace_stats() -> dict[str, int]: ...
def set_workspace_keep(max_bytes: int) -> None: ...
def conv2d_nhwc(
    x: NDArray[_F],
    kernel: NDArray[_F],
    bias: NDArray[_F] | None,
    y: NDArray[_F],
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    pt: int,
    pl: int,
    groups: int,
    n_threads: int,
    relu: bool = False,
    algorithm: str | None = None,
    op: str = "conv2d",
    pad_mode: int = 0,
) -> None: ...
def pool2d_nhwc(
    x: NDArray[_F],
    y: NDArray[_F],
    is_max: bool,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    count_include_pad: bool,
    n_threads: int,
    pb: int,
    pr: int,
    divisor: int,
    dh: int = 1,
    dw: int = 1,
) -> None: ...
def maxpool2d_direct_nhwc(
    x: NDArray[_F],
    y: NDArray[_F],
    idx: NDArray[np.int64] | None,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    pt: int,
    pl: int,
    n_threads: int,
) -> None: ...
def conv2d_wgrad_winograd_nhwc(
    gy: NDArray[_F],
    x: NDArray[_F],
    gk: NDArray[_F],
    gb: NDArray[_F],
    pt: int,
    pl: int,
    n_threads: int,
) -> None: ...
def conv2d_backward_nhwc(
    gy: NDArray[_F],
    x: NDArray[_F],
    kernel: NDArray[_F],
    gx: NDArray[_F] | None,
    gk: NDArray[_F] | None,
    gb: NDArray[_F] | None,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    pt: int,
    pl: int,
    groups: int,
    n_threads: int,
    dx_bias: NDArray[_F] | None = None,
    dx_relu: bool = False,
    op: str = "conv2d_backward",
) -> None: ...
def pool2d_backward_nhwc(
    x: NDArray[_F],
    gy: NDArray[_F],
    gx: NDArray[_F],
    is_max: bool,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pt: int,
    pl: int,
    count_include_pad: bool,
    n_threads: int,
    pb: int,
    pr: int,
    divisor: int,
    relu: bool = ...,
) -> None: ...
def relu_grad(gy: NDArray[_F], y: NDArray[_F], gx: NDArray[_F], n_threads: int) -> None: ...
def adam_update(
    w: NDArray[_F], g: NDArray[_F], m: NDArray[_F], v: NDArray[_F], b1: float, c1: float,
    b2: float, c2: float, eps: float, lr_t: float, n_threads: int
) -> None: ...
def normal_cdf(z: NDArray[np.float64], out: NDArray[np.float64], n_threads: int) -> None: ...
