"""What every use case is given: the stage's settings and its adapters."""

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.core import records
from chalicelib.core.config import Settings
from chalicelib.core.pacing import Pacing
from chalicelib.core.ports import AuditLog, FaceEngine, IndexQueue, PeopleEngine, PhotoStore, RecordStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: FaceEngine
    records: RecordStore
    photos: PhotoStore
    # Offline an upload is indexed before the reply; on AWS the bucket's
    # ObjectCreated event does it, in another function.
    index_on_upload: bool = False
    # People in the engine's collection (Rekognition's Users API).
    people: PeopleEngine | None = None
    # On AWS: the queue of the bucket's events, which the indexing workers
    # drain and the re-drive refills (core/index_queue.py).
    queue: IndexQueue | None = None
    # On AWS: the schedules that keep Rekognition's calls within their
    # quotas, shared by every function, and the indexing's circuit breaker
    # (core/pacing.py).
    pacing: Pacing | None = None
    # The time as the records see it (ISO 8601): when a photo became pending,
    # when an attempt began, when the re-drive owes a visit. A simulation
    # gives its own clock.
    clock: Callable[[], str] = lambda: records.now()  # noqa: E731 (looked up at each call)
    # After an erasure (core/erasure.py): make the stage's own leftover
    # copies go where it can (embedded: the SQLite write-ahead log, the
    # index snapshot), and say which copies remain and until when (backups,
    # point-in-time recovery, logs), each {"copy", "holds", "until", "note"}.
    copies: Callable[[str], list[dict]] = lambda erased_at: []  # noqa: E731
    # The audit log: who asked, which route, which ids came back (None: none kept).
    audit: AuditLog | None = None
