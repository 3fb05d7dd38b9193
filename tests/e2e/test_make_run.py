"""`make run` as the README describes it: PORT and FACEPRINT_DATA_DIR work
through it (the local stage's config must not overwrite them), and every
way it cannot start, or is stopped, ends in one line."""

import json
import os
import re
import signal
import socket
import subprocess

from tests.support.live_server import Server, free_port
from tests.support.photos import REPO, photo
from tests.support.terminal import Terminal

STOPPED = "Stopped: the server and its analysis workers have ended."


def test_make_run_serves_on_port_with_the_data_dir_it_was_given(tmp_path):
    port, data = free_port(), tmp_path / "elsewhere"
    env = {**os.environ, "PORT": str(port), "FACEPRINT_DATA_DIR": str(data)}
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        server = Server(f"http://127.0.0.1:{port}", make)
        server.wait_ready(120)
        status, body, _ = server.request("PUT", "/index/k.jpg", photo("obama.jpg"), {"Content-Type": "image/jpeg"})
        assert status == 201 and body["image"]["status"] == "indexed"
        assert (data / "faceprint.db").is_file()
        assert len(list((data / "photos").glob("*.json"))) == 1
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(30)


def test_ctrl_c_stops_make_run_in_one_line(tmp_path):
    """At a terminal: no "Aborted!", no make error, no faiss loader chatter
    on the way (a search loads faiss), and the workers end with it."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "FACEPRINT_DATA_DIR": str(tmp_path / "data")}
    term = Terminal(["make", "--no-print-directory", "run"], env, str(REPO))
    try:
        server = Server(f"http://127.0.0.1:{port}", _NoProcess())
        server.wait_ready(120)
        status, _, _ = server.request("POST", "/search", photo("obama.jpg"), {"Content-Type": "image/jpeg"})
        assert status == 200
        assert term.read_until(lambda text: '"POST /search" 200' in text, 30)
        started = term.text
        term.ctrl_c()
        assert term.wait(60) == 130  # make ends with the Ctrl-C, as a shell expects
    finally:
        term.kill()
    said = term.text[len(started) :].replace("^C", "").strip().splitlines()
    logged = [line for line in said if line.startswith("{")]  # the server's log, as every request's
    assert [json.loads(line)["event"] for line in logged] == ["stopping", "workers stopped"], term.text
    assert [line for line in said if line not in logged and line.strip()] == [STOPPED], term.text
    assert "Could not load library" not in term.text and "Traceback" not in term.text


class _NoProcess:
    """Server.wait_ready's process, for a server the terminal runs."""

    returncode = None

    def poll(self):
        return None


def _make_run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_run_on_a_port_in_use_says_so_in_one_sentence(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = _make_run({**os.environ, "PORT": str(port), "FACEPRINT_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert said == [
        f"Port {port} on 127.0.0.1 is in use by another program (another `make run`?): stop it, "
        f"or serve on another port: make run PORT={port + 1}."
    ]
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_make_run_refuses_a_data_folder_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("a file")
    done = _make_run({**os.environ, "PORT": str(free_port()), "FACEPRINT_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert said == [
        f"The data folder, FACEPRINT_DATA_DIR={tmp_path / 'data'}, is a file: name a folder (it is made if missing), "
        "e.g. FACEPRINT_DATA_DIR=$HOME/faceprint-data."
    ]


def test_ctrl_c_while_make_run_starts_ends_in_one_line(tmp_path):
    """Ctrl-C while chalice and the app are still loading: one line, no
    KeyboardInterrupt, no make error; make ends with the Ctrl-C."""
    env = {**os.environ, "PORT": str(free_port()), "FACEPRINT_DATA_DIR": str(tmp_path / "data")}
    term = Terminal(["make", "--no-print-directory", "run"], env, str(REPO))
    try:
        assert term.read_until(lambda text: "FACEPRINT_API_KEY is not set" in text, 60), term.text
        started = term.text
        term.ctrl_c()
        assert term.wait(60) == 130
    finally:
        term.kill()
    said = [line for line in _plain(term.text[len(started) :]).splitlines() if line.strip()]
    assert (
        "Traceback" not in term.text
        and "KeyboardInterrupt" not in term.text
        and not re.search(r"make(\[\d+\])?: \*\*\*", term.text)
    )
    assert said[-1] in ("Stopped before the server started.", STOPPED)
    assert not [line for line in said[:-1] if not line.startswith("{")], term.text  # else only the server's log


def _plain(text: str) -> str:
    """The text without ^C and what a terminal library wrote to probe the terminal (escape sequences)."""
    return re.sub(r"\x1b(\[[0-9;?>]*[a-zA-Z]|P[^\x1b]*\x1b\\)", "", text).replace("^C", "")
