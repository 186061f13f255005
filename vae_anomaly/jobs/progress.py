"""A one-line progress meter for batch jobs: items done, total, items per second."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``scoring: done/total unit (rate unit/s)`` on stderr when it is a terminal."""

    def __init__(self, total: int | None, unit: str = "rows", enabled: bool | None = None):
        self.total, self.unit, self.done = total, unit, 0
        self.started = time.perf_counter()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def advance(self, items: int) -> None:
        self.done += items
        if self.enabled:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            total = "" if self.total is None else f"/{self.total:,}"
            print(
                f"\rscoring: {self.done:,}{total} {self.unit} ({rate:,.0f} {self.unit}/s)",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)
