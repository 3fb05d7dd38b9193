"""The figures of docs/engine.md "A million faces", in one run: `make run` on a fresh
data folder, measured over HTTP with an empty archive, then again after
`make seed FACES=N` has added N synthetic faces while it runs; then the
maintenance commands on the seeded archive, recall, and `make unseed`.

    make bench-scale                  # FACES=1000000: about 6 minutes on 2 cores
    .venv/bin/python scripts/bench_scale.py --faces 2000 --searches 3 --uploads 2   # what the test runs

For each size: warm search latency p50/p95 (the same photo every time,
Keanu-Avril-Lawrence.jpg) and the vector part (seeded minus empty); a
search right after an upload, and its ratio to a warm one; upload latency;
the first search after a restart; the server's memory (VmRSS of the chalice
process, its analysis workers apart) and what each seeded face adds; GET
/info, a page of /images and of /faces, the faces of one image, deleting an
image. Then: how long seeding took while the server ran and whether the
server's next search saw the faces; what a synthetic image's photo download
answers; `make check-consistency` and `make reindex` (time and peak memory);
recall@10 of the collection against an exact scan of every stored
descriptor; `make unseed`, and the check after it. Every command is run as
a user runs it (make, on this data folder); nothing is left running.
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import finish, make_run, percentile  # noqa: E402

from chalicelib.core import synthetic  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.photos import people, photo  # noqa: E402

QUERY = "Keanu-Avril-Lawrence.jpg"
JPEG = {"Content-Type": "image/jpeg"}
RECALL_QUERIES = 200
K = 10


@dataclass
class Phase:
    """What one server life measured."""

    warm_ms: list[float]
    after_upload_ms: list[float]
    upload_ms: list[float]
    server_rss: int
    worker_rss: list[int]
    ops_ms: dict[str, float]


@dataclass
class Measured:
    seconds: float
    max_rss: int
    returncode: int
    output: str


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=1_000_000, help="synthetic faces to seed")
    parser.add_argument("--searches", type=int, default=30, help="warm searches measured per size")
    parser.add_argument("--uploads", type=int, default=10, help="uploads (each followed by a search) per size")
    args = parser.parse_args()
    if args.faces < 1 or args.searches < 1 or args.uploads < 2:
        parser.error("--faces and --searches must be at least 1, --uploads at least 2 (one is deleted)")
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        data = Path(tmp) / "data"
        env = {name: value for name, value in os.environ.items() if name != "STAGE"} | {"FACEPRINT_DATA_DIR": str(data)}
        print(f"make run on {data}, {os.cpu_count()} cpus; query photo {QUERY}", flush=True)

        with make_run(data) as server:
            empty = measure(server, args, "empty")
        with make_run(data) as server:
            empty_restart_s = first_search_s(server)
            more, empty_rss = warm_memory(server, args)
            empty.warm_ms += more
            print(f"empty archive: first search after a restart {empty_restart_s:.2f} s", flush=True)
            seeded_run = run(["make", "--no-print-directory", "seed", f"FACES={args.faces}"], env)
            print(f"make seed FACES={args.faces} while the server runs: {seeded_run.seconds:.1f} s", flush=True)
            if seeded_run.returncode != 0:
                failures.append(f"make seed failed:\n{seeded_run.output}")
            seen_s, seen = first_search_s(server, sees_synthetic=True)
            if not seen:
                failures.append("the running server's next search did not find the seeded faces")
            info = server.request("GET", "/info")[1]
            download = synthetic_download(server)
            seeded = measure(server, args, "seeded")
            archived = server.request("GET", "/info")[1]["faces"]  # what the commands below work on
        with make_run(data) as server:
            seeded_restart_s = first_search_s(server)
            more, seeded_rss = warm_memory(server, args)
            seeded.warm_ms += more
        check = run(["make", "--no-print-directory", "check-consistency"], env)
        if check.returncode != 0:
            failures.append(f"check-consistency found disagreements in the seeded archive:\n{check.output[-2000:]}")
        reindex = run(["make", "--no-print-directory", "reindex"], env)
        if reindex.returncode != 0:
            failures.append(f"reindex failed:\n{reindex.output[-2000:]}")
        recall, vector_ms = recall_at_k(data)
        unseed = run(["make", "--no-print-directory", "unseed"], env)
        after_unseed = run(["make", "--no-print-directory", "check-consistency"], env)
        if unseed.returncode != 0 or after_unseed.returncode != 0:
            failures.append(f"unseed, or the check after it, failed:\n{unseed.output}\n{after_unseed.output}")
        left = synthetic_left(data)

    faces = info["faces"]
    report(args, empty, seeded, empty_restart_s, seeded_restart_s, empty_rss, seeded_rss, faces)
    print(f"make seed FACES={args.faces:,} (server running): {seeded_run.seconds:.1f} s, peak {mb(seeded_run.max_rss)}")
    print(
        f"  the running server's next search: {seen_s:.2f} s, seeded faces among its matches: {'yes' if seen else 'NO'}"
    )
    print(f"  GET /info then: {info['images']:,} images, {faces:,} faces")
    print(f"  a synthetic match's photo (GET /images/{{key}}/file): {download}")
    print(f"make check-consistency at {archived:,} faces: {check.seconds:.1f} s, peak {mb(check.max_rss)}")
    print(f"  {last_line(check)}")
    print(f"make reindex at {archived:,} faces: {reindex.seconds:.1f} s, peak {mb(reindex.max_rss)}")
    print(f"  {last_line(reindex)}")
    print(
        f"recall@{K} of the collection against an exact scan, {RECALL_QUERIES} queries "
        f"(new photos of seeded people): {recall:.4f}"
    )
    print(
        f"Collection.search alone (threshold 80, max {K}, the same queries, in this process): "
        f"p50 {percentile(vector_ms, 50):.2f} ms, p95 {percentile(vector_ms, 95):.2f} ms"
    )
    print(f"make unseed: {unseed.seconds:.1f} s, peak {mb(unseed.max_rss)}; {last_line(unseed)}")
    print(f"  then make check-consistency: {after_unseed.seconds:.1f} s, {last_line(after_unseed)}")
    print(f"  synthetic images left: {left}")
    return finish(failures)


def measure(server, args, label: str) -> Phase:
    """Warm searches, uploads each followed by a search, memory, and the
    other routes, on a server whose models are loaded."""
    for _ in range(3):
        search(server)
    warm = [search(server) for _ in range(args.searches)]
    names = sorted(people())
    upload_ms, after_upload = [], []
    for i in range(args.uploads):
        name = names[i % len(names)]
        started = time.perf_counter()
        status, body, _ = server.request(
            "PUT", f"/index/{quote(f'bench/{label}-{i}-{name}', safe='')}", photo(name), JPEG
        )
        upload_ms.append((time.perf_counter() - started) * 1000)
        assert status == 201, body
        after_upload.append(search(server))
    server_rss, worker_rss = memory(server)
    first, second = (quote(f"bench/{label}-{i}-{names[i % len(names)]}", safe="") for i in (0, 1))
    face_id = server.request("GET", f"/faces?image={first}")[1]["faces"][0]["FaceId"]
    ops = {
        "GET /info": median_ms(server, "/info"),
        "GET /images?limit=100": median_ms(server, "/images?limit=100"),
        "GET /images?limit=100, a later page": later_page_ms(server, "/images?limit=100"),
        "GET /faces?limit=100": median_ms(server, "/faces?limit=100"),
        "GET /faces?image=...": median_ms(server, f"/faces?image={first}"),
        "DELETE /faces/{FaceId}": timed_ms(server, "DELETE", f"/faces/{face_id}"),
        "DELETE /images/{key}": timed_ms(server, "DELETE", f"/images/{second}"),
    }
    print(
        f"{label}: warm search p50 {percentile(warm, 50):.0f} ms, after an upload p50 "
        f"{percentile(after_upload, 50):.0f} ms, upload p50 {percentile(upload_ms, 50):.0f} ms",
        flush=True,
    )
    return Phase(warm, after_upload, upload_ms, server_rss, worker_rss, ops)


def search(server) -> float:
    started = time.perf_counter()
    status, body, _ = server.request("POST", "/search", photo(QUERY), JPEG)
    assert status == 200, body
    return (time.perf_counter() - started) * 1000


def median_ms(server, path: str, times: int = 5) -> float:
    return statistics.median(timed_ms(server, "GET", path) for _ in range(times))


def timed_ms(server, method: str, path: str) -> float:
    started = time.perf_counter()
    status, body, _ = server.request(method, path)
    assert status == 200, (method, path, status, body)
    return (time.perf_counter() - started) * 1000


def later_page_ms(server, path: str) -> float:
    """A page deep in the listing: ten pages on, by their tokens."""
    token = None
    for _ in range(10):
        status, body, _ = server.request("GET", path + (f"&next={token}" if token else ""))
        assert status == 200, body
        token = body.get("next")
        if token is None:
            break
    return median_ms(server, path + (f"&next={token}" if token else ""))


def first_search_s(server, sees_synthetic: bool = False) -> float | tuple[float, bool]:
    """The first search this server answers (it loads the index and catches
    up); with `sees_synthetic`, whether seeded faces are among its nearest."""
    started = time.perf_counter()
    path = "/search?threshold=0&max=100" if sees_synthetic else "/search"
    status, body, _ = server.request("POST", path, photo(QUERY), JPEG)
    seconds = time.perf_counter() - started
    assert status == 200, body
    if not sees_synthetic:
        return seconds
    return seconds, any(match["imageKey"].startswith(synthetic.KEY_PREFIX) for match in body["matches"])


def synthetic_download(server) -> str:
    status, body, _ = server.request("POST", "/search?threshold=0&max=100", photo(QUERY), JPEG)
    keys = [m["imageKey"] for m in body["matches"] if m["imageKey"].startswith(synthetic.KEY_PREFIX)]
    if not keys:
        return "no synthetic match to try"
    status, reply, _ = server.request("GET", f"/images/{quote(keys[0], safe='')}/file", headers={"Accept": "image/*"})
    return f"{status} {json.dumps(reply) if isinstance(reply, dict) else f'{len(reply)} bytes'}"


def warm_memory(server, args) -> tuple[list[float], tuple[int, list[int]]]:
    """Warm searches on a restarted server (their latencies join the size's
    others: two server lives smooth out what else the machine runs), then
    its memory."""
    for _ in range(3):
        search(server)
    return [search(server) for _ in range(args.searches)], memory(server)


def memory(server) -> tuple[int, list[int]]:
    """VmRSS of the server process, and of each of its analysis workers."""
    pid = server.process.pid
    workers = [child for child, parent in processes.parents().items() if parent == pid and processes.is_worker(child)]
    return vm_rss(pid), [vm_rss(worker) for worker in workers]


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run(command: list[str], env: dict[str, str]) -> Measured:
    """Run a command to its end: wall time, and the peak resident memory of
    its largest process, as /usr/bin/time -v reports it. Through a small
    process (_MEASURE) that starts it and waits for it: a child forked from
    this one would count this one's memory too (Linux keeps a process's
    peak across exec)."""
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as report:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, report.name, *command],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.perf_counter() - started
        max_rss = int(report.read()) * 1024
    return Measured(seconds, max_rss, done.returncode, done.stdout)


_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
sys.exit(child.returncode)
"""


def recall_at_k(data: Path) -> tuple[float, list[float]]:
    """The collection (its saved index, loaded here) against an exact scan of
    every stored descriptor, for new photos of seeded people: stored
    descriptors moved by synthetic.py's within-person spread. Also how long
    each search takes at the default threshold: the vector part alone."""
    from chalicelib.core.limits import DEFAULT_THRESHOLD
    from chalicelib.embedded.collection import Collection
    from chalicelib.embedded.database import Database
    from chalicelib.embedded.engine import max_distance
    from chalicelib.embedded.synthetic import WITHIN

    db = Database(data / "faceprint.db")
    collection = Collection(db, data / "faceprint.index")
    top = db.read("SELECT max(id) AS top FROM collection")[0]["top"] or 0
    rng = np.random.default_rng(0)
    picked = db.read(
        "SELECT descriptor FROM collection WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps((rng.choice(top, min(top, 4 * RECALL_QUERIES), replace=False) + 1).tolist()),),
    )[:RECALL_QUERIES]
    queries = np.frombuffer(b"".join(row["descriptor"] for row in picked), dtype=np.float32).reshape(-1, 128)
    queries = (queries + rng.standard_normal(queries.shape) * WITHIN).astype(np.float64)
    best_d = np.zeros((len(queries), 0))
    best_ids = np.zeros((len(queries), 0), dtype=object)
    after = 0
    while rows := db.read(
        "SELECT id, face_id, descriptor FROM collection WHERE id > ? ORDER BY id LIMIT 100000", (after,)
    ):
        after = rows[-1]["id"]
        stored = np.frombuffer(b"".join(row["descriptor"] for row in rows), dtype=np.float32).reshape(-1, 128)
        stored = stored.astype(np.float64)
        squares = (queries**2).sum(axis=1)[:, None] - 2 * queries @ stored.T + (stored**2).sum(axis=1)[None, :]
        nearest = np.argpartition(squares, K, axis=1)[:, :K] if len(rows) > K else np.argsort(squares, axis=1)
        face_ids = np.array([row["face_id"] for row in rows], dtype=object)
        best_d = np.concatenate([best_d, np.take_along_axis(squares, nearest, axis=1)], axis=1)
        best_ids = np.concatenate([best_ids, face_ids[nearest]], axis=1)
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :K]
        best_d, best_ids = np.take_along_axis(best_d, keep, axis=1), np.take_along_axis(best_ids, keep, axis=1)
    found, times = 0, []
    for query, exact in zip(queries.astype(np.float32), best_ids, strict=True):
        got = {face["FaceId"] for face, _ in collection.search(query, 3.0, K)}
        found += len(got & set(exact.tolist()))
        started = time.perf_counter()
        collection.search(query, max_distance(DEFAULT_THRESHOLD), K)
        times.append((time.perf_counter() - started) * 1000)
    return found / (K * len(queries)), times


def synthetic_left(data: Path) -> int:
    """Synthetic image records still in the database (after unseed: none)."""
    with sqlite3.connect(data / "faceprint.db") as conn:
        rows = conn.execute("SELECT key, etag FROM images WHERE key >= ? ORDER BY key", (synthetic.KEY_PREFIX,))
        return sum(1 for key, etag in rows if synthetic.is_synthetic(key, etag))


def report(args, empty: Phase, seeded: Phase, empty_restart_s, seeded_restart_s, empty_rss, seeded_rss, faces) -> None:
    width = 44
    print()
    print(f"{'':{width}} {'empty archive':>16} {f'{args.faces:,} seeded':>18}")

    def row(label: str, a: str, b: str) -> None:
        print(f"{label:{width}} {a:>16} {b:>18}")

    def p(values, q):
        return percentile(values, q)

    row(
        "warm search p50 / p95, ms",
        f"{p(empty.warm_ms, 50):.0f} / {p(empty.warm_ms, 95):.0f}",
        f"{p(seeded.warm_ms, 50):.0f} / {p(seeded.warm_ms, 95):.0f}",
    )
    row("  the vector part (p50, seeded - empty), ms", "", f"{p(seeded.warm_ms, 50) - p(empty.warm_ms, 50):.1f}")
    row(
        "search right after an upload p50, ms",
        f"{p(empty.after_upload_ms, 50):.0f}",
        f"{p(seeded.after_upload_ms, 50):.0f}",
    )
    row(
        "  ratio to a warm search (p50)",
        f"{p(empty.after_upload_ms, 50) / p(empty.warm_ms, 50):.2f}",
        f"{p(seeded.after_upload_ms, 50) / p(seeded.warm_ms, 50):.2f}",
    )
    row(
        "upload p50 / p95, ms",
        f"{p(empty.upload_ms, 50):.0f} / {p(empty.upload_ms, 95):.0f}",
        f"{p(seeded.upload_ms, 50):.0f} / {p(seeded.upload_ms, 95):.0f}",
    )
    row("first search after a restart, s", f"{empty_restart_s:.2f}", f"{seeded_restart_s:.2f}")
    row("server VmRSS after a restart, MB", mb(empty_rss[0]), mb(seeded_rss[0]))
    row("  per seeded face, bytes", "", f"{(seeded_rss[0] - empty_rss[0]) / args.faces:.0f}")
    row("server VmRSS, one server before/after seeding, MB", mb(empty_rss[0]), mb(seeded.server_rss))
    row("  per seeded face, bytes", "", f"{(seeded.server_rss - empty_rss[0]) / args.faces:.0f}")
    row(
        "analysis workers' VmRSS, MB each",
        " ".join(mb(r, unit=False) for r in empty_rss[1]),
        " ".join(mb(r, unit=False) for r in seeded_rss[1]),
    )
    for name in empty.ops_ms:
        row(f"{name}, ms", f"{empty.ops_ms[name]:.0f}", f"{seeded.ops_ms[name]:.0f}")


def mb(size: int, unit: bool = True) -> str:
    return f"{size / 2**20:.0f}" + (" MB" if unit else "")


def last_line(measured: Measured) -> str:
    lines = [line for line in measured.output.splitlines() if line.strip() and not line.startswith(".venv")]
    return lines[-1].strip() if lines else "(no output)"


if __name__ == "__main__":
    sys.exit(main())
