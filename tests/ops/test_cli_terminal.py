"""The maintenance commands as a user at a terminal sees them (a
pseudo-terminal), and as a script sees them (a pipe): a progress bar
without log lines in between, a stop with Ctrl-C that says how to carry on,
and exit statuses a script can use."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.photos import REPO, people, photo_path
from tests.support.terminal import Terminal


@pytest.fixture
def photos(tmp_path) -> Path:
    """The shared photos with faces, in three folders (42 photos or so)."""
    root = tmp_path / "Pictures"
    for copy in range(3):
        (root / f"roll{copy}").mkdir(parents=True)
        for name, who in people().items():
            if who:
                shutil.copy(photo_path(name), root / f"roll{copy}" / name)
    return root


def _env(tmp_path) -> dict[str, str]:
    return {**os.environ, "FACEPRINT_DATA_DIR": str(tmp_path / "data")}


def _make_import(folder: Path, tmp_path) -> subprocess.CompletedProcess:
    """`make import` piped, as a script runs it."""
    return subprocess.run(
        ["make", "--no-print-directory", "import", f"DIR={folder}"],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_import_and_reindex_at_a_terminal_draw_a_bar_and_log_to_a_file(photos, tmp_path):
    term = Terminal(["make", "--no-print-directory", "import", f"DIR={photos / 'roll0'}"], _env(tmp_path), str(REPO))
    assert term.wait(300) == 0, term.text
    assert '{"event"' not in term.text  # no JSON line under the bar
    assert re.search(r"\r\[#{30}\] \d+/\d+ photos", term.text)
    log = tmp_path / "data" / "import-local.log"
    assert f"(each photo's log line: {log})" in term.text
    assert sum('"event":"indexed"' in line for line in log.read_text().splitlines()) == len(
        list(photos.glob("roll0/*"))
    )
    term = Terminal(["make", "--no-print-directory", "reindex"], _env(tmp_path), str(REPO))
    assert term.wait(300) == 0, term.text
    assert '{"event"' not in term.text and "\r[" in term.text
    assert "reindexed" in term.text.splitlines()[-1]
    assert (tmp_path / "data" / "reindex-local.log").read_text().count('"event":"indexed"') >= len(
        list(photos.glob("roll0/*"))
    )


def test_import_piped_logs_each_photo_on_stderr_and_draws_no_bar(photos, tmp_path):
    done = _make_import(photos / "roll0", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert done.stderr.count('"event":"indexed"') == len(list(photos.glob("roll0/*")))
    assert "photos," in done.stderr  # the plain progress line, at the end at least
    assert "0 refused, 0 failed" in done.stdout and "each photo's log line" not in done.stdout


def test_ctrl_c_stops_an_import_in_a_sentence_and_the_next_run_carries_on(photos, tmp_path):
    term = Terminal(["make", "--no-print-directory", "import", f"DIR={photos}"], _env(tmp_path), str(REPO))
    try:
        assert term.read_until(lambda text: re.search(r"\] [1-9]\d*/\d+ photos", text), 300), term.text
        term.ctrl_c()
        status = term.wait(120)
    finally:
        term.kill()
    assert status == 130  # make ends with the Ctrl-C, as a shell expects of an interrupted command
    assert "Stopped. What was imported is kept; run the same command again to carry on where it stopped." in term.text
    assert "Traceback" not in term.text and "KeyboardInterrupt" not in term.text and "make: ***" not in term.text
    again = _make_import(photos, tmp_path)
    assert again.returncode == 0, again.stderr
    unchanged = int(re.search(r"(\d+) unchanged since the last import", again.stdout).group(1))
    imported = int(re.search(r"(\d+) imported", again.stdout).group(1))
    assert unchanged > 0 and unchanged + imported == len(list(photos.rglob("*.jpg")))
