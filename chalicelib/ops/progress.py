"""How far a long command has got (import, seed, reindex, backup), and its
progress on stderr: a bar redrawn in place at a terminal; piped or
redirected, a plain line now and then, so a log file reads line by line."""

import sys
import time
from dataclasses import dataclass
from typing import TextIO

PLAIN_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    started: float  # time.monotonic() when the work began
    faces: int = 0
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    @property
    def eta_seconds(self) -> float:
        return (self.total - self.done) / self.rate if self.done else float("inf")


def describe(progress: Progress, unit: str, details: str = "") -> str:
    """`[####....] 120/500 photos, 6.7/s, <details>, ETA 57 s`."""
    width = 30
    filled = width * progress.done // max(progress.total, 1)
    eta = "--" if progress.eta_seconds == float("inf") else f"{progress.eta_seconds:.0f} s"
    details = f", {details}" if details else ""
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {progress.done:,}/{progress.total:,} {unit}, "
        f"{progress.rate:,.1f}/s{details}, ETA {eta}"
    )


class Bar:
    """One command's progress on `stream` (stderr). At a terminal the bar is
    redrawn in place; otherwise a plain line is written at most every
    PLAIN_EVERY_SECONDS, and when the work is done."""

    def __init__(self, unit: str, stream: TextIO | None = None) -> None:
        self._unit = unit
        self._stream = stream or sys.stderr
        self._terminal = self._stream.isatty()
        self._written = 0.0
        self._drawn = False

    @property
    def at_terminal(self) -> bool:
        return self._terminal

    def show(self, progress: Progress, details: str = "") -> None:
        line = describe(progress, self._unit, details)
        if self._terminal:
            self._stream.write(f"\r{line}   ")
            self._drawn = True
        elif progress.done >= progress.total or time.monotonic() - self._written >= PLAIN_EVERY_SECONDS:
            self._stream.write(line + "\n")
            self._written = time.monotonic()
        self._stream.flush()

    def end(self) -> None:
        """Leave the bar's line, so what follows starts on its own."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
