"""The composition root: builds the engine and stores for the current
stage on first use (never at import), once per settings."""

import atexit
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

from chalicelib.core import logs
from chalicelib.core.config import Settings
from chalicelib.core.services import Services
from chalicelib.ops import copies

# From SIGINT or SIGTERM to the end of the process, whatever it was doing:
# the workers' grace (workers.STOP_GRACE_SECONDS), the collection's index
# saved, the interpreter's exit, with room for a loaded machine.
STOP_DEADLINE_SECONDS = 8.0

_lock = threading.Lock()
_built: dict[Settings, Services] = {}
_key_scopes: dict[Settings, object] = {}
_analyzers: list = []
_analyzers_lock = threading.Lock()  # services() holds _lock while it builds


def services(settings: Settings | None = None) -> Services:
    """The services for `settings`, by default the current stage's."""
    settings = settings or Settings.from_env()
    with _lock:
        if settings not in _built:
            _built[settings] = _build(settings)
        return _built[settings]


def reset() -> None:
    """Forget the built services, so the next request builds them again
    (tests that swap the AWS clients between cases)."""
    with _lock:
        _built.clear()
        _key_scopes.clear()


def key_scopes(settings: Settings):
    """The AWS stage's lookup of API key scopes (api/scopes.py), one per stage."""
    with _lock:
        if settings not in _key_scopes:
            from chalicelib.api.scopes import SCOPE_TAG, SCOPES
            from chalicelib.aws import clients as aws
            from chalicelib.aws.api_keys import ApiKeyScopes

            client = aws.client("apigateway", settings.region)
            _key_scopes[settings] = ApiKeyScopes(client, SCOPE_TAG, SCOPES, settings.stage)
        return _key_scopes[settings]


def _build(settings: Settings) -> Services:
    if settings.engine == "local":
        return _build_local(settings)
    return _build_aws(settings)


def _build_aws(settings: Settings) -> Services:
    # Imported here: boto3 loads on the first request, never dlib or numpy.
    from chalicelib.aws import clients as aws
    from chalicelib.aws.audit import CloudWatchAuditLog
    from chalicelib.aws.dynamodb import DynamoRecordStore
    from chalicelib.aws.rekognition import RekognitionEngine, RekognitionPeople
    from chalicelib.aws.s3 import S3PhotoStore
    from chalicelib.aws.sqs import SqsIndexQueue
    from chalicelib.aws.state import DynamoSharedState
    from chalicelib.core.pacing import PacedEngine, Pacing

    rekognition = aws.client("rekognition", settings.region)
    dynamodb = aws.client("dynamodb", settings.region)
    # One schedule per quota, shared by every function of the stage (and by
    # the stages that name the same FACEPRINT_PACE_TABLE); the breaker and
    # the re-drive's and check's places are the stage's own (its people table).
    own = DynamoSharedState(dynamodb, settings.people_table, stage=settings.stage)
    shared = settings.pace_table and settings.pace_table != settings.people_table
    pacing = Pacing(
        own,
        index_tps=settings.index_tps,
        delete_tps=settings.delete_tps,
        search_tps=settings.search_tps,
        region=settings.region,
        paces=DynamoSharedState(dynamodb, settings.pace_table, stage=settings.stage) if shared else None,
    )
    engine = RekognitionEngine(
        rekognition,
        settings.collection,
        settings.bucket,
        quality_filter=settings.quality_filter,
        max_faces=settings.max_faces,
        stage=settings.stage,
        s3=aws.client("s3", settings.region),
        strangers=settings.stranger_model,
        paced_client=aws.client("rekognition", settings.region, paced=True),
        search_call=pacing.search_call,
        max_collection_faces=settings.collection_faces,
    )
    # The bucket's events go to the queue, whose workers index what the API
    # stores (app.py), at the pace of the IndexFaces quota.
    return Services(
        settings,
        PacedEngine(engine, pacing),
        DynamoRecordStore(
            dynamodb,
            settings.images_table,
            settings.faces_table,
            settings.bucket,
            settings.people_table,
            stage=settings.stage,
        ),
        S3PhotoStore(aws.client("s3", settings.region), settings.bucket, stage=settings.stage),
        people=RekognitionPeople(rekognition, settings.collection, stage=settings.stage),
        queue=SqsIndexQueue(aws.client("sqs", settings.region), settings.index_queue, stage=settings.stage),
        pacing=pacing,
        copies=copies.aws(settings),
        audit=CloudWatchAuditLog(aws.client("logs", settings.region), settings.audit_log_group),
    )


def _build_local(settings: Settings) -> Services:
    # Imported here: dlib and numpy load only in the embedded stage.
    from chalicelib.embedded.audit import FileAuditLog
    from chalicelib.embedded.database import Database
    from chalicelib.embedded.engine import LocalEngine
    from chalicelib.embedded.people import LocalPeople
    from chalicelib.embedded.photos import FilePhotoStore
    from chalicelib.embedded.private import data_folder
    from chalicelib.embedded.records import SqliteRecordStore

    data_folder(settings.data_dir)
    db = Database(settings.data_dir / "faceprint.db")
    photos = FilePhotoStore(settings.data_dir / "photos")
    engine = LocalEngine(
        db,
        photos,
        analyzer(),
        settings.data_dir / "faceprint.index",
        quality_filter=settings.quality_filter,
        max_faces=settings.max_faces,
        strangers=settings.stranger_model,
    )
    # Saved at exit (SIGINT and SIGTERM included: stop_on_signals), the collection's index
    # loads at the next start instead of being rebuilt.
    atexit.register(engine.close)
    people = LocalPeople(db, engine, analyzer())
    built = Services(
        settings,
        engine,
        SqliteRecordStore(db),
        photos,
        index_on_upload=True,
        people=people,
        copies=copies.embedded(settings, db, engine.collection),
        audit=FileAuditLog(settings.data_dir / "audit", settings.audit_retention_days),
    )
    if _serving_locally():
        _redrive_in_background(built)
    return built


# How often `make run` looks for work a stop or a crash left (AWS: the
# scheduled re-drive, app.py).
LOCAL_REDRIVE_SECONDS = 60


def _redrive_in_background(svc: Services) -> None:
    """`make run`'s own re-drive: photos a stop or a crash left pending, or
    work it left owed after a commit, are finished within minutes of the
    next start (indexing.redrive_pending), as the scheduled re-drive does on
    AWS. A daemon thread: a stop does not wait for it."""
    from chalicelib.core import erasure, indexing

    def redrive_now_and_then() -> None:
        while True:
            try:
                while indexing.redrive_pending(svc)["pending"] == indexing.REDRIVE_BATCH:
                    pass  # a full batch: there may be more
                erasure.finish_under_way(svc)  # an erasure a stop or a crash left halfway
            except Exception as e:  # logged: the next round tries again
                logs.write({"event": "redrive", "error": logs.error_kind(e)})
            time.sleep(LOCAL_REDRIVE_SECONDS)

    threading.Thread(target=redrive_now_and_then, name="redrive", daemon=True).start()


def analyzer():
    """The process's one pool of analysis workers, whatever the data
    directory (the tests' fake Rekognition shares it too)."""
    from chalicelib.embedded.workers import FaceAnalyzer

    with _analyzers_lock:
        if not _analyzers:
            _analyzers.append(FaceAnalyzer())
            # Stop the workers before the interpreter tears its modules down.
            atexit.register(close)
        return _analyzers[0]


def close() -> dict[str, int]:
    """Stop the analysis workers, if any were started (workers.FaceAnalyzer.close):
    how many analyses finished meanwhile and how many were abandoned."""
    with _analyzers_lock:
        started = list(_analyzers)
    outcome = {"finished": 0, "abandoned": 0}
    for pool in started:
        for name, count in pool.close().items():
            outcome[name] += count
    return outcome


def stop_on_signals() -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM (how service managers, `kill` and
    `make`'s children are stopped) stop `chalice local` within
    STOP_DEADLINE_SECONDS: its workers stop at once (_stop), and a
    KeyboardInterrupt in the main thread ends the server normally, so the
    collection's index is saved at exit. Whatever the process inherited, as
    uvicorn and gunicorn do: a script's `make run &` starts it with SIGINT
    ignored, and Python leaves it so. Only in `chalice local`, whose main
    thread imports app.py (signal handlers can only be set from the main
    thread; requests, and so the pool, start on others): not in a test run
    or a script that imports the app, whose Ctrl-C is theirs, nor on Lambda."""
    if threading.current_thread() is not threading.main_thread() or not _serving_locally():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) in (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler):
            signal.signal(signum, _stop)


def _serving_locally() -> bool:
    return Path(sys.argv[0]).name == "chalice" and sys.argv[1:2] == ["local"]


def _stop(signum: int, frame) -> None:
    """The signal handler. What may take a while runs on a thread of its own
    as the main thread unwinds, and the exit waits for it; the deadline ends
    the process at once, and so does a second signal: its default action,
    which needs no Python code to run (the main thread may be waiting in C,
    in SQLite's busy wait say, where no handler runs)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    name = signal.Signals(signum).name
    for pool in list(_analyzers):  # no lock: the main thread may hold it; copying a list is atomic
        pool.stop_accepting()  # before the interpreter's exit waits for the work queued in them
    stopping = threading.Thread(target=_stop_workers, args=(name,), name="stop-workers", daemon=True)
    stopping.start()
    threading.Thread(target=_end_at_deadline, name="stop-deadline", daemon=True).start()
    atexit.register(_finish_stop, stopping)  # registered last: the first to run at exit
    raise KeyboardInterrupt


def _stop_workers(signal_name: str) -> None:
    started = time.perf_counter()
    logs.write({"event": "stopping", "signal": signal_name})
    outcome = close()
    logs.write({"event": "workers stopped", **outcome, "durationMs": logs.ms_since(started)})


def _finish_stop(stopping: threading.Thread) -> None:
    stopping.join()
    # The interpreter's exit then collects every object it holds: most of
    # what is left of a stop (0.1 to 0.2 s of CPU, seconds on a loaded
    # machine). The process is ending: the collector skips frozen objects.
    gc.freeze()


def _end_at_deadline() -> None:
    time.sleep(STOP_DEADLINE_SECONDS)
    _end_now(f"the stop took over {STOP_DEADLINE_SECONDS:g} s")


def _end_now(why: str) -> None:
    """End the process at once: the workers killed, the collection's index
    not saved (the next start loads the last snapshot and catches up from
    SQLite's change log, or rebuilds it), whatever a request was writing
    rolled back by SQLite."""
    try:
        for process in multiprocessing.active_children():
            process.kill()
        logs.write({"event": "stopped now", "why": why})
        sys.stderr.flush()
    finally:
        os._exit(1)
