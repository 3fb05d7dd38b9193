"""A command run in a pseudo-terminal, as a user at a terminal runs it:
what it prints there (progress bars redrawn in place, colours) and how it
ends when they press Ctrl-C."""

import contextlib
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        # Not pty.fork(): forking a test process that runs threads may deadlock
        # the child. subprocess starts it safely; `setsid --ctty` gives it a
        # session of its own with the pty as its controlling terminal. A
        # shell at a terminal starts its commands with Ctrl-C's signals at
        # their defaults, whatever it inherited; these tests may run from a
        # background job (SIGINT ignored), which make and Python would keep.
        self._fd, child = pty.openpty()
        try:
            self._process = subprocess.Popen(
                ["env", "--default-signal=INT,QUIT", "setsid", "--ctty", *argv],
                stdin=child,
                stdout=child,
                stderr=child,
                env=env,
                cwd=cwd,
            )
        finally:
            os.close(child)
        self.pid = self._process.pid
        self.output = b""
        self.status: int | None = None

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def read_until(self, done: Callable[[str], bool], timeout: float) -> bool:
        """Read what it prints until done(text so far) or it ends or the time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.text):
                return True
            if not self._read(min(0.2, deadline - time.monotonic())) and self.status is not None:
                return done(self.text)
        return done(self.text)

    def ctrl_c(self) -> None:
        """What the terminal does on Ctrl-C: SIGINT to its foreground process group."""
        os.write(self._fd, b"\x03")

    def wait(self, timeout: float) -> int:
        """Its exit status as a shell reports it (128 + the signal that ended it)."""
        deadline = time.monotonic() + timeout
        while self.status is None and time.monotonic() < deadline:
            self._read(0.2)
        if self.status is None:
            self.kill()
            raise TimeoutError(f"still running after {timeout} s:\n{self.text}")
        return self.status

    def kill(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.wait(10)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0))
        if ready:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:  # the other side closed: it has ended
                chunk = b""
            if chunk:
                self.output += chunk
                return True
        if self.status is None and self._process.poll() is not None:
            code = self._process.returncode
            self.status = 128 - code if code < 0 else code
            self._drain()
        return False

    def _drain(self) -> None:
        while select.select([self._fd], [], [], 0.05)[0]:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk
