"""The analysis workers' stop (workers.FaceAnalyzer.close), on real worker
processes with dlib: the photos being analysed may finish within the grace,
the ones waiting are abandoned, a photo past the grace has its worker
killed, and nothing starts afterwards. An abandoned analysis raises
SystemExit, which no use case counts as the photo's failure."""

import os
import threading
import time

import pytest
from PIL import Image

from chalicelib.embedded import workers
from chalicelib.embedded.workers import FaceAnalyzer
from tests.support import imagegen
from tests.support.photos import people, photo
from tests.support.processes import wait_gone, workers_below

pytestmark = pytest.mark.slow

GRACE = 120  # seconds: far more than the photos take, even on a loaded machine


def _collage(name: str, side: int) -> bytes:
    """`side` x `side` copies of a shared photo in one: a photo with many
    faces, whose analysis lasts long enough to be caught midway."""
    tile = imagegen.shared(name).reduce(side)
    collage = Image.new("RGB", (tile.width * side, tile.height * side))
    for i in range(side * side):
        collage.paste(tile, (tile.width * (i % side), tile.height * (i // side)))
    return imagegen.jpeg(collage)


BIG = _collage("Keanu-Avril-Lawrence.jpg", 4)  # 48 faces, each described
BIG_FACES = 4 * 4 * len(people()["Keanu-Avril-Lawrence.jpg"])


@pytest.fixture
def analyzer():
    """One worker, started and its models loaded; its process id."""
    before = set(workers_below(os.getpid()))
    pool = FaceAnalyzer(workers=1)
    pool.analyze(photo("Lawrence2.jpg"))
    [worker] = set(workers_below(os.getpid())) - before
    yield pool, worker
    pool.close(grace=0)


def _analyse_in_threads(pool: FaceAnalyzer, count: int) -> tuple[list[threading.Thread], list]:
    outcomes: list = []

    def analyse() -> None:
        try:
            outcomes.append(len(pool.analyze(BIG).faces))
        except SystemExit as e:
            outcomes.append(e)

    threads = [threading.Thread(target=analyse) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_closing_lets_the_photo_being_analysed_finish_and_abandons_the_waiting_ones(analyzer):
    pool, worker = analyzer
    threads, outcomes = _analyse_in_threads(pool, 4)
    time.sleep(0.3)  # one being analysed, the others waiting (4 take seconds on one worker)
    started = time.monotonic()
    closed = pool.close(grace=GRACE)
    assert time.monotonic() - started < GRACE  # over once they finished, not at the grace
    for thread in threads:
        thread.join(30)
    finished = [o for o in outcomes if not isinstance(o, SystemExit)]
    abandoned = [o for o in outcomes if isinstance(o, SystemExit)]
    assert finished and finished == [BIG_FACES] * len(finished)
    assert abandoned and {str(e) for e in abandoned} == {"the analysis workers were stopped"}
    assert closed == {"finished": len(finished), "abandoned": len(abandoned)}
    assert wait_gone([worker], timeout=5) == []


def test_closing_kills_a_photo_that_runs_past_the_grace(analyzer):
    pool, worker = analyzer
    threads, outcomes = _analyse_in_threads(pool, 1)
    time.sleep(0.1)
    assert pool.close(grace=0) == {"finished": 0, "abandoned": 1}
    threads[0].join(30)
    assert [str(o) for o in outcomes] == ["the analysis workers were stopped"]
    assert wait_gone([worker], timeout=5) == []


def test_no_analysis_starts_after_closing(analyzer):
    pool, worker = analyzer
    pool.close()
    before = set(workers_below(os.getpid()))
    with pytest.raises(SystemExit, match="the analysis workers were stopped"):
        pool.analyze(BIG)
    assert set(workers_below(os.getpid())) <= before
    assert wait_gone([worker], timeout=5) == []


def test_each_worker_computes_on_one_thread(analyzer):
    """One worker per core, each on one thread: onnxruntime's sessions and
    every BLAS or OpenMP library loaded in the worker (numpy's OpenBLAS)."""
    pool, _ = analyzer
    threads = pool._pool().submit(workers.threads_in_worker).result(60)
    assert threads["onnxruntime"] == {"yunet": (1, 1), "descriptors": (1, 1)}
    assert "openblas" in threads["libraries"] and set(threads["libraries"].values()) == {1}
