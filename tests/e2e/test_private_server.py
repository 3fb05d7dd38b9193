"""`make run`'s own output, as a user's terminal or a service manager's log
keeps it: the access log names route templates, never a photo's key, a
person's id or name, or a query string; and what the server writes is its
owner's alone."""

import os
import signal
import subprocess
import sys
import urllib.parse

from tests.support.live_server import Server, free_port
from tests.support.photos import REPO, photo


def test_the_local_servers_log_holds_no_key_id_name_or_query(tmp_path):
    port, data = free_port(), tmp_path / "data"
    env = {**os.environ, "FACEPRINT_DATA_DIR": str(data)}
    serve = [sys.executable, "-m", "chalicelib.ops.serve", "--stage", "local", "--host", "127.0.0.1"]
    server_process = subprocess.Popen(
        [*serve, "--port", str(port), "--no-autoreload"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        server = Server(f"http://127.0.0.1:{port}", server_process)
        server.wait_ready(120)
        jpeg = {"Content-Type": "image/jpeg", "x-amz-meta-name": "Zebulon Quux"}
        assert server.request("PUT", "/index/zebulon-at-home.jpg", photo("Keanu-Reeves.jpg"), jpeg)[0] == 201
        name = {"Content-Type": "application/json"}
        assert server.request("PUT", "/people/zebulon", b'{"name": "Zebulon Quux"}', name)[0] == 201
        assert server.request("GET", "/faces?person=zebulon")[0] == 200
        assert server.request("GET", "/images/" + urllib.parse.quote("zebulon-at-home.jpg"))[0] == 200
        assert server.request("GET", "/nowhere/zebulon")[0] in (403, 404)
    finally:
        os.killpg(server_process.pid, signal.SIGTERM)
        said = server_process.communicate(timeout=60)[0].decode()
    assert '"PUT /index/{filename}" 201' in said and '"GET /faces" 200' in said
    assert '"GET /images/{key}" 200' in said
    assert "zebulon" not in said.lower()
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    written = [path for path in data.rglob("*") if path.stat().st_mode & 0o077]
    assert written == []
