"""A backup folder opened as an archive, so that the use cases that change
an archive (an erasure) change a backup the same way: its database through
the embedded stores, its photo files (`photos/<file>.<etag>` and their
descriptions, ops/backup.py) through a photo store of their own. Nothing is
indexed here: a photo left pending is indexed by the restore."""

import contextlib
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError, NotFound
from chalicelib.core.ports import ListedPhoto, Page, PhotoStore, StoredPhoto
from chalicelib.core.records import normalize_sequencer, now
from chalicelib.core.services import Services
from chalicelib.embedded.photos import described, file_name, write_atomically
from chalicelib.ops import backup


@contextlib.contextmanager
def opened(folder: Path) -> Iterator[Services]:
    """Services over the backup in `folder` (no analysis: nothing needs one)."""
    from chalicelib.embedded.database import Database
    from chalicelib.embedded.engine import LocalEngine
    from chalicelib.embedded.people import LocalPeople
    from chalicelib.embedded.records import SqliteRecordStore

    db = Database(folder / backup.DATABASE)
    photos = BackupPhotoStore(folder / backup.PHOTOS)
    with tempfile.TemporaryDirectory() as scratch:  # the collection's index: never built here
        engine = LocalEngine(db, photos, None, Path(scratch) / "faceprint.index")
        settings = Settings.from_env({"FACEPRINT_STAGE": "backup", "FACEPRINT_DATA_DIR": str(folder)})
        try:
            yield Services(settings, engine, SqliteRecordStore(db), photos, people=LocalPeople(db, engine, None))
        finally:
            db.checkpoint()
            db.close()
            with contextlib.closing(sqlite3.connect(folder / backup.DATABASE)) as conn:
                conn.execute("PRAGMA journal_mode=DELETE")  # one file that stands alone again, as backups are


class BackupPhotoStore(PhotoStore):
    """A backup's photo files: the one version of each key it holds."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def put(self, key, data, content_type, metadata, original_content_type="") -> StoredPhoto:
        raise ConfigurationError("A backup takes no new photos.")

    def head(self, key: str) -> StoredPhoto | None:
        description = self._description(key)
        if description is None:
            return None
        return described(json.loads(description.read_bytes()))

    def read(self, key: str) -> bytes:
        description = self._description(key)
        if description is None:
            raise NotFound(f"The backup holds no photo {key!r}.")
        return description.with_suffix("").read_bytes()

    def download_url(self, key: str) -> None:
        return None

    def delete(self, key: str) -> None:
        for path in self._root.glob(f"{file_name(key)}.*"):
            path.unlink(missing_ok=True)

    def list(self, limit: int, token: str | None = None) -> Page:
        names = sorted(p.name for p in self._root.glob("*.json") if p.name > (token or ""))
        photos = [self.head(json.loads((self._root / name).read_bytes())["key"]) for name in names[:limit]]
        items = [ListedPhoto(p.key, p.etag, p.size, p.stored_at) for p in photos if p]
        return Page(items, names[limit - 1] if len(names) > limit else None)

    def replace_metadata(self, key: str, etag: str, metadata: dict[str, str]) -> StoredPhoto | None:
        description = self._description(key)
        if description is None:
            return None
        info = json.loads(description.read_bytes())
        if info["etag"] != etag:
            return None
        info.update(metadata=dict(metadata), sequencer=normalize_sequencer(format(time.time_ns(), "X")), storedAt=now())
        write_atomically(description, json.dumps(info).encode())
        return self.head(key)

    def _description(self, key: str) -> Path | None:
        found = sorted(p for p in self._root.glob(f"{file_name(key)}.*.json") if p.with_suffix("").exists())
        return found[-1] if found else None
