"""The pace of IndexFaces (core/pacing.py) on a fake clock, and the stage
settings it comes from (FACEPRINT_INDEX_TPS: how many workers, how far
apart each one's calls)."""

import pytest

from chalicelib.core.config import MAX_WORKERS, Settings, index_workers_at_import
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.pacing import Pace, PacedEngine
from chalicelib.core.ports import PhotoVersion
from tests.support.fakes import FakeEngine, InMemoryPhotoStore, photo_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_calls_keep_the_interval_the_first_waits_its_share_of_it():
    clock = Clock()
    pace = Pace(2.0, clock=lambda: clock.now, sleep=clock.sleep, jitter=lambda: 0.25)
    starts = []
    for _ in range(4):
        pace.wait()
        starts.append(clock.now)
        clock.now += 0.3  # the call itself
    assert starts == [100.5, 102.5, 104.5, 106.5]
    clock.now += 10  # idle: the next call goes at once
    assert pace.wait() == 0
    clock.now += 0.5
    assert pace.wait() == pytest.approx(1.5)


def test_a_paced_engine_paces_index_faces_only():
    photos = InMemoryPhotoStore()
    stored = photos.put("k.png", photo_of("ada"), "image/png", {})
    clock = Clock()
    engine = PacedEngine(FakeEngine(photos), Pace(1.0, clock=lambda: clock.now, sleep=clock.sleep, jitter=lambda: 0))
    for _ in range(3):
        engine.index_faces(PhotoVersion("k.png", stored.etag, stored.version_id), "k.png")
    assert clock.slept == [1.0, 1.0]
    engine.search_faces_by_image(photo_of("ada"), 80, 10)
    engine.describe()
    assert clock.slept == [1.0, 1.0]


@pytest.mark.parametrize(
    ("tps", "workers", "interval"),
    [("5", 5, 1.0), ("50", 50, 1.0), ("0.5", 2, 4.0), ("2.5", 3, 1.2), ("1000", 1000, 1.0)],
)
def test_the_index_tps_makes_the_workers_and_their_interval(tps, workers, interval):
    settings = Settings.from_env({"FACEPRINT_INDEX_TPS": tps})
    assert settings.workers == workers and settings.index_interval == pytest.approx(interval)
    assert settings.workers / settings.index_interval == pytest.approx(float(tps))


def test_the_defaults_are_the_smallest_regions_quotas():
    settings = Settings.from_env({})
    assert (settings.index_tps, settings.search_tps, settings.workers) == (5.0, 5.0, 5)


def test_the_workers_can_be_set_and_the_interval_follows():
    settings = Settings.from_env({"FACEPRINT_INDEX_TPS": "1000", "FACEPRINT_INDEX_WORKERS": "2"})
    assert settings.workers == 2 and settings.index_interval == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FACEPRINT_INDEX_TPS", "0"),
        ("FACEPRINT_INDEX_TPS", "fast"),
        ("FACEPRINT_INDEX_TPS", "5000"),
        ("FACEPRINT_SEARCH_TPS", "-1"),
        ("FACEPRINT_INDEX_WORKERS", "1"),
        ("FACEPRINT_INDEX_WORKERS", str(MAX_WORKERS + 1)),
    ],
)
def test_a_bad_pace_setting_is_refused_by_name(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_the_workers_declared_at_import_never_raise():
    assert index_workers_at_import({"FACEPRINT_INDEX_TPS": "50"}) == 50
    assert index_workers_at_import({"FACEPRINT_INDEX_TPS": "fast"}) == 5  # Settings refuses it at the first request
