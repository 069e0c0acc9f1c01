"""A one-line progress display on stderr, for validate and Sequential.fit."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.width = width

    def update(self, label: str, done: int, total: int, started: float, suffix: str = "") -> None:
        """Redraw the bar: ``done`` of ``total`` since ``started`` (perf_counter), then ``suffix``."""
        elapsed = time.perf_counter() - started
        if self.tty:
            filled = int(self.width * done / max(total, 1))
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(
                f"\r  {label:<28} [{bar}] {done}/{total}  {elapsed:6.1f} s  {suffix}"
            )
            if done == total:
                self.stream.write("\n")
        elif done == total:
            self.stream.write(f"  {label:<28} {done}/{total} done in {elapsed:.1f} s  {suffix}\n")
        self.stream.flush()

    def chunks(self, label: str, total: int, step: int) -> Iterator[tuple[int, int]]:
        """Yield ``(start, stop)`` chunks of ``range(total)``, updating the bar."""
        started = time.perf_counter()
        self.update(label, 0, total, started)
        for start in range(0, total, step):
            stop = min(start + step, total)
            yield start, stop
            self.update(label, stop, total, started)
