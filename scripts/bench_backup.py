"""make backup and make restore: time, size and peak memory (docs/operations.md: "Backups").

On a fresh data folder: the shared photos copied into --copies folders are
imported; a first backup (everything copied), a second one (nothing new), a
third after one more folder of photos (only those copied); a restore into
an empty folder and its check. Then, with --faces N (default 1,000,000),
`make seed FACES=N` into the same archive and the same again, with `make run`
serving it: searches are timed while the backup runs, against searches
before it (the backup's read transaction must not hold them up).

    .venv/bin/python scripts/bench_backup.py [--copies 10] [--faces 1000000]

Each command runs as `make ...` would run it, in a child process, measured
as bench_scale.py measures (wall time; peak resident memory of its largest
process, as /usr/bin/time -v reports it). Nothing is left running."""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import make_run, percentile  # noqa: E402
from bench_scale import Measured, run  # noqa: E402

from tests.support.photos import FACES_DIR, people, photo  # noqa: E402

QUERY = "Keanu-Avril-Lawrence.jpg"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="folders of the shared photos to import")
    parser.add_argument("--faces", type=int, default=1_000_000, help="synthetic faces to seed (0: none)")
    args = parser.parse_args()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        root = Path(tmp)
        data, backups = root / "data", root / "backup"
        env = {name: value for name, value in os.environ.items() if name != "STAGE"} | {"FACEPRINT_DATA_DIR": str(data)}
        library = root / "Pictures"
        for copy in range(args.copies + 1):
            folder = library / f"roll{copy:02d}"
            folder.mkdir(parents=True)
            for name in people():
                shutil.copy(FACES_DIR / name, folder / name)
        last = library / f"roll{args.copies:02d}"
        held_back = root / "later"
        shutil.move(last, held_back)
        print(f"{os.cpu_count()} cpus; {args.copies} folders of the shared photos in {library}", flush=True)

        imported = command(["import", f"DIR={library}"], env, failures)
        print(f"make import: {imported.seconds:.1f} s; {last_line(imported)}", flush=True)
        first = backup(backups, env, failures, "first backup (everything copied)")
        backup(backups, env, failures, "second backup (nothing new)")
        shutil.move(held_back, last)
        command(["import", f"DIR={library}"], env, failures)
        backup(backups, env, failures, f"after importing one more folder ({len(people())} photos)")
        restore(backups, root / "restored", env, failures)
        print(f"  backup folder: {size(backups)} ({manifest(backups)['photos']} photos)", flush=True)
        del first

        if args.faces:
            seeded = command(["seed", f"FACES={args.faces}"], env, failures)
            print(f"make seed FACES={args.faces:,}: {seeded.seconds:.1f} s", flush=True)
            with make_run(data) as server:
                before = searches(server, 20)
                during: list[float] = []
                stop = threading.Event()
                searching = threading.Thread(target=search_until, args=(server, stop, during))
                searching.start()
                try:
                    backup(backups, env, failures, f"backup of the {args.faces:,}-face archive, server searching")
                finally:
                    stop.set()
                    searching.join()
                print(
                    f"  searches before the backup: p50 {percentile(before, 50):.0f} ms, max {max(before):.0f} ms; "
                    f"during it ({len(during)}): p50 {percentile(during, 50):.0f} ms, "
                    f"max {max(during):.0f} ms",
                    flush=True,
                )
                backup(backups, env, failures, "again, nothing new")
            restore(backups, root / "restored-seeded", env, failures)
            print(f"  backup folder: {size(backups)}", flush=True)
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    return 0


def command(argv: list[str], env: dict[str, str], failures: list[str]) -> Measured:
    measured = run(["make", "--no-print-directory", *argv], env)
    if measured.returncode != 0:
        failures.append(f"make {' '.join(argv)} exited {measured.returncode}: {measured.output[-500:]}")
    return measured


def backup(to: Path, env: dict[str, str], failures: list[str], label: str) -> Measured:
    measured = command(["backup", f"TO={to}"], env, failures)
    report = manifest(to)
    print(
        f"{label}: {measured.seconds:.1f} s ({report['seconds']:.1f} s of backing up, the rest starting Python), "
        f"peak {measured.max_rss / 1e6:.0f} MB; copied {report['copied']:,} "
        f"photos ({report['copied_bytes'] / 1e6:.1f} MB) of {report['photos']:,} "
        f"({report['photo_bytes'] / 1e6:.1f} MB); "
        f"database {report['database_bytes'] / 1e6:,.1f} MB in {report['database_seconds']:.1f} s",
        flush=True,
    )
    return measured


def restore(source: Path, into: Path, env: dict[str, str], failures: list[str]) -> None:
    measured = command(["restore", f"FROM={source}"], {**env, "FACEPRINT_DATA_DIR": str(into)}, failures)
    print(f"make restore: {measured.seconds:.1f} s, peak {measured.max_rss / 1e6:.0f} MB", flush=True)
    for line in measured.output.splitlines():
        if line.startswith(("Restored", "0 disagreement", "1 disagreement")) or "in flight" in line:
            print(f"  {line.strip()}", flush=True)


def searches(server, count: int) -> list[float]:
    return [search_ms(server) for _ in range(count)]


def search_until(server, stop: threading.Event, times: list[float]) -> None:
    while not stop.is_set():
        times.append(search_ms(server))


def search_ms(server) -> float:
    started = time.perf_counter()
    status, _, _ = server.request("POST", "/search", photo(QUERY), {"Content-Type": "image/jpeg"})
    assert status == 200
    return (time.perf_counter() - started) * 1000


def manifest(folder: Path) -> dict:
    return json.loads((folder / "backup.json").read_text())


def size(folder: Path) -> str:
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    return f"{total / 1e6:,.1f} MB"


def last_line(measured: Measured) -> str:
    lines = [line for line in measured.output.splitlines() if "photo(s) under" in line]
    return lines[-1].strip() if lines else ""


if __name__ == "__main__":
    sys.exit(main())
