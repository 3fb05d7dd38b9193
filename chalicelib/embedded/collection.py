"""The embedded engine's face collection: faces in SQLite, searched through an
in-memory nearest-neighbour index (vectors.py) that follows SQLite's changes.

SQLite is the source of truth. Each face is a row of `collection` (`id`, the
index's key; `face_id`; the Face record as JSON; the float32 descriptor).
Triggers write every insert and delete into `collection_log` in the same
transaction, whoever writes (the server, the maintenance CLI, a test), so the
log never disagrees with the table.

The index remembers the last change it applied (`seq`). Before a search it
reads only newer changes (one indexed query, empty when nothing changed) and
applies them: the index is made to agree with the table for the ids changed,
which is idempotent. A write in this process applies its own changes right
after it commits, so the next search finds nothing to do. Another process's
writes show at this process's next search.

The index is saved beside the database with the `seq` it reflects (on
close(), after a rebuild, and every SAVE_EVERY changes); at start it is loaded
and catches up from the log. It is rebuilt from the table when the snapshot is
missing or corrupt, belongs to another database, or is older than the log
still holds: saving compacts the log, keeping the last LOG_KEEP changes for
indexes other processes hold in memory. Once the collection has grown
RETRAIN_GROWTH times since the index was trained, a new one is trained and
built in the background, and takes over when it has caught up.

The collection records which model its descriptors come from (`model` in
collection_state; an archive made before the record is dlib's ResNet, the
only model there was). Descriptors of two models cannot be compared, so a
collection opened by an engine of another model refuses to start
(ModelMismatch), unless it holds no face, and then takes the new model.
A change of model therefore needs the archive's photos indexed again with
the new engine, into a new data folder: none is needed today (issue 23 kept
dlib's descriptors, only computed faster).

A search asks the index for candidates, then reads their float32 descriptors
from SQLite and ranks them by exact distance; Face JSON is read only for the
faces returned. A face the index still holds after its row went (another
process deleted it, a crash) is never returned: only rows read back are.
"""

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.ports import Page
from chalicelib.embedded.database import Database
from chalicelib.embedded.descriptor_net import MODEL
from chalicelib.embedded.paging import decode_token, encode_token
from chalicelib.embedded.vectors import APPROXIMATION_SLACK, DIMENSIONS, VectorIndex

LOG_KEEP = 100_000
SAVE_EVERY = 10_000  # bounds what a restart after a kill replays
REBUILD_BATCH = 50_000
TRAINING_SAMPLE = 160_000  # enough for the largest index (vectors.py: 40 per list)
RETRAIN_GROWTH = 2
MIN_RETRAIN_FACES = 1024  # smaller collections keep the index trained on synthetic faces
MAX_LIMIT = 4096
_DESCRIPTOR_BYTES = DIMENSIONS * 4
# The model of the archives made before collections recorded theirs: the only one there was.
FIRST_MODEL = "dlib_face_recognition_resnet_model_v1"

_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS collection (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        face_id TEXT NOT NULL UNIQUE,
        face TEXT NOT NULL,
        descriptor BLOB NOT NULL CHECK (length(descriptor) = {_DESCRIPTOR_BYTES})
    )""",
    """CREATE TABLE IF NOT EXISTS collection_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS collection_state (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        uuid TEXT NOT NULL,
        faces INTEGER NOT NULL,
        compacted_through INTEGER NOT NULL
    )""",
    """CREATE TRIGGER IF NOT EXISTS collection_logs_inserts AFTER INSERT ON collection BEGIN
        INSERT INTO collection_log (id) VALUES (new.id);
        UPDATE collection_state SET faces = faces + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS collection_logs_deletes AFTER DELETE ON collection BEGIN
        INSERT INTO collection_log (id) VALUES (old.id);
        UPDATE collection_state SET faces = faces - 1;
    END""",
    # A face's key and descriptor never change (the index would not follow):
    # a new descriptor is a delete and an insert.
    """CREATE TRIGGER IF NOT EXISTS collection_keeps_vectors BEFORE UPDATE OF id, descriptor ON collection BEGIN
        SELECT RAISE(ABORT, 'a face''s id and descriptor never change: delete it and insert it again');
    END""",
)

# Read with read_committed(): a change this thread has not committed yet could
# still roll back, and its seq be given to another.
# One statement, so one snapshot: the changes after `seq`, each id's latest,
# with its descriptor if its row is still there, and how far the log was
# compacted. Always at least one row (the state), ids NULL when nothing changed.
_CHANGES = """
    SELECT s.compacted_through, c.id, c.seq, f.descriptor
    FROM collection_state AS s
    LEFT JOIN (SELECT id, max(seq) AS seq FROM collection_log WHERE seq > ? GROUP BY id) AS c ON 1
    LEFT JOIN collection AS f ON f.id = c.id
"""
_STATE = """
    SELECT compacted_through, faces,
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'collection_log'), 0) AS last,
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'collection'), 0) AS top
    FROM collection_state
"""


class ModelMismatch(ConfigurationError):
    """The collection's faces were described by another model than the engine's."""


class Collection:
    def __init__(self, db: Database, index_path: Path, model: str = MODEL) -> None:
        self._db = db
        self._index_path = index_path
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None  # loaded at the first search
        self._seq = 0  # the last change the index reflects
        self._saved_seq = -1  # the change the snapshot on disk reflects, if ours
        self._retraining: threading.Thread | None = None
        self._bulk_loading = False
        with db.transaction():
            _migrate_from_unkeyed_table(db)
            for statement in _SCHEMA:
                db.write(statement)
            db.write(
                "INSERT OR IGNORE INTO collection_state (one, uuid, faces, compacted_through) "
                "SELECT 1, ?, count(*), 0 FROM collection",
                (str(uuid.uuid4()),),
            )
            _check_model(db, model)
        self._uuid = db.read("SELECT uuid FROM collection_state")[0]["uuid"]

    # --- writes ------------------------------------------------------------------------------

    def add(self, faces: list[tuple[dict, np.ndarray]]) -> None:
        """Insert faces (Face records with their FaceId, 128-float descriptors);
        joins the caller's transaction if one is open."""
        if not faces:
            return
        rows = [(face["FaceId"], json.dumps(face), _descriptor_bytes(descriptor)) for face, descriptor in faces]
        with self._db.transaction():
            self._db.write_many("INSERT INTO collection (face_id, face, descriptor) VALUES (?, ?, ?)", rows)
            self._db.after_commit(self._follow)

    def delete(self, face_ids: list[str]) -> None:
        """Remove faces; ids already gone are ignored."""
        if not face_ids:
            return
        with self._db.transaction():
            self._db.write_many("DELETE FROM collection WHERE face_id = ?", [(i,) for i in face_ids])
            self._db.after_commit(self._follow)

    # --- reads -------------------------------------------------------------------------------

    def search(self, descriptor: np.ndarray, max_distance: float, limit: int) -> list[tuple[dict, float]]:
        """The faces at most `max_distance` (Euclidean) from `descriptor`,
        nearest first, at most `limit` (up to MAX_LIMIT), each with its exact
        distance."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
        query = np.frombuffer(_descriptor_bytes(descriptor), dtype=np.float32)
        with self._lock:
            self._catch_up()
            ids, approximate = self._index.search(query, 2 * limit + 20)
        ids = ids[approximate <= max_distance + APPROXIMATION_SLACK]
        if not len(ids):
            return []
        rows = self._db.read(
            "SELECT id, descriptor FROM collection WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids.tolist()),),
        )
        if not rows:
            return []
        found = np.array([row["id"] for row in rows], dtype=np.int64)
        stored = np.frombuffer(b"".join(row["descriptor"] for row in rows), dtype=np.float32).reshape(-1, DIMENSIONS)
        distances = np.sqrt(np.square(stored.astype(np.float64) - query.astype(np.float64)).sum(axis=1))
        order = np.lexsort((found, distances))
        best = [i for i in order if distances[i] <= max_distance][:limit]
        faces = {
            row["id"]: row["face"]
            for row in self._db.read(
                "SELECT id, face FROM collection WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps([int(found[i]) for i in best]),),
            )
        }
        # A face deleted between the two reads is left out.
        return [(json.loads(faces[found[i]]), float(distances[i])) for i in best if found[i] in faces]

    def list_faces(self, limit: int, token: str | None) -> Page:
        rows = self._db.read(
            "SELECT face_id, face FROM collection WHERE face_id > ? ORDER BY face_id LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        faces = [json.loads(row["face"]) for row in rows[:limit]]
        return Page(faces, encode_token(rows[limit - 1]["face_id"]) if len(rows) > limit else None)

    def list_face_ids(self, limit: int, token: str | None) -> Page:
        rows = self._db.read(
            "SELECT face_id FROM collection WHERE face_id > ? ORDER BY face_id LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        ids = [row[0] for row in rows[:limit]]
        return Page(ids, encode_token(ids[-1]) if len(rows) > limit else None)

    def get_faces(self, face_ids) -> dict[str, dict]:
        """The Face records of those of `face_ids` that exist."""
        rows = self._db.read(
            "SELECT face_id, face FROM collection WHERE face_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(face_ids)),),
        )
        return {row["face_id"]: json.loads(row["face"]) for row in rows}

    def count(self) -> int:
        return self._db.read("SELECT faces FROM collection_state")[0]["faces"]

    def descriptors(self, face_ids) -> dict[str, np.ndarray]:
        """The stored descriptors of those of `face_ids` that exist."""
        rows = self._db.read(
            "SELECT face_id, descriptor FROM collection WHERE face_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(face_ids)),),
        )
        return {row["face_id"]: np.frombuffer(row["descriptor"], dtype=np.float32).copy() for row in rows}

    @contextmanager
    def bulk_load(self, faces: int, sample: np.ndarray) -> Iterator[None]:
        """For adding many faces at once (make seed): while the caller adds
        them, a thread retrains the index (retrain()) for the `faces` the
        collection will then hold, on `sample`, descriptors like the coming
        ones; no snapshot is saved meanwhile but the new index's first. At
        the end it waits for the thread and saves the index with every face.
        If the caller fails, what it committed stands (the thread, if this
        process lives on, still takes its new index into use)."""
        failed: list[BaseException] = []

        def train() -> None:
            try:
                self.retrain(faces, sample)
            except BaseException as e:  # raised in the caller's thread, below
                failed.append(e)

        thread = threading.Thread(target=train, name="collection-bulk-load", daemon=True)
        self._bulk_loading = True
        thread.start()
        try:
            yield
        finally:
            self._bulk_loading = False
        thread.join()
        if failed:
            raise failed[0]
        with self._lock:
            self._catch_up()  # what the writer left in the log
        self.close()

    def flush(self) -> None:
        """Bring the saved snapshot up to the table now (after an erasure:
        the snapshot must not keep deleted faces' vectors until the next
        save). Loads the snapshot first if this process has not."""
        with self._lock:
            if self._index is None and VectorIndex.recorded(self._index_path) is None:
                return  # no snapshot: no copy of any vector on disk but the table's
            self._catch_up()
            if self._seq != self._saved_seq:
                self._save()

    def close(self) -> None:
        """Save the index (if it was loaded and changed since)."""
        with self._lock:
            if self._index is not None and self._seq != self._saved_seq:
                self._save()

    # --- the index ---------------------------------------------------------------------------

    def _follow(self) -> None:
        """After a commit here: apply it, unless the index is not loaded yet
        (the first search will load it and catch up). During a bulk load the
        writer does not wait for the index: if it is busy (taking the new
        index into use), the changes wait in the log for the next catch-up."""
        if not self._lock.acquire(blocking=not self._bulk_loading):
            return
        try:
            if self._index is not None:
                self._catch_up()
        finally:
            self._lock.release()

    def _catch_up(self) -> None:
        if self._index is None:
            self._load_or_rebuild()
        rows = self._db.read_committed(_CHANGES, (self._seq,))
        if rows[0]["compacted_through"] > self._seq:
            # The log no longer holds every change since ours: another process
            # saved a newer snapshot and compacted it (make seed, a rebuild).
            # Take that snapshot, or rebuild when it cannot be used.
            self._load_or_rebuild()
            self._catch_up()
            return
        changed = [row for row in rows if row["id"] is not None]
        if changed:
            # Each changed id: out of the index, and back if its row is there.
            self._index.remove(np.array([row["id"] for row in changed], dtype=np.int64))
            present = [row for row in changed if row["descriptor"] is not None]
            self._index.add(*_vectors(present))
            self._seq = max(row["seq"] for row in changed)
            if self._seq - max(self._saved_seq, 0) >= SAVE_EVERY and not self._bulk_loading:
                self._save()
        if len(self._index) >= max(RETRAIN_GROWTH * self._index.trained_for, MIN_RETRAIN_FACES):
            self._start_retraining()

    def _load_or_rebuild(self) -> None:
        loaded = VectorIndex.load(self._index_path)
        if loaded is not None:
            index, about = loaded
            state = self._db.read_committed(_STATE)[0]
            if about.get("uuid") == self._uuid and state["compacted_through"] <= about["seq"] <= state["last"]:
                self._index, self._seq, self._saved_seq = index, about["seq"], about["seq"]
                return
        self._rebuild()

    def _rebuild(self) -> None:
        self._index, self._seq = self._built_from_table()
        self._saved_seq = -1
        self._catch_up()
        self._save(replace=True)

    def _start_retraining(self) -> None:
        """Retrain for the grown collection in the background: searches go
        on with the current index until the new one has caught up."""
        if self._retraining is None:
            self._retraining = threading.Thread(
                target=self._retrain_in_background, name="collection-retraining", daemon=True
            )
            self._retraining.start()

    def _retrain_in_background(self) -> None:
        try:
            self._take_new_index()
        finally:
            self._retraining = None

    def retrain(self, faces: int | None = None, sample: np.ndarray | None = None) -> None:
        """Build a new index from the table and take it into use, saved (the
        log compacted: other processes take this snapshot at their next
        search). For a bulk load (make seed), run it in a thread while the
        faces are added, with `faces` the size the collection will reach
        and `sample` descriptors like the coming ones: training overlaps the
        load, the faces committed by then fill the index, and the later ones
        are applied as they commit. The index in use is dropped first (not
        followed meanwhile): searches in this process load the last snapshot."""
        with self._lock:
            self._index = None
        self._take_new_index(faces, sample)

    def _take_new_index(self, faces: int | None = None, sample: np.ndarray | None = None) -> None:
        index, seq = self._built_from_table(faces, sample)
        with self._lock:
            self._index, self._seq, self._saved_seq = index, seq, -1
            self._catch_up()
            self._save(replace=True)

    def _built_from_table(self, faces: int | None = None, sample: np.ndarray | None = None) -> tuple[VectorIndex, int]:
        """A new index of every row, trained on a sample of them (and of
        `sample`) for a collection of `faces` (default: as many as there
        are), and the change it reflects. Once trained, it is filled with
        the rows there are at that change, read in pages: a row added later
        has a higher id and is left to the catch-up that follows, as is any
        delete meanwhile (applied again, harmlessly, if the page saw it)."""
        state = self._db.read_committed(_STATE)[0]
        # A sample by random ids (some gone: deleted), without scanning the table.
        picked = np.random.default_rng().choice(state["top"], min(state["top"], 2 * TRAINING_SAMPLE), replace=False)
        rows = self._db.read_committed(
            "SELECT id, descriptor FROM collection WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps((picked + 1).tolist()),),
        )
        training = _vectors(rows[:TRAINING_SAMPLE])[1]
        if sample is not None:
            training = np.concatenate([training, np.asarray(sample, dtype=np.float32).reshape(-1, DIMENSIONS)])
        index = VectorIndex.trained(training, max(state["faces"], faces or 0))
        state = self._db.read_committed(_STATE)[0]  # training takes a while: what is there now
        after = 0
        while rows := self._db.read_committed(
            "SELECT id, descriptor FROM collection WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after, state["top"], REBUILD_BATCH),
        ):
            index.add(*_vectors(rows))
            after = rows[-1]["id"]
        return index, max(state["last"], state["compacted_through"])

    def _save(self, replace: bool = False) -> None:
        """Save the index, unless (`replace` says it is damaged) the snapshot on disk is as new."""
        on_disk = None if replace else VectorIndex.recorded(self._index_path)
        if on_disk and on_disk.get("uuid") == self._uuid and on_disk.get("seq", -1) >= self._seq:
            self._saved_seq = self._seq  # another process saved this or newer
            return
        self._index.save(self._index_path, {"uuid": self._uuid, "seq": self._seq, "faces": len(self._index)})
        self._saved_seq = self._seq
        # Keep LOG_KEEP changes before the snapshot for indexes other
        # processes hold; older ones only a rebuild can need now.
        through = self._seq - LOG_KEEP
        with self._db.transaction():
            if self._db.write(
                "UPDATE collection_state SET compacted_through = ? WHERE compacted_through < ?", (through, through)
            ):
                self._db.write("DELETE FROM collection_log WHERE seq <= ?", (through,))


def _vectors(rows) -> tuple[np.ndarray, np.ndarray]:
    """The ids and descriptors of rows read from the table."""
    ids = np.array([row["id"] for row in rows], dtype=np.int64)
    return ids, np.frombuffer(b"".join(row["descriptor"] for row in rows), dtype=np.float32).reshape(-1, DIMENSIONS)


def _descriptor_bytes(descriptor: np.ndarray) -> bytes:
    vector = np.asarray(descriptor, dtype=np.float32)
    if vector.shape != (DIMENSIONS,) or not np.isfinite(vector).all():
        raise ValueError(f"a descriptor is {DIMENSIONS} finite numbers, not {vector.shape} {vector.dtype}")
    return vector.tobytes()


def _check_model(db: Database, model: str) -> None:
    """Record the collection's model (FIRST_MODEL for an archive made before
    the record; `model` for an empty one), and refuse another model's."""
    if "model" not in {row["name"] for row in db.read("PRAGMA table_info(collection_state)")}:
        db.write("ALTER TABLE collection_state ADD COLUMN model TEXT")
    db.write(
        "UPDATE collection_state SET model = CASE WHEN faces = 0 THEN ? ELSE ? END WHERE model IS NULL",
        (model, FIRST_MODEL),
    )
    recorded, faces = db.read("SELECT model, faces FROM collection_state")[0]
    if recorded == model:
        return
    if faces == 0:
        db.write("UPDATE collection_state SET model = ?", (model,))
        return
    raise ModelMismatch(
        f"This archive's {faces} faces were described by the model {recorded}, and this engine describes faces "
        f"with {model}: the two models' descriptors cannot be compared, so they are never mixed in one index. "
        "Run the version of Faceprint that made the archive, or index its photos again with this one into a new "
        "data folder (FACEPRINT_DATA_DIR)."
    )


def _migrate_from_unkeyed_table(db: Database) -> None:
    """Databases made before the log: `collection` keyed by face_id, and a
    version counter. Their faces move to the new table, in their order."""
    columns = {row["name"] for row in db.read("PRAGMA table_info(collection)")}
    if not columns or "id" in columns:
        return
    db.write("ALTER TABLE collection RENAME TO collection_unkeyed")
    db.write(_SCHEMA[0])
    db.write(
        "INSERT INTO collection (face_id, face, descriptor) "
        "SELECT face_id, face, descriptor FROM collection_unkeyed ORDER BY rowid"
    )
    db.write("DROP TABLE collection_unkeyed")
    db.write("DROP TABLE IF EXISTS collection_version")
