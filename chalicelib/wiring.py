"""The composition root: builds the engine and stores for the current
stage on first use (never at import), once per settings."""

import threading

from chalicelib.config import Settings
from chalicelib.service import Services, index_stored_photo

_lock = threading.Lock()
_built: dict[Settings, Services] = {}
_analyzers: list = []


def services() -> Services:
    settings = Settings.from_env()
    with _lock:
        if settings not in _built:
            _built[settings] = _build(settings)
        return _built[settings]


def _build(settings: Settings) -> Services:
    if settings.engine == "local":
        return _build_local(settings)
    raise NotImplementedError("The AWS wiring comes with the Rekognition adapters.")


def _build_local(settings: Settings) -> Services:
    # Imported here: dlib and numpy load only in the embedded stage.
    from chalicelib.engines.local import LocalEngine
    from chalicelib.stores.database import Database
    from chalicelib.stores.files import FilePhotoStore
    from chalicelib.stores.sqlite import SqliteRecordStore

    db = Database(settings.data_dir / "faceprint.db")
    photos = FilePhotoStore(settings.data_dir / "photos")
    svc = Services(settings, LocalEngine(db, photos, _analyzer()), SqliteRecordStore(db), photos)
    photos.subscribe(lambda key: index_stored_photo(svc, key))
    return svc


def _analyzer():
    """One model pool per process, whatever the data directory."""
    from chalicelib.engines.dlib_faces import FaceAnalyzer

    if not _analyzers:
        _analyzers.append(FaceAnalyzer())
    return _analyzers[0]
