"""Benchmark: how long `chalice local` takes to stop, idle or busy, on a quiet
or loaded machine, and what a stop leaves behind.

    nice .venv/bin/python scripts/bench_stop.py --repeat 10
    nice .venv/bin/python scripts/bench_stop.py --repeat 10 --hogs 4 --background-job

Each repetition starts a server on a fresh data folder and indexes one photo
(one analysis worker started), then:
- idle: sends the signal;
- busy: CLIENTS threads upload photos (new keys, the largest shared photos)
  for a second, then the signal comes while photos are being analysed and
  more wait their turn.
It times the signal to the server's exit and to its last analysis worker's
end, and counts the images the stop left indexed, pending and failed.
--hogs N runs N busy loops meanwhile, at this script's nice level (run it all
under `nice` to leave the machine to others). --background-job starts the
server as a script's `make run &` does: SIGINT ignored.
"""

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import processes  # noqa: E402
from tests.support.live_server import live_server  # noqa: E402
from tests.support.photos import people, photo  # noqa: E402

JPEG = {"Content-Type": "image/jpeg"}
GIVE_UP_SECONDS = 30  # a server still up this long after the signal counts as never stopping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="stops per scenario")
    parser.add_argument("--scenarios", default="idle,busy", help="idle, busy or both")
    parser.add_argument("--signal", default="SIGINT,SIGTERM", help="the signals to stop with")
    parser.add_argument("--clients", type=int, default=8, help="uploading clients in the busy scenario")
    parser.add_argument("--hogs", type=int, default=0, help="busy loops running meanwhile")
    parser.add_argument("--background-job", action="store_true", help="start the server with SIGINT ignored")
    args = parser.parse_args()

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        print(
            f"cpus: {os.cpu_count()}, hogs: {args.hogs}, nice: {os.nice(0)}, "
            f"server started as a background job (SIGINT ignored): {args.background_job}"
        )
        print(f"{'scenario':16s} {'stop s p50':>10s} {'max':>6s} {'workers gone s max':>19s}  left after the stop")
        for scenario in args.scenarios.split(","):
            for name in args.signal.split(","):
                runs = [stop_once(scenario, getattr(signal, name), args) for _ in range(args.repeat)]
                report(f"{scenario} {name}", runs)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def stop_once(scenario: str, signum: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        with live_server(data_dir, background_job=args.background_job) as server:
            status, body, _ = server.request("PUT", "/index/first.jpg", photo("Keanu-Reeves.jpg"), JPEG)
            assert status == 201, body
            uploading = threading.Event()
            clients = []
            if scenario == "busy":
                uploading.set()
                clients = [threading.Thread(target=upload, args=(server, n, uploading)) for n in range(args.clients)]
                for client in clients:
                    client.start()
                time.sleep(1)
            workers = processes.workers_below(server.process.pid)
            started = time.monotonic()
            server.process.send_signal(signum)
            try:
                server.process.wait(GIVE_UP_SECONDS)
                stopped = time.monotonic() - started
                processes.wait_gone(workers, GIVE_UP_SECONDS)
                gone = time.monotonic() - started
            except subprocess.TimeoutExpired:
                stopped = gone = float("inf")  # live_server's exit stops it with SIGTERM
            uploading.clear()
        for client in clients:
            client.join(GIVE_UP_SECONDS)
        left = statuses(data_dir)
    line = f"  stop {stopped:6.2f} s, workers gone {gone:6.2f} s, images: {json.dumps(left, sort_keys=True)}"
    print(line, flush=True)
    return {"stop": stopped, "gone": gone, "left": left}


def upload(server, client: int, uploading: threading.Event) -> None:
    """PUT the larger shared photos under new keys until told to stop; the
    connection dies with the server: that is the point."""
    names = sorted(people(), key=lambda name: -len(photo(name)))[:6]
    n = 0
    while uploading.is_set():
        n += 1
        with contextlib.suppress(OSError):
            server.request("PUT", f"/index/c{client}-{n}.jpg", photo(names[n % len(names)]), JPEG)


def statuses(data_dir: Path) -> dict[str, int]:
    """How many image records the data folder holds, by status (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'faceprint.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT json_extract(record, '$.status'), count(*) FROM images GROUP BY 1").fetchall()
    return dict(rows)


def report(label: str, runs: list[dict]) -> None:
    stops = [r["stop"] for r in runs]
    never = sum(s == float("inf") for s in stops)
    p50 = statistics.median(stops)
    left: dict[str, int] = {}
    for run in runs:
        for status, count in run["left"].items():
            left[status] = left.get(status, 0) + count
    gone = max(r["gone"] for r in runs)
    summary = f"{label:16s} {p50:10.2f} {max(stops):6.2f} {gone:19.2f}  {json.dumps(left, sort_keys=True)}"
    print(summary + (f"  ({never} of {len(runs)} not stopped after {GIVE_UP_SECONDS} s)" if never else ""), flush=True)


if __name__ == "__main__":
    main()
