"""Importing a folder tree of photos into a stage (`make import DIR=...`).

Every photo the API accepts (by its file extension: JPEG, PNG, HEIC/HEIF,
WebP, AVIF) goes through the same upload use case as `PUT /index`: offline
it is indexed in this process, on both cores; on an AWS stage it is
uploaded into the bucket, as many at a time as the stage indexes a
second (at least 8), and the S3 events index it.

Keys come from the path relative to the folder (see `key_for`). A journal
beside the stage's data (`import-<stage>-<digest of the folder>.json`)
remembers each file's size, modification time and stored etag, so a second
run over the same folder uploads nothing again, and an interrupted run
carries on where it stopped.

What did not go in is told apart, for the summary and the exit status:
files that are not photos the API takes (`skipped`), photos the API or
the engine refuses as they are (`refused`: corrupt, too large; trying
again changes nothing) and photos that failed for a reason that may pass
(`failed`: the service was busy, indexing failed on every attempt).

On an AWS stage the bucket's events index the photos after the upload:
`watch` follows their image records until none is pending."""

import hashlib
import json
import math
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.core.errors import FaceprintError, ImageRejected
from chalicelib.core.indexing import upload_image
from chalicelib.core.limits import MAX_KEY_BYTES, MAX_METADATA_BYTES
from chalicelib.core.records import FAILED, INDEXED, NO_FACES, PENDING
from chalicelib.core.services import Services
from chalicelib.core.text import hidden_characters
from chalicelib.ops.progress import Progress

EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".heic", ".heif", ".webp", ".avif"})
TYPES = "JPEG, PNG, HEIC/HEIF, WebP or AVIF"
SAVE_EVERY_SECONDS = 2.0
# Uploads at a time to an AWS stage: one for each IndexFaces a second of the
# stage's pace (FACEPRINT_INDEX_TPS), at least AWS_UPLOADS, at most
# MAX_AWS_UPLOADS. An upload takes a fraction of a second (S3's PUT, two
# DynamoDB calls), so the import puts photos in the bucket faster than the
# queue's workers index them; the events index them at Rekognition's pace.
AWS_UPLOADS = 8
MAX_AWS_UPLOADS = 64
WATCH_EVERY_SECONDS = 5.0
_AFTER_ANY_TIME = "9999"  # later than any pendingSince: list_pending then lists every pending photo


@dataclass
class Summary:
    photos: int = 0  # found under the folder
    uploaded: int = 0
    unchanged: int = 0  # already imported, as they are
    faces: int = 0  # indexed in the photos uploaded (offline; on AWS the events index them later)
    pending: int = 0  # uploaded, left to the S3 events
    refused: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason): as they are, never
    failed: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason): may pass, run again
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why): not photos
    keys: list[str] = field(default_factory=list)  # the stored photos' keys, uploaded or unchanged


@dataclass
class Indexing:
    """How the indexing of watched photos stands (AWS: the S3 events index them)."""

    total: int
    indexed: int = 0
    no_faces: int = 0
    faces: int = 0
    gone: int = 0  # deleted meanwhile
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) that may pass
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, reason): the engine cannot read it

    @property
    def settled(self) -> int:
        return self.indexed + self.no_faces + self.gone + len(self.failed) + len(self.refused)

    @property
    def pending(self) -> int:
        return self.total - self.settled


def key_for(relative: Path) -> str:
    """A valid key for a path below the folder: its parts joined by `/`
    (folders are kept, as S3 keys keep them), in Unicode NFC (as macOS and
    Linux may spell the same name differently), control and format
    characters (core/text.py) and `\\` replaced by `_`. A key over 255 bytes
    keeps its extension and the end of its path, and gains a short digest of
    the whole path, so two long paths never share a key."""
    parts = [unicodedata.normalize("NFC", part) for part in relative.parts]
    cleaned = ["".join("_" if hidden_characters(ch) or ch == "\\" else ch for ch in part) for part in parts]
    key = "/".join(cleaned)
    if len(key.encode("utf-8")) <= MAX_KEY_BYTES:
        return key
    extension = Path(cleaned[-1]).suffix
    suffix = f"~{hashlib.sha256(key.encode('utf-8')).hexdigest()[:12]}{extension}"
    body = key[: len(key) - len(extension)]
    while len((body + suffix).encode("utf-8")) > MAX_KEY_BYTES:
        body = body[1:]
    return body.lstrip("/") + suffix


def name_from_folder(relative: Path) -> str | None:
    """The `name` metadata a photo gets from the folder it sits in
    (`people/Keanu Reeves/1.jpg` names "Keanu Reeves"); S3 metadata is
    ASCII, so accents are dropped ("Zoë" names "Zoe"). None at the top."""
    if len(relative.parts) < 2:
        return None
    folder = unicodedata.normalize("NFKD", relative.parts[-2])
    name = "".join(ch for ch in folder if ch.isascii() and unicodedata.category(ch) != "Cc").strip()
    return name[: MAX_METADATA_BYTES - len("name")] or None


def photos_under(folder: Path, skipped: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """Every photo file below `folder`, in a stable order; hidden files and
    folders (`.DS_Store`, `.thumbnails`) are left out. The other files go
    to `skipped`, each with why."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            relative = Path(root, name).relative_to(folder)
            if relative.suffix.lower() in EXTENSIONS:
                yield relative
            elif skipped is not None:
                kind = relative.suffix.lower().lstrip(".").upper() or "a file without an extension"
                skipped.append((str(relative), f"{kind} is not a photo type the API takes ({TYPES})"))


def import_folder(
    svc: Services,
    folder: Path,
    journal_path: Path,
    names_from_folders: bool = False,
    workers: int | None = None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> Summary:
    """Upload (and offline index) every photo under `folder` not imported
    already, `workers` at a time (default: two per core offline, so the
    analysis pool's processes never wait for a photo to be read or stored;
    on AWS aws_uploads: sized to the stage's pace); failures are counted
    with their reason and do not stop the others."""
    journal = _Journal(journal_path)
    skipped: list[tuple[str, str]] = []
    files = list(photos_under(folder, skipped))
    summary = Summary(photos=len(files), skipped=skipped)
    lock = threading.Lock()
    started = time.monotonic()

    def one(relative: Path) -> None:
        path = folder / relative
        key = key_for(relative)
        stat = path.stat()
        seen = journal.get(relative)
        if seen and seen["size"] == stat.st_size and seen["mtime"] == stat.st_mtime_ns and seen["key"] == key:
            stored = svc.photos.head(key)
            if stored is not None and stored.etag == seen["etag"]:
                with lock:
                    summary.unchanged += 1
                    summary.keys.append(key)
                return
        metadata = {"name": name} if names_from_folders and (name := name_from_folder(relative)) else {}
        try:
            data = path.read_bytes()
        except OSError as e:
            with lock:
                summary.refused.append((str(relative), f"the file could not be read: {e.strerror or e}"))
            return
        try:
            reply = upload_image(svc, key, data, metadata)
        except ImageRejected as e:
            with lock:
                summary.refused.append((str(relative), e.message))
            return
        except FaceprintError as e:
            with lock:
                summary.failed.append((str(relative), e.message))
            return
        image = reply["image"]
        journal.put(relative, {"key": key, "size": stat.st_size, "mtime": stat.st_mtime_ns, "etag": image["etag"]})
        with lock:
            summary.uploaded += 1
            summary.keys.append(key)
            summary.faces += len(reply["faces"])
            summary.pending += image["status"] == PENDING
            if image["status"] == FAILED:
                (summary.failed if image.get("attempts") else summary.refused).append(
                    (str(relative), image.get("error", "failed"))
                )

    def report(done: int) -> None:
        with lock:
            progress = Progress(done, len(files), started, summary.faces, len(summary.failed) + len(summary.refused))
        on_progress(progress)
        journal.save_now_and_then()

    workers = workers or (2 * (os.cpu_count() or 1) if svc.index_on_upload else aws_uploads(svc.settings.index_tps))
    try:
        with ThreadPoolExecutor(workers) as pool:
            for done, _ in enumerate(pool.map(one, files), start=1):
                report(done)
    finally:  # interrupted too: the next run carries on from here
        journal.save()
    return summary


def aws_uploads(index_tps: float) -> int:
    """Uploads at a time to an AWS stage of this pace (see AWS_UPLOADS)."""
    return min(MAX_AWS_UPLOADS, max(AWS_UPLOADS, math.ceil(index_tps)))


def watch(
    svc: Services,
    keys: list[str],
    on_progress: Callable[[Indexing], None] = lambda indexing: None,
    every: float = WATCH_EVERY_SECONDS,
    sleep: Callable[[float], None] | None = None,
) -> Indexing:
    """Follow the indexing of the photos `keys` until none is pending (on
    AWS the bucket's events index them; the caller may stop watching at any
    time with Ctrl-C). Each round reads the stage's pending photos (the
    images table's sparse `due` index: only they are in it), then once
    each photo that left it, its record: how it ended, and why if it failed."""
    waiting = set(keys)
    indexing = Indexing(total=len(waiting))
    while True:
        left = sorted(waiting - set(pending_among(svc, waiting)))
        with ThreadPoolExecutor(AWS_UPLOADS) as pool:
            for key, image in zip(left, pool.map(svc.records.get_image, left), strict=True):
                if image is not None and image["status"] == PENDING:
                    continue  # the index had not caught up with it yet
                waiting.discard(key)
                _settle(indexing, key, image)
        on_progress(indexing)
        if not waiting:
            return indexing
        (sleep or _pause)(every)


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def pending_among(svc: Services, keys) -> list[str]:
    """Those of `keys` whose photo is pending: one read of every pending
    photo of the stage (on AWS the sparse `due` index, which holds them and
    the records the re-drive owes a visit, nothing else)."""
    pending = set(svc.records.list_pending(_AFTER_ANY_TIME, len(keys) + 1_000_000))
    return [key for key in keys if key in pending]


def _settle(indexing: Indexing, key: str, image: dict | None) -> None:
    if image is None:
        indexing.gone += 1
    elif image["status"] == INDEXED:
        indexing.indexed += 1
        indexing.faces += image.get("faceCount", 0)
    elif image["status"] == NO_FACES:
        indexing.no_faces += 1
    else:  # failed: after attempts that may pass, or refused by the engine at once
        reason = image.get("error", "failed")
        (indexing.failed if image.get("attempts") else indexing.refused).append((key, reason))


class _Journal:
    """What was imported from which file: saved every few seconds and at
    the end, written atomically."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}
        self._saved = time.monotonic()

    def get(self, relative: Path) -> dict | None:
        with self._lock:
            return self._entries.get(str(relative))

    def put(self, relative: Path, entry: dict) -> None:
        with self._lock:
            self._entries[str(relative)] = entry

    def save_now_and_then(self) -> None:
        if time.monotonic() - self._saved >= SAVE_EVERY_SECONDS:
            self.save()

    def save(self) -> None:
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._entries))
            os.replace(tmp, self._path)
            self._saved = time.monotonic()


def journal_for(data_dir: Path, stage: str, folder: Path) -> Path:
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    return data_dir / f"import-{stage}-{digest}.json"
