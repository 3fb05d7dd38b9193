"""scripts/bench_scale.py (`make bench-scale`) at 2,000 faces, so that it
cannot rot: it runs end to end against `make run`, the checks it makes on
the way pass (seeded faces seen by the running server, check clean, unseed
complete), it prints every figure docs/engine.md "A million faces" gives, and it
leaves nothing running."""

import subprocess
import sys

from tests.support import processes
from tests.support.photos import REPO

FIGURES = [
    "warm search p50 / p95, ms",
    "the vector part (p50, seeded - empty), ms",
    "ratio to a warm search (p50)",
    "upload p50 / p95, ms",
    "first search after a restart, s",
    "per seeded face, bytes",
    "analysis workers' VmRSS, MB each",
    "GET /images?limit=100, a later page, ms",
    "DELETE /faces/{FaceId}, ms",
    "DELETE /images/{key}, ms",
    "seeded faces among its matches: yes",
    "a synthetic match's photo (GET /images/{key}/file): 404",
    "make check-consistency at 2,0",
    "make reindex at 2,0",
    "recall@10 of the collection against an exact scan",
    "Collection.search alone",
    "synthetic images left: 0",
]


def test_the_scale_benchmark_runs_at_a_small_size_and_leaves_nothing_running():
    strays_before = set(processes.stray_workers())
    done = subprocess.run(
        [sys.executable, "scripts/bench_scale.py", "--faces", "2000", "--searches", "3", "--uploads", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    missing = [figure for figure in FIGURES if figure not in done.stdout]
    assert missing == [], done.stdout
    assert "0 disagreement(s) in stage 'local'" in done.stdout
    assert set(processes.stray_workers()) <= strays_before
