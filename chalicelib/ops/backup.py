"""Backups of the embedded archive that restore (`make backup`, `make restore`).

The archive is one SQLite database (images, faces, people, the collection's
faces and users, suggestions) and the photo files it records; the faiss
index beside them is derived from the database and left out (a restore
builds it again).

A backup folder holds:

    faceprint.db                   the database at one moment (SQLite's online backup)
    photos/<file>.<etag>           the bytes of each photo version the database records
    photos/<file>.<etag>.json      its description (key, type, metadata, sequencer)
    backup.json                    when it was taken, from where, and what it holds

`<file>` is the photo store's own name for the key (photos.file_name). A
photo version is copied once: a later backup into the same folder copies only
the photos that are new or replaced since, and removes those no longer
recorded, after its database is in place. Until then the previous backup is
whole, so an interrupted backup loses nothing.

Taken while the server runs: the database is copied in one read transaction
(WAL: writers and searches go on meanwhile), so it is one moment of the
archive. Photos are copied before it (every photo there is then) and after it
(those uploaded meanwhile): every photo version the copy records is in the
backup, unless it was deleted or replaced in the moment between the copies.
An operation in flight at that moment (an upload recorded `pending`, a delete
that has removed the photo but not yet its records, faces added to the
collection but not yet recorded) is in the copy as a crash would leave it:
`restore` finishes each as `make check-consistency REPAIR=1` does after a
crash (it indexes the pending photo; it completes the delete), and says so.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from chalicelib.core import synthetic
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.records import iso_before, now
from chalicelib.embedded import private
from chalicelib.embedded.photos import file_name, write_atomically

DATABASE = "faceprint.db"
PHOTOS = "photos"
MANIFEST = "backup.json"
# In the data folder: every folder this archive was backed up into, and when
# last (what an erasure's receipt lists, what retention prunes and purges reach).
REGISTRY = "backups.json"
_COPY_ATTEMPTS = 3  # a photo replaced while it is read is read again


@dataclass
class BackupReport:
    taken_at: str
    source: str
    images: int
    faces: int
    people: int
    photos: int  # photo versions the backup holds
    photo_bytes: int
    database_bytes: int
    copied: int  # photo versions copied this time (the others were there)
    copied_bytes: int
    removed: int  # photo versions of earlier backups no longer recorded
    missed: list[str]  # recorded keys whose photo was deleted or replaced as the backup ran
    seconds: float
    database_seconds: float  # how long the database's read transaction lasted


@dataclass
class RestoreReport:
    images: int
    faces: int
    people: int
    photos: int
    finished: list[str]  # disagreements of operations in flight at the backup, finished now
    seconds: float


def backup(data_dir: Path, to: Path, on_photo: Callable[[int, int], None] = lambda done, total: None) -> BackupReport:
    """Back the archive in `data_dir` up into the folder `to` (made if need be;
    a folder of an earlier backup is brought up to date, copying only new
    photos). Safe while a server runs on `data_dir`."""
    started = time.monotonic()
    database, live = data_dir / DATABASE, data_dir / PHOTOS
    if not database.is_file():
        raise ConfigurationError(f"No archive in {data_dir}: {database} does not exist (FACEPRINT_DATA_DIR).")
    if to.resolve() == data_dir.resolve() or data_dir.resolve() in to.resolve().parents:
        raise ConfigurationError(f"Back up into a folder outside the data folder {data_dir}, not {to}.")
    photos = private.folder(to / PHOTOS)
    private.folder(to)
    with _only_backup(to):
        copied = _Copied()
        names = _live_names(live)
        for done, name in enumerate(names, start=1):  # every photo there is before the moment
            _copy_photo(live, photos, name, None, copied)
            on_photo(done, len(names))
        partial = to / f"{DATABASE}.partial"
        partial.unlink(missing_ok=True)
        moment = time.monotonic()
        _copy_database(database, partial)
        database_seconds = time.monotonic() - moment
        recorded = dict(_recorded_photos(partial))
        missed = [  # uploaded since the first pass, and already gone again: rare
            key
            for key, etag in recorded.items()
            if not (photos / f"{file_name(key)}.{etag}").exists()
            and not _copy_photo(live, photos, file_name(key), etag, copied)
        ]
        _replace(partial, to / DATABASE)
        kept = {f"{file_name(key)}.{etag}" for key, etag in recorded.items()}
        removed = _remove_unrecorded(photos, kept)
        counts = _counts(to / DATABASE)
        report = BackupReport(
            taken_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            source=str(data_dir.resolve()),
            images=counts["images"],
            faces=counts["faces"],
            people=counts["people"],
            photos=len(kept),
            photo_bytes=sum((photos / name).stat().st_size for name in kept if (photos / name).exists()),
            database_bytes=(to / DATABASE).stat().st_size,
            copied=copied.count,
            copied_bytes=copied.bytes,
            removed=removed,
            missed=sorted(missed),
            seconds=round(time.monotonic() - started, 2),
            database_seconds=round(database_seconds, 2),
        )
        write_atomically(to / MANIFEST, json.dumps(asdict(report), indent=2).encode())
    _register(data_dir, to)
    return report


def restore_files(source: Path, data_dir: Path, on_photo: Callable[[int, int], None] = lambda d, t: None) -> int:
    """Copy the backup in `source` into the empty data folder `data_dir`: the
    database, then each photo version it records under the photo store's
    names. Returns the number of photos. (`restore` in cli.py then checks
    the archive and finishes what was in flight.)"""
    database = source / DATABASE
    if not database.is_file():
        raise ConfigurationError(f"{source} holds no backup: {database} does not exist (FROM=<a backup folder>).")
    if (data_dir / DATABASE).exists() or any(_live_names(data_dir / PHOTOS)):
        raise ConfigurationError(
            f"The data folder {data_dir} already holds an archive: restore into an empty one "
            f"(FACEPRINT_DATA_DIR=/another/folder make restore FROM={source}), or move {data_dir} aside first."
        )
    for derived in data_dir.glob(f"{DATABASE.split('.')[0]}.index*"):
        derived.unlink()  # an index of another archive would be of no use: the server builds this one's
    recorded = list(_recorded_photos(database))
    missing = [key for key, etag in recorded if not (source / PHOTOS / f"{file_name(key)}.{etag}").is_file()]
    photos = private.folder(data_dir / PHOTOS)
    for done, (key, etag) in enumerate(recorded, start=1):
        stored = source / PHOTOS / f"{file_name(key)}.{etag}"
        if key in missing:
            continue
        shutil.copyfile(stored, private.file(photos / f".restoring-{file_name(key)}"))
        os.replace(photos / f".restoring-{file_name(key)}", photos / file_name(key))
        described = private.file(photos / f".restoring-{file_name(key)}.json")
        shutil.copyfile(stored.with_name(stored.name + ".json"), described)
        os.replace(described, photos / f"{file_name(key)}.json")
        on_photo(done, len(recorded))
    partial = private.file(data_dir / f"{DATABASE}.partial")
    shutil.copyfile(database, partial)
    with contextlib.closing(sqlite3.connect(partial)) as conn:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]  # every page readable and well formed
    if verdict != "ok":
        partial.unlink()
        raise ConfigurationError(f"The backup's database {database} is damaged ({verdict}): restore another backup.")
    _replace(partial, data_dir / DATABASE)  # last: until then the folder holds no archive
    return len(recorded) - len(missing)


def counts(data_dir: Path) -> dict[str, int]:
    return _counts(data_dir / DATABASE)


class _Copied:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0


def _copy_photo(live: Path, photos: Path, name: str, etag: str | None, copied: _Copied) -> bool:
    """Copy the photo file `name` (its bytes and description) into the
    backup as `<name>.<etag>`, unless that version is there already. With
    `etag`, only that version will do. False when the photo is gone, or
    holds another version than `etag`."""
    for _ in range(_COPY_ATTEMPTS):
        try:
            described = (live / f"{name}.json").read_bytes()
        except FileNotFoundError:
            return False
        info = json.loads(described)
        if etag is not None and info["etag"] != etag:
            return False
        target = photos / f"{name}.{info['etag']}"
        if target.exists():  # this version was copied by an earlier pass or backup
            copied_description = photos / f"{name}.{info['etag']}.json"
            if not copied_description.exists() or copied_description.read_bytes() != described:
                write_atomically(copied_description, described)  # the same bytes with new metadata (an erasure)
            return True
        try:
            data = (live / name).read_bytes()
        except FileNotFoundError:
            return False
        if hashlib.md5(data).hexdigest() != info["etag"]:
            continue  # replaced between the two reads: read both again
        write_atomically(photos / f"{name}.{info['etag']}.json", described)
        write_atomically(target, data)  # last: its presence says the version is whole
        copied.count += 1
        copied.bytes += len(data)
        return True
    return False


def _copy_database(database: Path, to: Path) -> None:
    """SQLite's online backup in one step: one read transaction, so one
    moment of the archive; in WAL mode writers and readers go on meanwhile."""
    private.file(to)
    with (
        contextlib.closing(sqlite3.connect(database, timeout=30)) as source,
        contextlib.closing(sqlite3.connect(to)) as target,
    ):
        source.backup(target)
        # One file that stands alone (the copy took the archive's WAL mode; a server sets it again).
        target.execute("PRAGMA journal_mode=DELETE")


def _recorded_photos(database: Path) -> Iterator[tuple[str, str]]:
    """(key, etag) of every image record with a photo behind it (synthetic ones have none)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        for key, etag in conn.execute("SELECT key, etag FROM images ORDER BY key"):
            if not synthetic.is_synthetic(key, etag):
                yield key, etag


def _counts(database: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {
            name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] if name in tables else 0  # noqa: S608
            for name in ("images", "faces", "people")
        }


def _live_names(photos: Path) -> list[str]:
    """The photo files of a photo store (their description is `<name>.json`)."""
    if not photos.is_dir():
        return []
    with os.scandir(photos) as entries:
        return sorted(e.name[:-5] for e in entries if e.name.endswith(".json") and not e.name.startswith("."))


def _remove_unrecorded(photos: Path, kept: set[str]) -> int:
    removed = 0
    with os.scandir(photos) as entries:
        for entry in entries:
            version = entry.name.removesuffix(".json")
            if version not in kept:
                Path(entry.path).unlink(missing_ok=True)
                removed += not entry.name.endswith(".json")
    return removed


@contextlib.contextmanager
def _only_backup(to: Path) -> Iterator[None]:
    """One backup at a time into a folder."""
    with private.file(to / ".backup-lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(f"Another backup into {to} is running: wait for it to end.") from None
        yield


def _replace(partial: Path, final: Path) -> None:
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# Where the archive's backups are, how long they are kept, and purging a
# person from them (docs/privacy.md).


def registered_backups(data_dir: Path) -> list[dict]:
    """[{"folder", "takenAt"}]: the folders this archive was backed up into, newest first."""
    try:
        listed = json.loads((data_dir / REGISTRY).read_text())["backups"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return sorted(listed, key=lambda entry: entry["takenAt"], reverse=True)


def _register(data_dir: Path, folder: Path, taken_at: str | None = None) -> None:
    where = str(folder.resolve())
    kept = [entry for entry in registered_backups(data_dir) if entry["folder"] != where]
    entries = [{"folder": where, "takenAt": taken_at or now()}, *kept]
    write_atomically(data_dir / REGISTRY, json.dumps({"backups": entries}, indent=2).encode())


def prune(data_dir: Path, keep_days: int, moment: str | None = None) -> list[str]:
    """Delete the registered backup folders last taken more than
    `keep_days` ago (0: keep every one), and forget them. Only a folder that
    is still a backup (its manifest and database, nothing but backup files)
    is deleted; one moved or changed by hand is only forgotten. Returns the
    folders deleted."""
    if keep_days <= 0:
        return []
    since = iso_before(moment or now(), keep_days * 86400)
    kept, deleted = [], []
    for entry in registered_backups(data_dir):
        folder = Path(entry["folder"])
        if entry["takenAt"] >= since:
            kept.append(entry)
        elif _is_backup(folder):
            shutil.rmtree(folder)
            deleted.append(str(folder))
    write_atomically(data_dir / REGISTRY, json.dumps({"backups": kept}, indent=2).encode())
    return deleted


def _is_backup(folder: Path) -> bool:
    if not ((folder / MANIFEST).is_file() and (folder / DATABASE).is_file()):
        return False
    ours = {DATABASE, PHOTOS, MANIFEST, ".backup-lock", f"{DATABASE}.partial"}
    return all(entry.name in ours or entry.name.startswith(f"{DATABASE}-") for entry in folder.iterdir())


def person_name(folder: Path, person_id: str) -> str | None:
    """The person's name as the backup in `folder` knows it, if it does."""
    if not (folder / DATABASE).is_file():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{folder / DATABASE}?mode=ro", uri=True)) as conn:
        try:
            row = conn.execute("SELECT json_extract(record, '$.name') FROM people WHERE person_id = ?", (person_id,))
            found = row.fetchone()
        except sqlite3.OperationalError:  # a backup from before people were kept
            return None
    return found[0] if found else None


def purge_person(folder: Path, person_id: str, photos: str = "none", name: str | None = None) -> dict:
    """Erase the person from the backup in `folder`, as from a live archive
    (core/erasure.py, the same use case over the backup's database and its
    photo files): their faces (excluded, so a restore never brings them
    back), their name, their photos if asked; then the database is
    compacted (VACUUM), so no free page keeps what went. Returns the
    erasure's receipt."""
    from chalicelib.core import erasure
    from chalicelib.ops.backup_archive import opened

    if not (folder / DATABASE).is_file():
        raise ConfigurationError(f"{folder} holds no backup: {folder / DATABASE} does not exist.")
    with _only_backup(folder), opened(folder) as svc:
        receipt = erasure.erase_person(svc, person_id, photos, name=name)
    with contextlib.closing(sqlite3.connect(folder / DATABASE)) as conn:
        conn.execute("VACUUM")  # no free page keeps anything of them
    manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).is_file() else {}
    manifest.update(_counts(folder / DATABASE))
    manifest["purged"] = [*manifest.get("purged", []), {"personId": person_id, "at": receipt.get("erasedAt")}]
    write_atomically(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    return receipt
