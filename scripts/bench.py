"""Benchmark: index and search every shared photo over HTTP against the
server `make run` starts, and compare with the plain full-resolution HOG
pipeline (the face_recognition library's defaults) measured in this run.

    make bench                # or: .venv/bin/python scripts/bench.py --rounds 3

Prints p50/p95 latency per operation, the server's peak memory (VmHWM), the
throughput of 1, 2 and 4 concurrent search clients, and faces found.
"""

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import processes  # noqa: E402
from tests.support.live_server import Server, free_port  # noqa: E402
from tests.support.photos import REPO, people, photo  # noqa: E402

JPEG = {"Content-Type": "image/jpeg"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each photo is indexed and searched")
    parser.add_argument("--clients", default="1,2,4", help="concurrent search clients to measure")
    args = parser.parse_args()
    names = sorted(people())

    with tempfile.TemporaryDirectory() as tmp, make_run(Path(tmp) / "data") as server:
        server.request("POST", "/search", photo(names[0]), JPEG)  # load the models once
        index_ms, search_ms, found = [], [], {}
        for round_ in range(args.rounds):
            for name in names:  # a new key each round: re-putting the same photo is a no-op
                key = f"round{round_}-{name}"
                ms, (status, body, _) = timed(server.request, "PUT", f"/index/{key}", photo(name), JPEG)
                assert status == 201, body
                index_ms.append(ms)
                found[name] = len(body["faces"])
            for name in names:
                ms, (status, body, _) = timed(server.request, "POST", "/search", photo(name), JPEG)
                assert status == 200, body
                search_ms.append(ms)
        throughput = {n: search_throughput(server, names, n) for n in map(int, args.clients.split(","))}
        peak_mb = peak_memory_mb(server.process.pid)

    baseline_ms, baseline_found = baseline(names)
    expected = {name: len(who) for name, who in people().items()}
    print(f"photos: {len(names)}, rounds: {args.rounds}, cpus: {os.cpu_count()}")
    print(f"{'operation':34s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for label, values in [
        ("index over HTTP (PUT /index)", index_ms),
        ("search over HTTP (POST /search)", search_ms),
        ("baseline: full-res HOG, upsample 1", baseline_ms),
    ]:
        print(f"{label:34s} {percentile(values, 50):8.0f} {percentile(values, 95):8.0f}")
    print(
        f"speed-up vs baseline (p50): index {percentile(baseline_ms, 50) / percentile(index_ms, 50):.1f}x, "
        f"search {percentile(baseline_ms, 50) / percentile(search_ms, 50):.1f}x"
    )
    print(f"server peak memory (VmHWM): {peak_mb:.0f} MB")
    for clients, rate in throughput.items():
        print(f"search throughput, {clients} client(s): {rate:.2f} photos/s")
    print(
        f"faces found: ours {sum(found.values())}, baseline {sum(baseline_found.values())}, "
        f"people.json {sum(expected.values())}"
    )
    for name in names:
        if found[name] != expected[name] or baseline_found[name] != expected[name]:
            print(f"  {name}: ours {found[name]}, baseline {baseline_found[name]}, expected {expected[name]}")


class make_run:
    """`make run` on a free port and a fresh data folder; on exit, stopped
    the way a service manager stops it (SIGTERM), and nothing left running."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "PORT": str(self.port), "FACEPRINT_DATA_DIR": str(data_dir)}
        self.make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Server:
        server = Server(f"http://127.0.0.1:{self.port}", self.make)
        server.wait_ready(120)
        server.process = find_child(self.make.pid, "chalice")
        return server

    def __exit__(self, *exc) -> None:
        started = processes.descendants(self.make.pid)
        self.make.terminate()  # make passes SIGTERM on to chalice local
        try:
            self.make.wait(30)
        except subprocess.TimeoutExpired:
            self.make.kill()
            self.make.wait()
        left = processes.wait_gone(started, timeout=10)
        if left:
            processes.kill(left)
            print(
                f"warning: {len(left)} process(es) of the server outlived it and were killed: {left}", file=sys.stderr
            )


class _Proc:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self):
        return None if processes.alive(self.pid) else 1


def find_child(parent: int, name: str) -> _Proc:
    for pid, ppid in processes.parents().items():
        if ppid == parent and any(name in part for part in processes.command(pid)):
            return _Proc(pid)
    raise RuntimeError(f"no {name} process under make (pid {parent})")


def peak_memory_mb(pid: int) -> float:
    """Peak resident memory of the server and its analysis workers, summed."""
    pids = [pid] + [child for child, ppid in processes.parents().items() if ppid == pid]
    return sum(_vmhwm_kb(p) for p in pids) / 1024


def _vmhwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def search_throughput(server: Server, names: list[str], clients: int) -> float:
    work = [names[i % len(names)] for i in range(len(names) * 2)]

    def search(name):
        return server.request("POST", "/search", photo(name), JPEG)[0]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(search, work))
    assert set(statuses) == {200}
    return len(work) / (time.perf_counter() - start)


def baseline(names: list[str]) -> tuple[list[float], dict[str, int]]:
    """face_recognition's defaults, with dlib directly: load_image_file (full
    resolution), face_locations (HOG, upsample 1), face_encodings."""
    import dlib
    import face_recognition_models as models
    import numpy as np
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    times, found = [], {}
    for name in names:
        start = time.perf_counter()
        pixels = np.array(Image.open(io.BytesIO(photo(name))).convert("RGB"))
        rects = detector(pixels, 1)
        for rect in rects:
            encoder.compute_face_descriptor(pixels, shapes(pixels, rect), 1)
        times.append((time.perf_counter() - start) * 1000)
        found[name] = len(rects)
    return times, found


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - start) * 1000, result


def finish(failures: list[str]) -> int:
    """Print each failure, and any analysis worker left running (itself a
    failure); the benchmark's exit status."""
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    stray = processes.stray_workers()
    if stray:
        print(f"FAILED: analysis workers left running: {stray}", file=sys.stderr)
    return 1 if failures or stray else 0


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    main()
