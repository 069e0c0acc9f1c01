"""Command line: ``python -m convpool validate`` and ``python -m convpool config``.

``validate`` runs the seed tutorial's full-HD example for real: a batch of
(64, 1920, 1080, 3) float32 frames through ``Conv2D(16, (5, 5), strides=5,
use_bias=False)`` and ``MaxPool2D(2)``, once with convpool's kernels and once
with ``convpool.reference``, and checks that they agree within a tolerance
derived from the reduction length.  Exit status 0 when they agree, 1 when they
do not, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._progress import Progress

SEED_SHAPE = (64, 1920, 1080, 3)


def _random_batch(shape: tuple[int, ...], seed: int, progress: Progress) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    x = np.empty(shape, dtype=np.float32)
    for start, stop in progress.chunks("generating input", shape[0], 1):
        x[start:stop] = rng.random((stop - start,) + tuple(shape[1:]), dtype=np.float32)
    return x


def _conv_tolerance(x_absmax: float, kernel: NDArray[Any]) -> NDArray[np.float64]:
    """Per output channel bound on |convpool - reference|.

    Each output is a sum of K = kh * kw * C_in products.  Summed in float32 in
    any order, its error is at most K * u * sum_k |x_k w_k| (u = 2**-24), and
    two such sums differ by at most twice that.  With |x_k| <= max|x| the bound
    for channel j is 2 * K * u * max|x| * sum_k |w_kj|.
    """
    k = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    u = np.finfo(np.float32).eps / 2
    w1 = np.abs(kernel.astype(np.float64)).reshape(k, -1).sum(axis=0)
    tol: NDArray[np.float64] = 2 * k * u * x_absmax * w1
    return tol


def validate(argv: Sequence[str] | None = None) -> int:
    import convpool
    from convpool import reference

    parser = argparse.ArgumentParser(
        prog="python -m convpool validate",
        description="Run the seed's full-HD batch through convpool and the NumPy "
        "reference and check that they agree.",
    )
    parser.add_argument("--batch", type=int, default=SEED_SHAPE[0], help="batch size (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch and weights")
    parser.add_argument("--input", help="a .npy file of shape (N, H, W, C) to use instead")
    parser.add_argument("--threads", type=int, default=None, help="convpool threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of convpool (median reported)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeat < 1:
        parser.error("--batch and --repeat must be positive")
    if args.threads is not None:
        convpool.set_num_threads(args.threads)

    progress = Progress()
    print("convpool validate: the seed's Conv2D(16, (5, 5), strides=5) + MaxPool2D(2), "
          "convpool against convpool.reference")
    if args.input:
        x = np.load(args.input, mmap_mode="r")
        if x.ndim != 4:
            parser.error(f"--input must hold a 4-D (N, H, W, C) array, got shape {x.shape}")
        x = x[: args.batch]
        source = args.input
    else:
        x = _random_batch((args.batch,) + SEED_SHAPE[1:], args.seed, progress)
        source = f"uniform [0, 1) random, seed {args.seed}"
    print(f"input              {x.shape} {x.dtype} ({source})")

    conv = convpool.Conv2D(16, (5, 5), strides=5, use_bias=False, seed=args.seed)
    pool = convpool.MaxPool2D(2)
    conv.build(x.shape)
    kernel = conv.kernel
    assert kernel is not None  # built just above
    print(f"Conv2D output      {conv.compute_output_shape(x.shape)}, "
          f"{conv.count_params()} parameters (kernel {kernel.shape})")
    print(f"MaxPool2D output   {pool.compute_output_shape(conv.compute_output_shape(x.shape))}, "
          f"{pool.count_params()} parameters")
    print(f"threads            {convpool.get_num_threads()} "
          f"(SIMD: {convpool._config.SELECTED_ISA})")

    # convpool: whole batch per call; median of --repeat runs.
    times = []
    y = p = None
    for _ in progress.chunks("convpool conv2d + max_pool", args.repeat, 1):
        y = p = None
        t0 = time.perf_counter()
        y = conv(x)
        t1 = time.perf_counter()
        p = pool(y)
        times.append((t1 - t0, time.perf_counter() - t1))
    assert y is not None and p is not None  # --repeat >= 1: the loop ran
    t_conv = float(np.median([t[0] for t in times]))
    t_pool = float(np.median([t[1] for t in times]))

    # Reference: a few images at a time so its temporaries stay small.
    y_ref = np.empty_like(y)
    p_ref = np.empty_like(p)
    step = 4
    t_ref_conv = t_ref_pool = 0.0
    for start, stop in progress.chunks("reference (NumPy)", x.shape[0], step):
        t0 = time.perf_counter()
        reference.conv2d(x[start:stop], kernel, strides=5, out=y_ref[start:stop])
        t1 = time.perf_counter()
        reference.max_pool2d(y_ref[start:stop], 2, out=p_ref[start:stop])
        t_ref_conv += t1 - t0
        t_ref_pool += time.perf_counter() - t1

    x_absmax = float(np.abs(x).max()) if x.size else 0.0
    tol = _conv_tolerance(x_absmax, kernel)  # per output channel
    err_conv = np.abs(y.astype(np.float64) - y_ref)
    err_pool = np.abs(p.astype(np.float64) - p_ref)
    # mypy < 2 finds no overload of max() for a float and a numpy.float32.
    scale = max(  # type: ignore[call-overload, unused-ignore]
        float(np.abs(y_ref).max()), np.finfo(np.float32).tiny
    )
    conv_ok = bool(np.all(err_conv <= tol)) and bool(np.array_equal(np.isnan(y), np.isnan(y_ref)))
    # max is 1-Lipschitz per channel, so the pooled results obey the same bound;
    # and pooling the same input must agree exactly.
    pool_ok = bool(np.all(err_pool <= tol))
    pool_exact = bool(np.array_equal(convpool.max_pool2d(y_ref, 2), p_ref, equal_nan=True))

    print()
    print(f"{'':<20}{'convpool':>12}{'reference':>12}{'speed-up':>10}")
    print(f"{'conv2d':<20}{t_conv:>11.3f}s{t_ref_conv:>11.3f}s{t_ref_conv / t_conv:>9.1f}x")
    print(f"{'max_pool2d':<20}{t_pool:>11.3f}s{t_ref_pool:>11.3f}s{t_ref_pool / t_pool:>9.1f}x")
    print()
    print(f"conv2d     max abs error {err_conv.max():.3e}  relative {err_conv.max() / scale:.3e}  "
          f"(tolerance {tol.min():.3e} .. {tol.max():.3e}: 2*K*u*max|x|*sum|w|, K = 75)")
    print(f"max_pool2d max abs error {err_pool.max():.3e}  "
          f"pooling the same input: {'identical' if pool_exact else 'DIFFERENT'}")
    ok = conv_ok and pool_ok and pool_exact
    print("RESULT: " + ("convpool agrees with the reference" if ok else "MISMATCH"))
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, Callable[[list[str]], int]] = {
        "validate": validate,
        "config": lambda _: (__import__("convpool").show_config(), 0)[1],
    }
    if not argv or argv[0] not in commands:
        print("usage: python -m convpool {validate,config} [options]\n"
              "  validate  check convpool against the NumPy reference on the seed's full-HD batch\n"
              "  config    print the build and run-time configuration", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
