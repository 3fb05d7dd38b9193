"""What a careless client or another site's page costs the local server
(issue 22, rows 1, 3 and 9), measured on a real one as `make run` starts it:

    .venv/bin/python scripts/bench_local_server.py [--command chalice]

- a 512 MB upload without the API key (FACEPRINT_API_KEY set): the
  server's memory (RSS) after it, and how long until it answers;
- 200 connections opened and left idle: the server's threads, at once and
  40 s later, and whether it still answers;
- a request from a page whose name was re-pointed at 127.0.0.1 (Host:
  attacker.example) and a cross-site form post: their statuses.
`--command chalice` measures `chalice local` itself (today's code before
issue 22), for comparison. Linux only (/proc)."""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.live_server import Server, free_port  # noqa: E402
from tests.support.photos import photo  # noqa: E402

KEY = "bench-key"
HALF_A_GIGABYTE = 512 * 2**20


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def _start(command: str, port: int, data: Path, key: str | None) -> subprocess.Popen:
    env = {**os.environ, "FACEPRINT_DATA_DIR": str(data)}
    env.pop("FACEPRINT_API_KEY", None)
    if key:
        env["FACEPRINT_API_KEY"] = key
    args = ["--stage", "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"]
    if command == "chalice":
        argv = [str(Path(sys.executable).parent / "chalice"), "local", *args]
    else:
        argv = [sys.executable, "-m", "chalicelib.ops.serve", *args]
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    Server(f"http://127.0.0.1:{port}", process).wait_ready(120) if not key else _wait_port(port)
    return process


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("the server did not start")


def _first_line(conn: socket.socket) -> str:
    conn.settimeout(300)
    data = b""
    while b"\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return "(closed without a reply)"
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def big_upload(command: str, folder: Path) -> dict:
    port = free_port()
    process = _start(command, port, folder / "big", KEY)
    try:
        before = _status(process.pid, "VmRSS:")
        started = time.perf_counter()
        sent = 0
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(
                f"PUT /index/big.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {HALF_A_GIGABYTE}\r\n\r\n".encode()
            )
            block = bytes(2**20)
            try:
                while sent < HALF_A_GIGABYTE:
                    conn.sendall(block)
                    sent += len(block)
            except OSError:
                pass  # the server closed the connection: it read no more
            reply = _first_line(conn)
        seconds = time.perf_counter() - started
        return {
            "reply": reply,
            "sentMB": sent // 2**20,
            "seconds": round(seconds, 2),
            "rssGrowthMB": (_status(process.pid, "VmHWM:") - before) // 1024,
        }
    finally:
        process.terminate()
        process.wait(30)


def idle_connections(command: str, folder: Path) -> dict:
    port = free_port()
    process = _start(command, port, folder / "idle", None)
    try:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        time.sleep(2)
        at_once = _status(process.pid, "Threads:")
        time.sleep(40)
        later = _status(process.pid, "Threads:")
        server = Server(f"http://127.0.0.1:{port}", process)
        answers = server.request("GET", "/info")[0]
        rebound = server.request("GET", "/images", headers={"Host": f"attacker.example:{port}"})[:2]
        form = server.request(
            "PUT",
            "/index/k.jpg",
            __import__("base64").b64encode(photo("Jim-Carrey.jpg")),
            {"Content-Type": "text/plain", "Origin": "https://attacker.example"},
        )[0]
        for conn in idle:
            conn.close()
        return {
            "threadsWith200Idle": at_once,
            "threads40sLater": later,
            "stillAnswers": answers,
            "reboundHostStatus": rebound[0],
            "reboundHostReadImages": isinstance(rebound[1], dict) and "images" in rebound[1],
            "crossSiteFormStatus": form,
        }
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--command", choices=("serve", "chalice"), default="serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-local-server-") as folder:
        print(json.dumps({"command": args.command, "bigUpload": big_upload(args.command, Path(folder))}))
        print(json.dumps({"command": args.command, "idleConnections": idle_connections(args.command, Path(folder))}))


if __name__ == "__main__":
    main()
