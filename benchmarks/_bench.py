"""Settings shared by the benchmark modules."""

import os


def fullhd_batch() -> int:
    """Batch size of the full-HD cases: ``CONVPOOL_BENCH_FULLHD_BATCH`` (default 4; the seed uses 64)."""
    text = os.environ.get("CONVPOOL_BENCH_FULLHD_BATCH", "4")
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"CONVPOOL_BENCH_FULLHD_BATCH must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"CONVPOOL_BENCH_FULLHD_BATCH must be a positive integer, got {text!r}")
    return value
