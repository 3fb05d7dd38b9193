"""`kill -9` of the server (and its analysis workers) while it indexes a
photo, then a restart on the same data folder: the database opens, nothing
is half-indexed, the interrupted photo is reported, and a retry (PUT again)
or a repair completes it."""

import contextlib
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.core.config import Settings
from chalicelib.ops import maintenance
from tests.support.live_server import live_server
from tests.support.photos import people, photo
from tests.support.processes import descendants

JPEG = {"Content-Type": "image/jpeg"}
BIG = "Keanu-Avril-Lawrence.jpg"  # three faces: its analysis takes long enough to be caught
ATTEMPTS = 5


def _kill_mid_indexing(server, data_dir: Path, key: str) -> None:
    """PUT `key` and kill -9 the server and its workers as soon as the photo
    is stored: from then on until its record is saved, it is being indexed."""
    stored = data_dir / "photos" / (hashlib.sha256(key.encode()).hexdigest() + ".json")
    upload = threading.Thread(target=lambda: _quietly(server.request, "PUT", f"/index/{key}", photo(BIG), JPEG))
    upload.start()
    deadline = time.monotonic() + 30
    while not stored.exists():
        assert time.monotonic() < deadline, "the photo was never stored"
        time.sleep(0.002)
    victims = [server.process.pid, *descendants(server.process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    upload.join(30)


def _quietly(call, *args) -> None:
    with contextlib.suppress(OSError):  # the connection dies with the server: that is the point
        call(*args)


def _check(data_dir: Path) -> list[maintenance.Disagreement]:
    return maintenance.check(wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(data_dir)})))


def _crash(data_dir: Path) -> str:
    """Crash the server mid-indexing (retrying until the kill lands before
    the record is saved); return the interrupted key."""
    for attempt in range(ATTEMPTS):
        key = f"interrupted-{attempt}.jpg"
        with live_server(data_dir) as server:
            _kill_mid_indexing(server, data_dir, key)
        found = _check(data_dir)  # before a server starts again: its start re-drives what a dead process left
        with live_server(data_dir) as server:  # the database opens cleanly after the crash
            status, info, _ = server.request("GET", "/info")
            assert status == 200
            status, image, _ = server.request("GET", f"/images/{key}")
        # Never faces without an image record, nor the reverse: at most the photo itself.
        interrupted = {
            maintenance.Disagreement(kind, key) for kind in (maintenance.PHOTO_PENDING, maintenance.PHOTO_NOT_INDEXED)
        }
        assert len(found) <= 1 and set(found) <= interrupted, found
        if found:
            assert status == 404 or image["image"]["status"] in ("pending", "indexed")  # re-driven at the start
            return key
        assert status == 200 and image["image"]["status"] == "indexed"  # the kill came after the save
    pytest.fail(f"no kill in {ATTEMPTS} attempts landed while the photo was being indexed")


def test_a_put_after_a_crash_mid_indexing_completes_the_photo(tmp_path):
    data_dir = tmp_path / "data"
    key = _crash(data_dir)
    with live_server(data_dir) as server:
        status, body, _ = server.request("PUT", f"/index/{key}", photo(BIG), JPEG)
        assert status == 201 and body["image"]["status"] == "indexed"
        assert len(body["faces"]) == len(people()[BIG])
    assert _check(data_dir) == []


def test_repair_completes_a_photo_interrupted_by_a_crash(tmp_path):
    data_dir = tmp_path / "data"
    key = _crash(data_dir)
    svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(data_dir)}))
    maintenance.repair(svc, maintenance.check(svc))
    assert maintenance.check(svc) == []
    assert svc.records.get_image(key)["faceCount"] == len(people()[BIG])
