"""`make run` as the README describes it: PORT and FACEPRINT_DATA_DIR work
through it (the local stage's config must not overwrite them)."""

import os
import signal
import subprocess

from tests.support.live_server import Server, free_port
from tests.support.photos import REPO, photo


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
