"""A one-line backfill progress bar with rate and ETA, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self,
        label: str,
        start: int,
        end: int,
        stream: TextIO | None = None,
        *,
        unit: str = "block",
    ) -> None:
        self._label = label
        self._unit = unit
        self._start = start
        self._total = max(1, end - start + 1)
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self.events = 0

    def update(self, block: int, events: int) -> None:
        self.events += events
        now = time.monotonic()
        if not self._enabled or now - self._last_draw < 0.2:
            return
        self._last_draw = now
        done = min(self._total, block - self._start + 1)
        elapsed = max(now - self._t0, 1e-6)
        rate = done / elapsed
        eta = (self._total - done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(width * done / self._total)
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(
            f"\r{self._label} [{bar}] {done * 100 // self._total:3d}% {self._unit} {block} "
            f"{self.events / elapsed:,.0f} ev/s eta {eta:,.0f}s "
        )
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()
