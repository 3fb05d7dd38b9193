"""The composition root: builds the engine and stores for the current
stage on first use (never at import), once per settings."""

import atexit
import os
import signal
import threading

from chalicelib.core.config import Settings
from chalicelib.core.services import Services

_lock = threading.Lock()
_built: dict[Settings, Services] = {}
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


def _build(settings: Settings) -> Services:
    if settings.engine == "local":
        return _build_local(settings)
    return _build_aws(settings)


def _build_aws(settings: Settings) -> Services:
    # Imported here: boto3 loads on the first request, never dlib or numpy.
    from chalicelib.aws import clients as aws
    from chalicelib.aws.dynamodb import DynamoRecordStore
    from chalicelib.aws.rekognition import RekognitionEngine, RekognitionPeople
    from chalicelib.aws.s3 import S3PhotoStore
    from chalicelib.aws.sqs import SqsIndexQueue
    from chalicelib.core.pacing import Pace, PacedEngine

    rekognition = aws.client("rekognition", settings.region)
    engine = RekognitionEngine(
        rekognition,
        settings.collection,
        settings.bucket,
        quality_filter=settings.quality_filter,
        max_faces=settings.max_faces,
        stage=settings.stage,
    )
    # The bucket's events go to the queue, whose workers index what the API
    # stores (app.py), each keeping its share of the IndexFaces quota.
    return Services(
        settings,
        PacedEngine(engine, Pace(settings.index_interval)),
        DynamoRecordStore(
            aws.client("dynamodb", settings.region),
            settings.images_table,
            settings.faces_table,
            settings.bucket,
            settings.people_table,
            stage=settings.stage,
        ),
        S3PhotoStore(aws.client("s3", settings.region), settings.bucket, stage=settings.stage),
        people=RekognitionPeople(rekognition, settings.collection, stage=settings.stage),
        queue=SqsIndexQueue(aws.client("sqs", settings.region), settings.index_queue, stage=settings.stage),
    )


def _build_local(settings: Settings) -> Services:
    # Imported here: dlib and numpy load only in the embedded stage.
    from chalicelib.embedded.database import Database
    from chalicelib.embedded.engine import LocalEngine
    from chalicelib.embedded.people import LocalPeople
    from chalicelib.embedded.photos import FilePhotoStore
    from chalicelib.embedded.records import SqliteRecordStore

    db = Database(settings.data_dir / "faceprint.db")
    photos = FilePhotoStore(settings.data_dir / "photos")
    engine = LocalEngine(
        db,
        photos,
        analyzer(),
        settings.data_dir / "faceprint.index",
        quality_filter=settings.quality_filter,
        max_faces=settings.max_faces,
    )
    # Saved at exit (SIGTERM included: stop_on_sigterm), the collection's index
    # loads at the next start instead of being rebuilt.
    atexit.register(engine.close)
    people = LocalPeople(db, engine, analyzer())
    return Services(settings, engine, SqliteRecordStore(db), photos, index_on_upload=True, people=people)


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


def close() -> None:
    """Stop the analysis workers, if any were started."""
    with _analyzers_lock:
        started = list(_analyzers)
    for pool in started:
        pool.close()


def stop_on_sigterm() -> None:
    """Make SIGTERM (how service managers, `kill` and `make`'s children are
    stopped) end the process the way Ctrl-C does: a KeyboardInterrupt in the
    main thread, so `chalice local` exits normally and its analysis workers
    are shut down rather than left behind. Signal handlers can only be set
    from the main thread, where `chalice local` imports app.py: requests
    (and so the pool) start on other threads. Left alone: a handler someone
    else set, a call from another thread, and Lambda."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        and "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
    ):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
