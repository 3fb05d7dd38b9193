"""How far a long command has got (import, seed, reindex), and its bar on stderr."""

import sys
import time
from dataclasses import dataclass


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


def show(progress: Progress, unit: str, details: str = "") -> None:
    """`[####....] 120/500 photos, 6.7/s, <details>, ETA 57 s`, redrawn in place."""
    width = 30
    filled = width * progress.done // max(progress.total, 1)
    eta = "--" if progress.eta_seconds == float("inf") else f"{progress.eta_seconds:.0f} s"
    details = f", {details}" if details else ""
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.done:,}/{progress.total:,} {unit}, "
        f"{progress.rate:,.1f}/s{details}, ETA {eta}   "
    )
    sys.stderr.flush()
