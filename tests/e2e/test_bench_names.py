"""scripts/bench_names.py (`make bench-names`) at 0 and 2,000 seeded
strangers with one variant per face, so that it cannot rot: it runs end to
end against `make run`, its own verdict passes (the rule names no stranger
and names the right person as often at 2,000 as at 0, and as often as
today's rule at 0), it prints the comparison with real strangers and every
column of README "Names at a million faces", and it leaves nothing running."""

import re
import subprocess
import sys

from tests.support import processes
from tests.support.photos import REPO

FIGURES = [
    "real strangers (shared photos)",
    "seeded strangers, to each other",
    "seeded strangers, to the real faces",
    "the rule's model N(0.83, 0.08)",
    "right named",
    "false names/search",
    "only strangers",
    "best stranger max / p50",
    "right person min / p50",
    "the rule names no stranger: yes; names the right person as often as at 0: yes",
]


def test_the_names_benchmark_runs_at_a_small_size_and_leaves_nothing_running():
    strays_before = set(processes.stray_workers())
    done = subprocess.run(
        [sys.executable, "scripts/bench_names.py", "--sizes", "0,2000", "--variants", "grey 150 px"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    missing = [figure for figure in FIGURES if figure not in done.stdout]
    assert missing == [], done.stdout
    rows = {
        int(match.group(1).replace(",", "")): match.group(0)
        for match in re.finditer(r"^\s+([\d,]+)\s+[\d,-]+\s+[\d.-]+\s+\d+/\d+ / \d+/\d+.*$", done.stdout, re.MULTILINE)
    }
    assert sorted(rows) == [0, 2000], done.stdout
    assert set(processes.stray_workers()) <= strays_before
