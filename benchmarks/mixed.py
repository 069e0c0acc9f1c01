"""convpool calls next to NumPy calls: does either library's thread pool slow the other?

    python benchmarks/mixed.py                 # 2 threads, 7 rounds
    python benchmarks/mixed.py --threads 2 --rounds 9 --calls 20

A loop alternating a 3x3 64->64 conv on (8, 56, 56, 64) (convpool) and a
1024 x 1024 float32 matmul (NumPy's BLAS) runs against the two loops run
apart, in one process, rounds interleaved: the ratio ``alternating / (conv
loop + matmul loop)`` is 1 when neither pool holds the cores the other one
wants (convpool's OpenMP threads spin briefly after each call, see README,
"Threads"; OpenBLAS's threads likewise).  Medians over the rounds.  It
prints the CPU, the thread settings and both libraries' thread counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import _cpu_name  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="calls of each per loop")
    args = parser.parse_args(argv)

    import convpool

    convpool.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")
    except ImportError:  # pragma: no cover - the test extra installs it
        pass
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 56, 56, 64)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, 64, 64)) * 0.05).astype(np.float32)
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    b = rng.standard_normal((1024, 1024)).astype(np.float32)

    def conv() -> None:
        convpool.conv2d(x, kernel, padding="same")

    def matmul() -> None:
        a @ b

    def loop(*fns) -> float:
        t = time.perf_counter()
        for _ in range(args.calls):
            for fn in fns:
                fn()
        return time.perf_counter() - t

    for _ in range(3):  # warm-up: threads started, buffers recycled
        conv()
        matmul()
    ratios, conv_s, matmul_s, mixed_s = [], [], [], []
    for _ in range(args.rounds):
        c = loop(conv)
        m = loop(matmul)
        both = loop(conv, matmul)
        conv_s.append(c)
        matmul_s.append(m)
        mixed_s.append(both)
        ratios.append(both / (c + m))
    med = statistics.median
    print(f"machine: {_cpu_name()}; {os.cpu_count()} CPUs; {args.threads} threads for both")
    print(f"versions: numpy {np.__version__}, convpool {convpool.__version__}")
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OMP_", "GOMP_", "OPENBLAS_", "MKL_"))}
    print(f"threading environment: {env or 'none set'}")
    print(f"{args.rounds} rounds of {args.calls} calls each, medians:")
    print(f"  conv 3x3 64->64 (8,56,56,64) loop: {med(conv_s) * 1e3 / args.calls:.2f} ms a call")
    print(f"  matmul 1024^2 float32 loop:        {med(matmul_s) * 1e3 / args.calls:.2f} ms a call")
    print(f"  alternating loop:                  {med(mixed_s) * 1e3 / args.calls:.2f} ms a pair")
    print(f"alternating / apart: {med(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
