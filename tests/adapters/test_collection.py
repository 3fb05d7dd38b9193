"""The embedded collection (chalicelib/embedded/collection.py) on real SQLite
files: search against exact search, the threshold to the last bit, paging,
deletes, other processes' writes, and the index surviving crashes, corrupt or
missing files and a compacted log. Big-N figures: scripts/bench_vectors.py."""

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.embedded import collection as collection_module
from chalicelib.embedded.collection import Collection
from chalicelib.embedded.database import Database
from chalicelib.embedded.synthetic import synthetic_descriptors
from chalicelib.embedded.vectors import VectorIndex
from tests.support.photos import REPO

N = 3000


@pytest.fixture(scope="module")
def descriptors():
    return synthetic_descriptors(N + 200, seed=7)[0]


def face(number: int) -> dict:
    return {"FaceId": f"face-{number:05d}", "ImageId": f"image-{number // 3}", "ExternalImageId": f"p{number}.jpg"}


def open_collection(folder: Path) -> Collection:
    return Collection(Database(folder / "faceprint.db"), folder / "faceprint.index")


def fill(collection: Collection, descriptors: np.ndarray, numbers) -> None:
    collection.add([(face(n), descriptors[n]) for n in numbers])


def exact_nearest(descriptors: np.ndarray, kept: list[int], query: np.ndarray, k: int) -> list[str]:
    d = np.linalg.norm(descriptors[kept].astype(np.float64) - query.astype(np.float64), axis=1)
    return [face(kept[i])["FaceId"] for i in np.argsort(d, kind="stable")[:k]]


def ids(found) -> list[str]:
    return [f["FaceId"] for f, _ in found]


def snapshot_file(folder: Path) -> str:
    return json.loads((folder / "faceprint.index").read_text())["file"]


@pytest.fixture
def full(tmp_path, descriptors) -> Collection:
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(N))
    return collection


# --- searching -----------------------------------------------------------------------------------


def test_search_finds_what_exact_search_finds(full, descriptors):
    queries = descriptors[N : N + 100]
    found = sum(
        len(set(ids(full.search(q, 3.0, 10))) & set(exact_nearest(descriptors, list(range(N)), q, 10))) for q in queries
    )
    assert found / (10 * len(queries)) >= 0.99


def test_search_returns_exact_distances_nearest_first_within_the_limit(full, descriptors):
    query = descriptors[N + 1]
    found = full.search(query, 3.0, 25)
    assert len(found) == 25
    distances = [d for _, d in found]
    assert distances == sorted(distances)
    for record, distance in found:
        number = int(record["FaceId"].split("-")[1])
        assert record == face(number)
        exact = np.linalg.norm(descriptors[number].astype(np.float64) - query.astype(np.float64))
        assert distance == pytest.approx(exact, rel=1e-12, abs=0)  # 8-bit codes would be 1e-3 off


def test_the_threshold_is_exact_to_the_last_bit(tmp_path):
    """Faces a hair either side of 0.6 (threshold 80): the index's 8-bit
    distances must not decide, the exact float32 ones do."""
    rng = np.random.default_rng(1)
    query = synthetic_descriptors(1, seed=3)[0][0]
    directions = rng.standard_normal((200, 128))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    offsets = 0.6 + rng.uniform(-2e-4, 2e-4, size=200)
    stored = (query + directions * offsets[:, None]).astype(np.float32)
    exact = np.linalg.norm(stored.astype(np.float64) - query.astype(np.float64), axis=1)
    collection = open_collection(tmp_path)
    collection.add([(face(n), stored[n]) for n in range(200)])

    found = dict((f["FaceId"], d) for f, d in collection.search(query, 0.6, 4096))
    assert set(found) == {face(n)["FaceId"] for n in range(200) if exact[n] <= 0.6}
    # A face exactly at the bound is in; a bound one ulp nearer leaves it out.
    at = face(int(np.argmin(np.abs(exact - 0.6))))["FaceId"]
    bound = dict((f["FaceId"], d) for f, d in collection.search(query, 3.0, 4096))[at]
    assert at in {f["FaceId"] for f, _ in collection.search(query, bound, 4096)}
    assert at not in {f["FaceId"] for f, _ in collection.search(query, float(np.nextafter(bound, 0)), 4096)}


def test_only_faces_within_the_distance_come_back(full, descriptors):
    query = descriptors[N + 2]
    found = full.search(query, 0.6, 4096)
    exact = np.linalg.norm(descriptors[:N].astype(np.float64) - query.astype(np.float64), axis=1)
    assert len(found) == int((exact <= 0.6).sum()) > 0
    assert all(d <= 0.6 for _, d in found)


def test_an_empty_collection_finds_nothing(tmp_path, descriptors):
    assert open_collection(tmp_path).search(descriptors[0], 3.0, 10) == []


def test_a_bad_descriptor_or_limit_is_refused(tmp_path, descriptors):
    collection = open_collection(tmp_path)
    with pytest.raises(ValueError):
        collection.add([(face(1), np.zeros(127))])
    with pytest.raises(ValueError):
        collection.add([(face(1), np.full(128, np.nan))])
    with pytest.raises(ValueError):
        collection.search(descriptors[0], 0.6, 4097)
    assert collection.count() == 0


# --- listing, counting, descriptors -----------------------------------------------------------


def test_faces_come_a_page_at_a_time_in_face_id_order(tmp_path, descriptors):
    collection = open_collection(tmp_path)
    fill(collection, descriptors, [7, 3, 9, 1, 5, 8, 2])
    pages, token = [], None
    while True:
        page = collection.list_faces(3, token)
        pages.append([f["FaceId"] for f in page.items])
        if page.next is None:
            break
        token = page.next
    assert pages == [
        ["face-00001", "face-00002", "face-00003"],
        ["face-00005", "face-00007", "face-00008"],
        ["face-00009"],
    ]
    assert collection.list_faces(3, None).items[0] == face(1)
    with pytest.raises(BadRequest):
        collection.list_faces(3, "not-a-token")
    ids, token = [], None
    while True:
        page = collection.list_face_ids(3, token)
        ids.append(page.items)
        if page.next is None:
            break
        token = page.next
    assert ids == pages  # the same, without the records


def test_count_and_descriptors_follow_adds_and_deletes(tmp_path, descriptors):
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(10))
    collection.delete([face(3)["FaceId"], "never-there"])
    assert collection.count() == 9
    stored = collection.descriptors([face(2)["FaceId"], face(3)["FaceId"], "never-there"])
    assert list(stored) == [face(2)["FaceId"]]
    assert stored[face(2)["FaceId"]].dtype == np.float32
    assert np.array_equal(stored[face(2)["FaceId"]], descriptors[2])


# --- deletes -------------------------------------------------------------------------------------


def test_deleted_faces_are_never_found_again(full, descriptors, tmp_path):
    query = descriptors[N + 3]
    before = ids(full.search(query, 3.0, 10))
    full.delete(before[:5])
    after = ids(full.search(query, 3.0, 10))
    assert not set(before[:5]) & set(after)
    kept = [n for n in range(N) if face(n)["FaceId"] not in before[:5]]
    assert after == exact_nearest(descriptors, kept, query, 10)
    full.close()
    assert not set(before[:5]) & set(ids(open_collection(tmp_path).search(query, 3.0, 10)))


def test_a_rolled_back_add_is_never_searchable(tmp_path, descriptors):
    db = Database(tmp_path / "faceprint.db")
    collection = Collection(db, tmp_path / "faceprint.index")
    fill(collection, descriptors, range(5))
    collection.search(descriptors[0], 0.6, 10)  # the index is loaded
    with pytest.raises(RuntimeError), db.transaction():
        fill(collection, descriptors, [10])
        raise RuntimeError("the photo's records failed")
    fill(collection, descriptors, [11])
    assert ids(collection.search(descriptors[10], 0.01, 10)) == []
    assert ids(collection.search(descriptors[11], 0.01, 10)) == [face(11)["FaceId"]]
    assert collection.count() == 6


# --- other writers -----------------------------------------------------------------------------


def test_another_writers_changes_show_at_the_next_search(tmp_path, descriptors):
    server = open_collection(tmp_path)
    fill(server, descriptors, range(100))
    assert ids(server.search(descriptors[200], 0.01, 10)) == []
    cli = open_collection(tmp_path)  # another Database, as another process has
    fill(cli, descriptors, [200])
    cli.delete([face(5)["FaceId"]])
    assert ids(server.search(descriptors[200], 0.01, 10)) == [face(200)["FaceId"]]
    assert ids(server.search(descriptors[5], 0.01, 10)) == []


def test_a_plain_sqlite_writer_in_another_process_is_followed(tmp_path, descriptors):
    server = open_collection(tmp_path)
    fill(server, descriptors, range(100))
    assert ids(server.search(descriptors[7], 0.01, 10)) == [face(7)["FaceId"]]
    descriptor = descriptors[300].tobytes().hex()
    script = f"""
        import sqlite3
        conn = sqlite3.connect({str(tmp_path / "faceprint.db")!r})
        with conn:
            conn.execute("DELETE FROM collection WHERE face_id = 'face-00007'")
            conn.execute("INSERT INTO collection (face_id, face, descriptor) VALUES (?, ?, ?)",
                         ("face-00300", '{{"FaceId": "face-00300"}}', bytes.fromhex({descriptor!r})))
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True)
    assert ids(server.search(descriptors[7], 0.01, 10)) == []
    assert ids(server.search(descriptors[300], 0.01, 10)) == ["face-00300"]
    assert server.count() == 100


def test_following_writes_never_reloads_the_index(tmp_path, descriptors, monkeypatch):
    server = open_collection(tmp_path)
    fill(server, descriptors, range(100))
    server.search(descriptors[0], 0.6, 10)
    reloads = []
    monkeypatch.setattr(VectorIndex, "load", lambda *a: reloads.append("load"))
    monkeypatch.setattr(Collection, "_rebuild", lambda self: reloads.append("rebuild"))
    fill(server, descriptors, [101])
    fill(open_collection(tmp_path), descriptors, [102])
    server.delete([face(1)["FaceId"]])
    assert ids(server.search(descriptors[102], 0.01, 10)) == [face(102)["FaceId"]]
    assert ids(server.search(descriptors[101], 0.01, 10)) == [face(101)["FaceId"]]
    assert reloads == []


# --- restarts, crashes and damaged files -------------------------------------------------------


def test_a_restart_loads_the_saved_index_and_catches_up(full, descriptors, tmp_path):
    full.search(descriptors[0], 0.6, 10)
    full.close()
    saved = snapshot_file(tmp_path)
    fill(open_collection(tmp_path), descriptors, [N + 10])  # while "the server" is down
    again = open_collection(tmp_path)
    assert ids(again.search(descriptors[N + 10], 0.01, 10)) == [face(N + 10)["FaceId"]]
    assert snapshot_file(tmp_path) == saved  # loaded, not rebuilt


CRASHING_WRITER = """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    from tests.adapters.test_collection import face, open_collection
    from pathlib import Path
    descriptors = np.load({descriptors!r})
    collection = open_collection(Path({folder!r}))
    collection.search(descriptors[0], 0.6, 10)
    collection.add([(face(n), descriptors[n]) for n in (20, 21)])
    collection.delete([face(2)["FaceId"]])
    os.kill(os.getpid(), signal.SIGKILL)  # committed, the index never saved
"""


def test_a_crash_after_commit_loses_no_face_and_resurrects_none(tmp_path, descriptors):
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(10))
    collection.search(descriptors[0], 0.6, 10)
    collection.close()
    np.save(tmp_path / "descriptors.npy", descriptors)
    script = CRASHING_WRITER.format(repo=str(REPO), descriptors=str(tmp_path / "descriptors.npy"), folder=str(tmp_path))
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO)
    assert crashed.returncode == -9
    again = open_collection(tmp_path)
    assert ids(again.search(descriptors[20], 0.01, 10)) == [face(20)["FaceId"]]
    assert ids(again.search(descriptors[21], 0.01, 10)) == [face(21)["FaceId"]]
    assert ids(again.search(descriptors[2], 0.01, 10)) == []
    assert again.count() == 11


@pytest.mark.parametrize("damage", ["missing manifest", "missing index", "corrupt index", "truncated index"])
def test_a_damaged_index_is_rebuilt_from_the_table(full, descriptors, tmp_path, damage):
    query = descriptors[N + 4]
    expected = ids(full.search(query, 3.0, 10))
    full.close()
    data = tmp_path / snapshot_file(tmp_path)
    if damage == "missing manifest":
        (tmp_path / "faceprint.index").unlink()
    elif damage == "missing index":
        data.unlink()
    elif damage == "corrupt index":
        content = bytearray(data.read_bytes())
        content[len(content) // 2 : len(content) // 2 + 64] = bytes(64)
        data.write_bytes(bytes(content))
    else:
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    again = open_collection(tmp_path)
    assert ids(again.search(query, 3.0, 10)) == expected
    assert snapshot_file(tmp_path) != data.name  # rebuilt, and saved for the next start


def test_an_index_older_than_the_log_is_rebuilt(tmp_path, descriptors):
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(10))
    collection.search(descriptors[0], 0.6, 10)
    collection.close()
    fill(open_collection(tmp_path), descriptors, [30])
    with sqlite3.connect(tmp_path / "faceprint.db") as conn:  # the log compacted past the snapshot
        conn.execute("DELETE FROM collection_log")
        conn.execute(
            "UPDATE collection_state SET compacted_through = "
            "(SELECT seq FROM sqlite_sequence WHERE name = 'collection_log')"
        )
    assert ids(open_collection(tmp_path).search(descriptors[30], 0.01, 10)) == [face(30)["FaceId"]]


def test_a_running_index_left_behind_by_compaction_rebuilds(tmp_path, descriptors, monkeypatch):
    server = open_collection(tmp_path)
    fill(server, descriptors, range(10))
    server.search(descriptors[0], 0.6, 10)
    monkeypatch.setattr(collection_module, "LOG_KEEP", 0)
    other = open_collection(tmp_path)
    fill(other, descriptors, [40])
    other.delete([face(4)["FaceId"]])
    other.search(descriptors[0], 0.6, 10)
    other.close()  # saves, and drops the whole log
    assert sqlite3.connect(tmp_path / "faceprint.db").execute("SELECT count(*) FROM collection_log").fetchone()[0] == 0
    assert ids(server.search(descriptors[40], 0.01, 10)) == [face(40)["FaceId"]]
    assert ids(server.search(descriptors[4], 0.01, 10)) == []


def test_a_running_index_left_behind_by_compaction_takes_the_newer_snapshot(tmp_path, descriptors, monkeypatch):
    """make seed saves an index of a million faces and compacts the log: a
    running server loads that snapshot at its next search, not a rebuild."""
    server = open_collection(tmp_path)
    fill(server, descriptors, range(10))
    server.search(descriptors[0], 0.6, 10)
    monkeypatch.setattr(collection_module, "LOG_KEEP", 0)
    seeder = open_collection(tmp_path)
    with seeder.bulk_load(300, descriptors[1000:1300]):
        fill(seeder, descriptors, range(10, 300))
    seeder.delete([face(4)["FaceId"]])
    seeder.retrain()  # saves, and drops the whole log
    rebuilt = []
    monkeypatch.setattr(Collection, "_built_from_table", lambda self, *a: rebuilt.append(a))
    assert ids(server.search(descriptors[250], 0.01, 10)) == [face(250)["FaceId"]]
    assert ids(server.search(descriptors[4], 0.01, 10)) == []
    assert rebuilt == []


def test_a_bulk_load_retrains_for_its_size_while_the_faces_go_in(tmp_path, descriptors, monkeypatch):
    monkeypatch.setattr(collection_module, "SAVE_EVERY", 10)  # no snapshot meanwhile all the same
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(5))
    collection.search(descriptors[0], 0.6, 10)
    collection.close()
    saves = []
    save = Collection._save
    monkeypatch.setattr(Collection, "_save", lambda self, **kw: saves.append(kw) or save(self, **kw))
    with collection.bulk_load(N, descriptors[N : N + 200]):
        fill(collection, descriptors, range(5, 250))
        deadline = time.monotonic() + 60
        while collection._index is None and time.monotonic() < deadline:  # the new index is taken into use
            time.sleep(0.01)
        for start in range(250, N, 250):
            fill(collection, descriptors, range(start, min(N, start + 250)))
    assert len(saves) == 2  # the new index once taken into use, and at the end
    manifest = json.loads((tmp_path / "faceprint.index").read_text())
    assert manifest["trained_for"] == N and manifest["about"]["faces"] == N
    again = open_collection(tmp_path)
    query = descriptors[N + 7]
    assert ids(again.search(query, 3.0, 10)) == exact_nearest(descriptors, list(range(N)), query, 10)
    assert snapshot_file(tmp_path) == manifest["file"]  # loaded, not rebuilt
    assert ids(again.search(descriptors[N - 1], 0.01, 10)) == [face(N - 1)["FaceId"]]


def test_an_index_of_another_database_is_not_used(tmp_path, descriptors):
    first = open_collection(tmp_path / "a")
    fill(first, descriptors, range(10))
    first.search(descriptors[0], 0.6, 10)
    first.close()
    second = open_collection(tmp_path / "b")
    fill(second, descriptors, range(10, 20))
    for name in ("faceprint.index", snapshot_file(tmp_path / "a")):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    assert ids(second.search(descriptors[3], 0.01, 10)) == []
    assert ids(second.search(descriptors[13], 0.01, 10)) == [face(13)["FaceId"]]


def test_a_database_from_before_the_log_keeps_its_faces(tmp_path, descriptors):
    with sqlite3.connect(tmp_path / "faceprint.db") as conn:
        conn.execute("CREATE TABLE collection (face_id TEXT PRIMARY KEY, face TEXT NOT NULL, descriptor BLOB NOT NULL)")
        conn.execute("CREATE TABLE collection_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
        conn.executemany(
            "INSERT INTO collection VALUES (?, ?, ?)",
            [(face(n)["FaceId"], json.dumps(face(n)), descriptors[n].tobytes()) for n in range(5)],
        )
    collection = open_collection(tmp_path)
    assert collection.count() == 5
    assert ids(collection.search(descriptors[3], 0.01, 10)) == [face(3)["FaceId"]]
    fill(collection, descriptors, [6])
    assert ids(collection.search(descriptors[6], 0.01, 10)) == [face(6)["FaceId"]]


def test_a_grown_collection_retrains_in_the_background(tmp_path, descriptors, monkeypatch):
    monkeypatch.setattr(collection_module, "MIN_RETRAIN_FACES", 50)
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(10))
    collection.search(descriptors[0], 0.6, 10)  # trained for 10 faces (and synthetic ones)
    fill(collection, descriptors, range(10, 400))
    retraining = collection._retraining  # None if it is already over
    if retraining is not None:
        retraining.join(60)
    assert json.loads((tmp_path / "faceprint.index").read_text())["trained_for"] == 400
    query = descriptors[N + 5]
    assert ids(collection.search(query, 3.0, 10)) == exact_nearest(descriptors, list(range(400)), query, 10)
    assert ids(collection.search(descriptors[399], 0.01, 10)) == [face(399)["FaceId"]]


def _recorded_model(folder: Path) -> str:
    with sqlite3.connect(folder / "faceprint.db") as db:
        return db.execute("SELECT model FROM collection_state").fetchone()[0]


def test_a_collection_records_the_model_of_its_descriptors(tmp_path, descriptors):
    fill(open_collection(tmp_path), descriptors, range(3))
    assert _recorded_model(tmp_path) == collection_module.MODEL == "dlib_face_recognition_resnet_model_v1"


def test_an_archive_made_before_the_record_is_dlibs_and_keeps_working(tmp_path, descriptors):
    fill(open_collection(tmp_path), descriptors, range(3))
    with sqlite3.connect(tmp_path / "faceprint.db") as db:
        db.execute("ALTER TABLE collection_state DROP COLUMN model")  # as every archive was before issue 23
    reopened = open_collection(tmp_path)
    assert _recorded_model(tmp_path) == collection_module.FIRST_MODEL
    assert ids(reopened.search(descriptors[1], 0.01, 5)) == [face(1)["FaceId"]]


def test_another_models_engine_refuses_the_archive_and_changes_nothing(tmp_path, descriptors):
    fill(open_collection(tmp_path), descriptors, range(3))
    with pytest.raises(collection_module.ModelMismatch, match="3 faces were described by the model dlib_face_rec"):
        Collection(Database(tmp_path / "faceprint.db"), tmp_path / "faceprint.index", model="another-model-v2")
    assert _recorded_model(tmp_path) == collection_module.MODEL
    assert open_collection(tmp_path).count() == 3


def test_an_empty_collection_takes_the_model_of_the_engine_that_opens_it(tmp_path, descriptors):
    collection = open_collection(tmp_path)
    fill(collection, descriptors, range(2))
    collection.delete([face(0)["FaceId"], face(1)["FaceId"]])
    Collection(Database(tmp_path / "faceprint.db"), tmp_path / "faceprint.index", model="another-model-v2")
    assert _recorded_model(tmp_path) == "another-model-v2"
    fill(open_collection(tmp_path), descriptors, [5])  # still empty: dlib's model again, then a face
    assert _recorded_model(tmp_path) == collection_module.MODEL
    with pytest.raises(collection_module.ModelMismatch):
        Collection(Database(tmp_path / "faceprint.db"), tmp_path / "faceprint.index", model="another-model-v2")
