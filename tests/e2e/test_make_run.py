"""`make run` as the README describes it: PORT and FACEPRINT_DATA_DIR work
through it (the local stage's config must not overwrite them)."""

import json
import os
import signal
import subprocess

from tests.support.live_server import Server, free_port
from tests.support.photos import REPO, photo
from tests.support.terminal import Terminal


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
        status, body, _ = server.request(
            "PUT", "/index/k.jpg", photo("Keanu-Reeves.jpg"), {"Content-Type": "image/jpeg"}
        )
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
        status, _, _ = server.request("POST", "/search", photo("Keanu-Reeves.jpg"), {"Content-Type": "image/jpeg"})
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
    assert [line for line in said if line not in logged and line.strip()] == [
        "Stopped: the server and its analysis workers have ended."
    ], term.text
    assert "Could not load library" not in term.text and "Traceback" not in term.text


class _NoProcess:
    """Server.wait_ready's process, for a server the terminal runs."""

    returncode = None

    def poll(self):
        return None
