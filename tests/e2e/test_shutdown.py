"""Stopping the server stops its analysis workers (about 150 MB each),
however it is stopped: Ctrl-C, SIGTERM as a service manager sends it, or
SIGKILL, after which no clean-up code can run; and a stop is over within
seconds, however much work waits and whatever holds it up
(wiring.stop_on_signals), leaving what it did not finish as a crash would:
pending, for a repair to complete."""

import contextlib
import hashlib
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.core.config import Settings
from chalicelib.embedded.vectors import VectorIndex
from chalicelib.ops import maintenance
from tests.support.live_server import live_server
from tests.support.photos import people, photo
from tests.support.processes import wait_gone, workers_below

JPEG = {"Content-Type": "image/jpeg"}
# The stop's own deadline (wiring.STOP_DEADLINE_SECONDS), and room for a
# loaded machine to give the ending processes the CPU they need.
STOPPED_WITHIN = 30
UPLOADS = 12  # at once, to two workers: most of them wait their turn
BIG = sorted(people(), key=lambda name: -len(photo(name)))[:4]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "background_job"),
    [
        pytest.param(signal.SIGINT, False, id="SIGINT"),
        # A script's `make run &` starts the server with SIGINT ignored.
        pytest.param(signal.SIGINT, True, id="SIGINT-to-a-background-job"),
        pytest.param(signal.SIGTERM, False, id="SIGTERM"),
        pytest.param(signal.SIGKILL, False, id="SIGKILL"),
    ],
)
def test_the_analysis_workers_end_with_the_server(tmp_path, stop, background_job):
    with live_server(tmp_path / "data", background_job=background_job) as server:
        status, _, _ = server.request("PUT", "/index/k.jpg", photo("Keanu-Reeves.jpg"), JPEG)
        assert status == 201
        workers = workers_below(server.process.pid)
        assert workers, "indexing a photo started no analysis worker"
        server.process.send_signal(stop)
        server.process.wait(STOPPED_WITHIN)
        assert wait_gone(workers, timeout=10) == []


@pytest.mark.slow
def test_sigterm_stops_the_server_as_ctrl_c_does(tmp_path):
    """SIGTERM is not the sudden death it is by default: the server shuts
    down (its workers closed by the pool, not by their watchdog)."""
    with live_server(tmp_path / "data") as server:
        server.request("POST", "/search", photo("Keanu-Reeves.jpg"), JPEG)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(STOPPED_WITHIN) != -signal.SIGTERM
    assert _events(tmp_path, "workers stopped")


@pytest.mark.slow
def test_a_busy_server_stops_without_analysing_the_photos_waiting_their_turn(tmp_path):
    data_dir = tmp_path / "data"
    keys = [f"upload-{n}.jpg" for n in range(UPLOADS)]
    with live_server(data_dir) as server:
        uploads = [
            threading.Thread(target=_quietly, args=(server.request, "PUT", f"/index/{key}", photo(name), JPEG))
            for key, name in zip(keys, BIG * UPLOADS, strict=False)
        ]
        for upload in uploads:
            upload.start()
        _wait_stored(data_dir, keys)  # each of them now being analysed or waiting its turn
        server.process.send_signal(signal.SIGINT)
        server.process.wait(STOPPED_WITHIN)
        for upload in uploads:
            upload.join(STOPPED_WITHIN)
    # The workers stopped (how many analyses they abandoned depends on the machine's load:
    # under load some uploads have not reached the pool yet when the signal comes).
    assert len(_events(tmp_path, "workers stopped")) == 1
    replies = [line["status"] for line in _events(tmp_path, "request") if line["method"] == "PUT"]
    assert None in replies and 500 not in replies  # abandoned, without a reply: no error
    svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(data_dir)}))
    statuses = {key: (svc.records.get_image(key) or {}).get("status") for key in keys}
    assert "pending" in statuses.values(), statuses  # not analysed after the signal
    assert "failed" not in statuses.values(), statuses  # a stop is no failure of the photo
    # Left as a crash leaves them: pending, never half-indexed; a repair completes them.
    found = maintenance.check(svc)
    assert {d.kind for d in found} <= {maintenance.PHOTO_PENDING, maintenance.PHOTO_NOT_INDEXED}, found
    maintenance.repair(svc, found)
    assert maintenance.check(svc) == []
    for key, name in zip(keys, BIG * UPLOADS, strict=False):
        assert svc.records.get_image(key)["faceCount"] == len(people()[name])


@pytest.mark.slow
def test_a_stop_saves_the_collection_index_for_the_next_start(tmp_path):
    data_dir = tmp_path / "data"
    with live_server(data_dir) as server:
        server.request("PUT", "/index/a.jpg", photo("Keanu-Reeves.jpg"), JPEG)
        server.request("POST", "/search", photo("Keanu-Reeves.jpg"), JPEG)  # the index, built and saved
        server.request("PUT", "/index/b.jpg", photo("Avril-Lavigne.jpg"), JPEG)  # a change since
        server.process.send_signal(signal.SIGINT)
        server.process.wait(STOPPED_WITHIN)
    assert VectorIndex.recorded(data_dir / "faceprint.index")["seq"] == _last_change(data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("second_signal", [False, True], ids=["deadline", "second-SIGINT"])
def test_a_stop_held_up_by_another_writer_ends_at_its_deadline(tmp_path, second_signal):
    """Another process holds SQLite's write lock (as `make seed` does for
    each batch) while the server saves its index at exit: SQLite would wait
    for it up to its busy timeout (30 s). The stop ends at its deadline, or
    at once on a second Ctrl-C (the signal's default action: the main thread
    waits in C, where no handler runs), and nothing is lost: the index
    snapshot is saved before its log is compacted, and in any case derived
    from SQLite."""
    data_dir = tmp_path / "data"
    with live_server(data_dir) as server:
        server.request("PUT", "/index/a.jpg", photo("Keanu-Reeves.jpg"), JPEG)
        server.request("POST", "/search", photo("Keanu-Reeves.jpg"), JPEG)
        server.request("PUT", "/index/b.jpg", photo("Avril-Lavigne.jpg"), JPEG)
        workers = workers_below(server.process.pid)
        with contextlib.closing(sqlite3.connect(data_dir / "faceprint.db", isolation_level=None)) as writer:
            writer.execute("BEGIN IMMEDIATE")
            server.process.send_signal(signal.SIGINT)
            if second_signal:
                time.sleep(1)
                server.process.send_signal(signal.SIGINT)
            status = server.process.wait(STOPPED_WITHIN)
            writer.execute("ROLLBACK")
        assert wait_gone(workers, timeout=10) == []
    ended = _events(tmp_path, "stopped now")
    if second_signal:
        assert status == -signal.SIGINT and ended == []
    else:
        assert ended == [{"event": "stopped now", "why": f"the stop took over {wiring.STOP_DEADLINE_SECONDS:g} s"}]
    with live_server(data_dir) as server:
        for key, name in [("a.jpg", "Keanu-Reeves.jpg"), ("b.jpg", "Avril-Lavigne.jpg")]:
            status, body, _ = server.request("POST", "/search", photo(name), JPEG)
            assert status == 200 and body["matches"][0]["imageKey"] == key


def _quietly(call, *args) -> None:
    with contextlib.suppress(OSError):  # the connection may die with the server: that is the point
        call(*args)


def _wait_stored(data_dir: Path, keys: list[str]) -> None:
    stored = [data_dir / "photos" / (hashlib.sha256(key.encode()).hexdigest() + ".json") for key in keys]
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in stored):
        assert time.monotonic() < deadline, "the photos were never stored"
        time.sleep(0.005)


def _events(tmp_path: Path, event: str) -> list[dict]:
    """The server's log lines of `event` (live_server logs beside the data)."""
    lines = [line for log in tmp_path.glob("server-*.log") for line in log.read_text().splitlines()]
    return [json.loads(line) for line in lines if line.startswith("{") and json.loads(line)["event"] == event]


def _last_change(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "faceprint.db")) as db:
        return db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'collection_log'").fetchone()[0]
