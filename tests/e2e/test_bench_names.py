"""scripts/bench_names.py (`make bench-names`) at 0 and 2,000 seeded
strangers with one probe per face, so that it cannot rot: it runs end to
end against `make run`, its own verdict passes (the rule names at most 0.01
false names a search at every size, and the right person as often at 0 as
the previous rule), it prints the comparison with real strangers, the
stranger tail offline, the probes' similarities and every column of docs/engine.md
"Names at a million faces" (with why searches name nobody, and other
spreads judged on the same searches), and it leaves nothing running."""

import re
import subprocess
import sys

from tests.support import processes
from tests.support.photos import REPO

FIGURES = [
    "real strangers (shared photos)",
    "seeded strangers, to each other",
    "seeded strangers, to the real faces",
    "the stranger model N(0.83, 0.08)",
    "The stranger tail, offline",
    "the rule with",
    "The right person's best similarity, by probe kind",
    "blurred jpeg",
    "right named",
    "kept",
    "ranked first",
    "false names/search",
    "no name",
    "best other p50/max",
    "Why searches of indexed people name nobody",
    "under 80",
    "not in 20",
    "other above",
    "withheld",
    "Other rules on the same searches",
    "they agree with the server's names in",
    "targets at 2,000: right named >= 95% of the empty archive's:",
    "the empty archive names the right person",
]


def test_the_names_benchmark_runs_at_a_small_size_and_leaves_nothing_running():
    strays_before = set(processes.stray_workers())
    done = subprocess.run(
        [sys.executable, "scripts/bench_names.py", "--sizes", "0,2000", "--kinds", "blurred jpeg", "--draws", "1"],
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
        for match in re.finditer(r"^\s+([\d,]+)\s+[\d,-]+\s+\d+/\d+ / \d+/\d+.*$", done.stdout, re.MULTILINE)
    }
    assert sorted(rows) == [0, 2000], done.stdout
    # the other rules are judged as the server judges: at its spread, the same names
    agree = re.search(r"agree with the server's names in ([\d.]+)% of searches", done.stdout)
    assert float(agree.group(1)) >= 95.0, done.stdout
    assert set(processes.stray_workers()) <= strays_before
