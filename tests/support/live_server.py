"""A real `chalice local` server on a free port, as `make run` starts it
(through chalicelib/ops/serve.py, our server around chalice local's)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.photos import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A shell starts a background job (`make run &` in a script) with SIGINT and
# SIGQUIT ignored, and exec passes that on: the server starts that way.
AS_BACKGROUND_JOB = ["sh", "-c", "trap '' INT QUIT; exec \"$@\"", "sh"]


@contextmanager
def live_server(
    data_dir: Path, env: dict[str, str] | None = None, timeout: float = 60, background_job: bool = False
) -> Iterator["Server"]:
    """`background_job`: started as a script's `&` starts it, SIGINT ignored."""
    port = free_port()
    environ = {**os.environ, "FACEPRINT_DATA_DIR": str(data_dir), **(env or {})}
    log = open(data_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "chalicelib.ops.serve", "--stage", "local", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-autoreload"]
    process = subprocess.Popen(
        [*AS_BACKGROUND_JOB, *command] if background_job else command,
        cwd=REPO,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        server.wait_ready(timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Server:
    def __init__(self, url: str, process: subprocess.Popen) -> None:
        self.url = url
        self.process = process

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chalice local exited with {self.process.returncode}")
            try:
                self.request("GET", "/info")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise TimeoutError(f"chalice local did not answer within {timeout} s")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON body or raw bytes, headers)."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, raw, reply_headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            status, raw, reply_headers = e.code, e.read(), e.headers
        if reply_headers.get("Content-Type", "").startswith("application/json"):
            return status, json.loads(raw), reply_headers
        return status, raw, reply_headers
