"""`make test` on a new machine: it says which system packages it installs
before it installs them (as root), says how to do without, and `make test
BROWSER=0` skips the browser tests with a line that says so. `make help`
lists every command. apt-get and id are stand-ins on the PATH here: the
test installs nothing."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.photos import REPO

MISSING = "/nonexistent/chromium"


def _make(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def _stand_ins(tmp_path: Path, uid: int) -> dict[str, str]:
    """A PATH whose apt-get only says it ran, and whose id answers `uid`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {"apt-get": 'echo "APT-GET $*"', "id": f"echo {uid}"}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_as_root_it_says_what_it_installs_before_installing_it(tmp_path):
    done = _make("check-browser", f"CHROMIUM={MISSING}", env=_stand_ins(tmp_path, 0))
    said = done.stdout
    assert said.index("Installing system packages now") < said.index("APT-GET")
    assert "--no-install-recommends chromium" in said and "make test BROWSER=0" in said
    assert done.returncode == 2  # the stand-in installed nothing: it says so, and how to skip


def test_as_another_user_it_installs_nothing_and_says_how_to_go_on(tmp_path):
    done = _make("check-browser", f"CHROMIUM={MISSING}", env=_stand_ins(tmp_path, 1000))
    assert done.returncode == 2 and "APT-GET" not in done.stdout
    assert "Install it as root" in done.stdout and "make test BROWSER=0" in done.stdout


def test_browser_0_neither_checks_nor_installs_chromium(tmp_path):
    done = _make("-n", "test", "BROWSER=0", f"CHROMIUM={MISSING}", env=_stand_ins(tmp_path, 0))
    assert "BROWSER=0: the console's browser tests are skipped" in done.stdout
    assert "apt-get" not in done.stdout and "APT-GET" not in done.stdout


@pytest.mark.slow
def test_browser_0_skips_each_browser_test_with_a_line_saying_why():
    test = "tests/e2e/test_console.py::test_a_bare_gateway_refusal_points_at_the_key_field"
    env = {**os.environ, "FACEPRINT_BROWSER": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", test],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout and "skipped by make test BROWSER=0" in done.stdout


def test_make_help_names_every_command_with_what_it_does():
    done = _make("help", env=dict(os.environ))
    assert done.returncode == 0
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("  make ")}
    phony = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith(".PHONY:"):
            phony.update(line.split(":", 1)[1].split())
    internal = {"help", "check-faces", "check-browser", "no-browser", "$(STAMP)"}
    assert phony - internal <= listed, phony - internal - listed
    assert _make(env=dict(os.environ)).stdout == done.stdout  # plain `make` is `make help`
