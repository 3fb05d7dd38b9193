"""Stopping the server stops its analysis workers (about 150 MB each),
however it is stopped: Ctrl-C, SIGTERM as a service manager sends it, or
SIGKILL, after which no clean-up code can run."""

import signal

import pytest

from tests.support.live_server import live_server
from tests.support.photos import photo
from tests.support.processes import wait_gone, workers_below

JPEG = {"Content-Type": "image/jpeg"}


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_the_analysis_workers_end_with_the_server(tmp_path, stop):
    with live_server(tmp_path / "data") as server:
        status, _, _ = server.request("PUT", "/index/k.jpg", photo("Keanu-Reeves.jpg"), JPEG)
        assert status == 201
        workers = workers_below(server.process.pid)
        assert workers, "indexing a photo started no analysis worker"
        server.process.send_signal(stop)
        server.process.wait(30)
        assert wait_gone(workers, timeout=10) == []


@pytest.mark.slow
def test_sigterm_stops_the_server_as_ctrl_c_does(tmp_path):
    """SIGTERM is not the sudden death it is by default: the server shuts
    down (its workers closed by the pool, not by their watchdog)."""
    with live_server(tmp_path / "data") as server:
        server.request("POST", "/search", photo("Keanu-Reeves.jpg"), JPEG)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) != -signal.SIGTERM
