"""The pace of IndexFaces: one worker's calls spaced `interval` seconds apart.

On AWS the queue runs `Settings.workers` indexing workers at most (its
event source's maximum concurrency), each a Lambda execution environment
whose module state outlives an invocation; each spaces its own IndexFaces
calls `Settings.index_interval` apart, so together they stay within the
stage's FACEPRINT_INDEX_TPS however long the backlog. A worker's first call
waits a random part of the interval, so workers that start together spread
their calls out instead of arriving at Rekognition at once.

The clock, the sleep and the random source are parameters: the simulation
(tests/support/aws_volume.py) runs this very code on a virtual clock."""

import random
import threading
import time
from collections.abc import Callable

from chalicelib.core.naming import StrangerModel
from chalicelib.core.ports import FaceEngine, Page, PhotoVersion


class Pace:
    """At most one call every `interval` seconds, for the calls made through it."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.interval = interval
        self._clock, self._sleep, self._jitter = clock, sleep, jitter
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Sleep until this caller's next turn; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            if self._next is None:
                self._next = now + self._jitter() * self.interval
            delay = max(0.0, self._next - now)
            if delay:
                self._sleep(delay)
            self._next = max(self._next, now) + self.interval
            return delay


class PacedEngine(FaceEngine):
    """A FaceEngine whose IndexFaces calls keep `pace`; everything else
    goes straight through."""

    def __init__(self, engine: FaceEngine, pace: Pace) -> None:
        self.engine = engine
        self.pace = pace

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        self.pace.wait()
        return self.engine.index_faces(photo, external_image_id)

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        return self.engine.search_faces_by_image(data, threshold, max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        return self.engine.search_all_faces_by_image(data, threshold, max_faces)

    def delete_faces(self, face_ids: list[str]) -> None:
        self.engine.delete_faces(face_ids)

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        return self.engine.list_faces(limit, token)

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        return self.engine.list_face_ids(limit, token)

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        return self.engine.get_faces(face_ids)

    def face_count(self) -> int:
        return self.engine.face_count()

    def stranger_model(self) -> StrangerModel:
        return self.engine.stranger_model()

    def describe(self) -> dict:
        return self.engine.describe()
