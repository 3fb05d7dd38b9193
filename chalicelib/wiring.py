"""The composition root: builds the engine and stores for the current
stage on first use (never at import), once per settings."""

import atexit
import threading

from chalicelib.core.config import Settings
from chalicelib.core.services import Services

_lock = threading.Lock()
_built: dict[Settings, Services] = {}
_analyzers: list = []


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
    from chalicelib.aws.rekognition import RekognitionEngine
    from chalicelib.aws.s3 import S3PhotoStore

    # The bucket's ObjectCreated event indexes what the API stores (app.py).
    return Services(
        settings,
        RekognitionEngine(
            aws.client("rekognition", settings.region),
            settings.collection,
            settings.bucket,
            quality_filter=settings.quality_filter,
            max_faces=settings.max_faces,
            stage=settings.stage,
        ),
        DynamoRecordStore(
            aws.client("dynamodb", settings.region),
            settings.images_table,
            settings.faces_table,
            settings.bucket,
            stage=settings.stage,
        ),
        S3PhotoStore(aws.client("s3", settings.region), settings.bucket, stage=settings.stage),
    )


def _build_local(settings: Settings) -> Services:
    # Imported here: dlib and numpy load only in the embedded stage.
    from chalicelib.embedded.database import Database
    from chalicelib.embedded.engine import LocalEngine
    from chalicelib.embedded.photos import FilePhotoStore
    from chalicelib.embedded.records import SqliteRecordStore

    db = Database(settings.data_dir / "faceprint.db")
    photos = FilePhotoStore(settings.data_dir / "photos")
    engine = LocalEngine(db, photos, _analyzer())
    return Services(settings, engine, SqliteRecordStore(db), photos, index_on_upload=True)


def _analyzer():
    """One model pool per process, whatever the data directory."""
    from chalicelib.embedded.analysis import FaceAnalyzer

    if not _analyzers:
        _analyzers.append(FaceAnalyzer())
        # Stop the workers before the interpreter tears its modules down.
        atexit.register(_analyzers[0].close)
    return _analyzers[0]
