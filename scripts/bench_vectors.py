"""Vector index candidates for the embedded collection, at a million faces.

    .venv/bin/python scripts/bench_vectors.py                 # every candidate, 1,000,000 faces (~40 min)
    .venv/bin/python scripts/bench_vectors.py --faces 100000 --only faiss-ivf-sq8,numpy-f32
    .venv/bin/python scripts/bench_vectors.py --collection    # the chosen one, end to end (~5 min)

faiss (the collection's index, chalicelib/embedded/vectors.py) is in
requirements-dev.txt; usearch is only compared here: `pip install
usearch==2.26.6` first, or its rows say it is missing.

Faces are chalicelib/embedded/synthetic.py descriptors (clustered like dlib's);
queries are held-out photos of the same people (or of people with no other
photo). Each candidate builds, saves, then a fresh process loads it and
searches: build and load times, p50/p95 of one query at a time (the index
asked for CANDIDATES neighbours, as the collection does), resident memory the
loaded index adds per face, and recall@10: the share of the exact 10 nearest
found after re-ranking the candidates with exact float32 distances.

sqlite-vec is not among them: its extension cannot load here (this Python's
sqlite3 is built without enable_load_extension, as pyenv builds are by
default), and it scans every vector (exact, no index) in its 0.1 releases.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chalicelib.embedded.synthetic import synthetic_descriptors  # noqa: E402

CANDIDATES = 40
K = 10
CANDIDATE_NAMES = ("numpy-f32", "faiss-ivf-sq8", "usearch-f16", "usearch-i8")
MODULES = {"numpy-f32": "numpy", "faiss-ivf-sq8": "faiss", "usearch-f16": "usearch", "usearch-i8": "usearch"}
PACKAGES = {"numpy": "-r requirements-dev.txt", "faiss": "-r requirements-dev.txt", "usearch": "usearch==2.26.6"}
# Each candidate's search-time knob (faiss: inverted lists probed, of 4096;
# usearch: HNSW's ef) and the values tried.
SETTINGS = {
    "numpy-f32": ("", [None]),
    "faiss-ivf-sq8": ("nprobe", [64, 256]),  # 256: the collection's
    "usearch-f16": ("ef", [64, 128, 512]),  # with 40 candidates asked, ef is at least 40
    "usearch-i8": ("ef", [64, 128, 512]),
}


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- candidates: build(vectors, dir) and load(dir) -> search(query, count) -> ids ---------------


def build_numpy(x: np.ndarray, out: Path) -> None:
    np.save(out / "matrix.npy", x)


def load_numpy(out: Path):
    matrix = np.load(out / "matrix.npy")
    squares = np.einsum("ij,ij->i", matrix, matrix)

    def search(q: np.ndarray, count: int) -> np.ndarray:
        d = squares - 2 * (matrix @ q)
        top = np.argpartition(d, count)[:count]
        return top[np.argsort(d[top])]

    return search, lambda setting: None


def build_faiss(x: np.ndarray, out: Path) -> None:
    """The collection's own index (chalicelib/embedded/vectors.py): IVF, 8-bit codes."""
    import faiss

    from chalicelib.embedded.vectors import VectorIndex

    index = VectorIndex.trained(x, len(x))
    index.add(np.arange(len(x), dtype=np.int64), x)
    faiss.write_index(index._index, str(out / "faiss.index"))


def load_faiss(out: Path):
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.read_index(str(out / "faiss.index"))

    def search(q: np.ndarray, count: int) -> np.ndarray:
        _, ids = index.search(q[None, :], count)
        return ids[0]

    def tune(nprobe: int) -> None:
        index.nprobe = nprobe

    return search, tune


USEARCH_I8_SCALE = 2.0  # dlib values stay within +-0.5: use i8's whole range


def build_usearch(x: np.ndarray, out: Path, dtype: str) -> None:
    from usearch.index import Index

    index = Index(ndim=x.shape[1], metric="l2sq", dtype=dtype, connectivity=16, expansion_add=128)
    scale = USEARCH_I8_SCALE if dtype == "i8" else 1.0
    index.add(np.arange(len(x), dtype=np.uint64), x * np.float32(scale), threads=os.cpu_count() or 1)
    index.save(str(out / "usearch.index"))


def load_usearch(out: Path, dtype: str):
    from usearch.index import Index

    index = Index.restore(str(out / "usearch.index"))
    scale = np.float32(USEARCH_I8_SCALE if dtype == "i8" else 1.0)

    def search(q: np.ndarray, count: int) -> np.ndarray:
        return index.search(q * scale, count, threads=1).keys

    def tune(ef: int) -> None:
        index.expansion_search = ef

    return search, tune


BUILD = {
    "numpy-f32": build_numpy,
    "faiss-ivf-sq8": build_faiss,
    "usearch-f16": lambda x, out: build_usearch(x, out, "f16"),
    "usearch-i8": lambda x, out: build_usearch(x, out, "i8"),
}
LOAD = {
    "numpy-f32": load_numpy,
    "faiss-ivf-sq8": load_faiss,
    "usearch-f16": lambda out: load_usearch(out, "f16"),
    "usearch-i8": lambda out: load_usearch(out, "i8"),
}


# --- data and ground truth ---------------------------------------------------------------------


def make_data(faces: int, queries: int, work: Path) -> None:
    started = time.perf_counter()
    x, _ = synthetic_descriptors(faces + queries, seed=0)
    print(f"generated {faces + queries:,} descriptors in {time.perf_counter() - started:.1f} s", flush=True)
    np.save(work / "faces.npy", x[queries:])
    np.save(work / "queries.npy", x[:queries])
    started = time.perf_counter()
    np.save(work / "truth.npy", exact_top(x[queries:], x[:queries], K))
    print(f"exact top-{K} of {queries} queries in {time.perf_counter() - started:.1f} s", flush=True)


def exact_top(x: np.ndarray, queries: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    q_squares = np.einsum("ij,ij->i", queries, queries)[:, None]
    best_d = np.full((len(queries), 0), np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        d = q_squares - 2 * (queries @ part.T) + np.einsum("ij,ij->i", part, part)[None, :]
        top = np.argpartition(d, k, axis=1)[:, :k]
        best_d = np.concatenate([best_d, np.take_along_axis(d, top, axis=1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(best_d, axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(best_d, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    return best_i


# --- one candidate, in fresh processes ---------------------------------------------------------


def run_build(name: str, work: Path) -> dict:
    x = np.load(work / "faces.npy")
    out = work / name
    out.mkdir()
    started = time.perf_counter()
    BUILD[name](x, out)
    return {"build_s": time.perf_counter() - started}


def run_load(name: str, work: Path) -> list[dict]:
    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    faces = np.load(work / "faces.npy", mmap_mode="r")
    if name.startswith("faiss"):
        import faiss  # noqa: F401  (the library itself is not the index's memory)
    if name.startswith("usearch"):
        import usearch.index  # noqa: F401
    before = rss_bytes()
    started = time.perf_counter()
    search, tune = LOAD[name](work / name)
    search(queries[0], CANDIDATES)
    load_s = time.perf_counter() - started
    grown = rss_bytes() - before
    size = sum(f.stat().st_size for f in (work / name).iterdir())
    knob, values = SETTINGS[name]
    results = []
    for value in values:
        tune(value)
        times, found = [], 0
        for q, exact in zip(queries, truth, strict=True):
            started = time.perf_counter()
            ids = search(q, CANDIDATES)
            times.append(time.perf_counter() - started)
            ids = np.sort(ids[ids >= 0])
            # The collection re-ranks candidates with their float32 descriptors.
            top = ids[np.argsort(np.linalg.norm(faces[ids] - q, axis=1))[:K]]
            found += len(set(top.tolist()) & set(exact.tolist()))
        results.append(
            {
                "name": f"{name} {knob}={value}" if knob else name,
                "load_s": load_s,
                "p50_ms": float(np.percentile(times, 50) * 1000),
                "p95_ms": float(np.percentile(times, 95) * 1000),
                "bytes_per_face": grown / len(faces),
                "file_bytes_per_face": size / len(faces),
                "recall_at_10": found / (K * len(queries)),
            }
        )
    return results


# --- the Collection itself, end to end -----------------------------------------------------------

WRITES = 200  # one-face uploads, each followed by a search
WRITES_WHILE_DOWN = 1000  # faces another process adds between close() and the restart


def face_record(number: int) -> dict:
    """A Face as the engine stores it (about 280 bytes of JSON)."""
    return {
        "FaceId": f"00000000-0000-4000-8000-{number:012d}",
        "BoundingBox": {"Width": 0.1862, "Height": 0.3721, "Left": 0.4083, "Top": 0.3214},
        "ImageId": f"00000000-0000-4000-9000-{number // 2:012d}",
        "ExternalImageId": f"photo-{number // 2}.jpg",
        "Confidence": 99.12,
        "IndexFacesModelVersion": "dlib-20.0.1/resnet-v1",
    }


def open_collection(folder: Path):
    from chalicelib.embedded.collection import Collection
    from chalicelib.embedded.database import Database

    return Collection(Database(folder / "faceprint.db"), folder / "faceprint.index")


def timed_searches(collection, queries: np.ndarray, max_distance: float = 0.6, limit: int = K) -> list[float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        collection.search(q, max_distance, limit)
        times.append(time.perf_counter() - started)
    return times


def run_collection_open(folder: Path) -> dict:
    """A fresh process opening the collection: its first search (load and
    catch up), the memory that adds, then warm searches."""
    queries = np.load(folder.parent / "queries.npy")
    import chalicelib.embedded.collection  # noqa: F401

    before = rss_bytes()
    started = time.perf_counter()
    collection = open_collection(folder)
    collection.search(queries[0], 0.6, K)
    first_s = time.perf_counter() - started
    grown = rss_bytes() - before
    times = timed_searches(collection, queries)
    return {"first_s": first_s, "grown": grown, "rss": rss_bytes(), "p50_ms": np.percentile(times, 50) * 1000}


def bench_collection(faces: int, queries: int) -> None:
    from chalicelib.embedded.collection import Collection

    work = Path(tempfile.mkdtemp(prefix="bench-collection-"))
    try:
        x, _ = synthetic_descriptors(faces + queries + WRITES + WRITES_WHILE_DOWN, seed=0)
        q, extra, stored = x[:queries], x[queries : queries + WRITES + WRITES_WHILE_DOWN], x[-faces:]
        np.save(work / "queries.npy", q)
        truth = exact_top(stored, q, K)
        (work / "empty").mkdir()
        open_collection(work / "empty").close()
        empty = in_subprocess("collection-open", "empty", work)

        collection: Collection = open_collection(work / "full")
        started = time.perf_counter()
        for start in range(0, faces, 10_000):
            collection.add([(face_record(i), stored[i]) for i in range(start, min(faces, start + 10_000))])
        print(f"inserted {faces:,} faces in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        collection.search(q[0], 0.6, K)
        print(f"index built from the table (no snapshot yet) in {time.perf_counter() - started:.1f} s", flush=True)

        warm = timed_searches(collection, q)
        found = 0
        for query, exact in zip(q, truth, strict=True):
            got = {f["FaceId"] for f, _ in collection.search(query, 3.0, K)}
            found += len(got & {face_record(int(i))["FaceId"] for i in exact})
        after_write = []
        for i in range(WRITES):
            collection.add([(face_record(faces + i), extra[i])])
            started = time.perf_counter()
            collection.search(q[i % len(q)], 0.6, K)
            after_write.append(time.perf_counter() - started)
        wide = timed_searches(collection, q[:20], 3.0, 4096)
        started = time.perf_counter()
        collection.close()
        save_s = time.perf_counter() - started
        other = open_collection(work / "full")
        other.add([(face_record(faces + i), extra[i]) for i in range(WRITES, WRITES + WRITES_WHILE_DOWN)])
        restarted = in_subprocess("collection-open", "full", work)

        def ms(times, p):
            return np.percentile(times, p) * 1000

        print(f"{faces:,} faces, {queries} queries (threshold 80: d <= 0.6, max 10), Collection.search end to end:")
        print(f"  warm search p50 {ms(warm, 50):.2f} ms, p95 {ms(warm, 95):.2f} ms")
        print(f"  the same queries on an empty collection: p50 {empty['p50_ms']:.2f} ms")
        print(
            f"  search right after a one-face add: p50 {ms(after_write, 50):.2f} ms, p95 {ms(after_write, 95):.2f} ms"
        )
        print(f"  max=4096, threshold 0 (every face a match): p50 {ms(wide, 50):.1f} ms, p95 {ms(wide, 95):.1f} ms")
        print(f"  recall@10 against exact search: {found / (K * len(q)):.4f}")
        print(f"  close() (save the index): {save_s:.1f} s")
        print(
            f"  restart, {WRITES_WHILE_DOWN} faces added while down: first search (load + catch-up) "
            f"{restarted['first_s']:.2f} s, then p50 {restarted['p50_ms']:.2f} ms"
        )
        per_face = (restarted["rss"] - empty["rss"]) / (faces + WRITES + WRITES_WHILE_DOWN)
        print(
            f"  memory: {per_face:.0f} bytes per face over a process with an empty collection "
            f"(RSS {restarted['rss'] / 2**20:.0f} MiB vs {empty['rss'] / 2**20:.0f} MiB)"
        )
    finally:
        shutil.rmtree(work)


def in_subprocess(step: str, name: str, work: Path):
    done = subprocess.run(
        [sys.executable, __file__, "--step", step, "--name", name, "--work", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--only", help="comma-separated: " + ", ".join(CANDIDATE_NAMES))
    parser.add_argument("--collection", action="store_true", help="bench the Collection itself, end to end")
    parser.add_argument("--step", choices=("build", "load", "collection-open"), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        if args.step == "collection-open":
            result = run_collection_open(args.work / args.name)
        else:
            result = (run_build if args.step == "build" else run_load)(args.name, args.work)
        print(json.dumps(result))
        return
    if args.collection:
        bench_collection(args.faces, args.queries)
        return
    names = args.only.split(",") if args.only else list(CANDIDATE_NAMES)
    work = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    try:
        make_data(args.faces, args.queries, work)
        print(
            f"{'candidate':24} {'build s':>8} {'load s':>7} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'B/face RSS':>10} {'B/face file':>11} {'recall@10':>9}",
            flush=True,
        )
        for name in names:
            if importlib.util.find_spec(MODULES[name]) is None:
                print(f"{name:24} not installed: pip install {PACKAGES[MODULES[name]]}", flush=True)
                continue
            built = in_subprocess("build", name, work)
            for result in in_subprocess("load", name, work):
                print(
                    f"{result['name']:24} {built['build_s']:8.1f} {result['load_s']:7.2f} {result['p50_ms']:7.2f} "
                    f"{result['p95_ms']:7.2f} {result['bytes_per_face']:10.0f} {result['file_bytes_per_face']:11.0f} "
                    f"{result['recall_at_10']:9.4f}",
                    flush=True,
                )
            shutil.rmtree(work / name)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
