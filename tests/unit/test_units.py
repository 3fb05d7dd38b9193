"""Keys, labels, metadata, paging and the SQLite unit of work, alone."""

import threading

import pytest

from chalicelib.api.metadata import metadata_from_headers
from chalicelib.core.errors import BadRequest
from chalicelib.core.keys import external_image_id, key_from_external_image_id, key_from_path, label_for
from chalicelib.core.limits import EXTERNAL_IMAGE_ID
from chalicelib.embedded.database import Database
from chalicelib.embedded.paging import decode_token, encode_token


@pytest.mark.parametrize(
    "key, label",
    [
        ("Keanu-Avril-Lawrence.jpg", "Keanu avril lawrence"),
        ("smiling_lady.png", "Smiling lady"),
        ("archive.2024.JPG", "Archive.2024"),
        ("noextension", "Noextension"),
        (".hidden", ".hidden"),
    ],
)
def test_labels_follow_the_old_projects_rule(key, label):
    assert label_for(key, {}) == label


def test_name_metadata_wins_over_the_filename():
    assert label_for("x.jpg", {"name": "Ada Lovelace"}) == "Ada Lovelace"


@pytest.mark.parametrize(
    "key",
    ["plain.jpg", "with space.jpg", "été 😀.png", "b64:looks-encoded", "a:b.c-d_e", "x" * 255, "é" * 127],
)
def test_every_key_maps_to_a_valid_external_image_id_and_back(key):
    external = external_image_id(key)
    assert EXTERNAL_IMAGE_ID.fullmatch(external)
    assert key_from_external_image_id(external) in (key, None)


def test_readable_keys_stay_readable_and_long_ones_are_hashed():
    assert external_image_id("Keanu-Reeves.jpg") == "Keanu-Reeves.jpg"
    assert key_from_external_image_id(external_image_id("with space.jpg")) == "with space.jpg"
    assert external_image_id("é" * 127).startswith("sha256:")


def test_path_keys_are_percent_decoded_once():
    assert key_from_path("a%2520b.jpg") == "a%20b.jpg"
    assert key_from_path("caf%C3%A9+1.jpg") == "café+1.jpg"
    with pytest.raises(BadRequest):
        key_from_path("%2E%2E")


def test_metadata_names_are_lowercased_and_other_headers_ignored():
    headers = {"X-Amz-Meta-Name": "Ada", "content-type": "image/jpeg", "x-amz-meta-Take": " 3 "}
    assert metadata_from_headers(headers) == {"name": "Ada", "take": "3"}


def test_metadata_needs_a_name():
    with pytest.raises(BadRequest):
        metadata_from_headers({"x-amz-meta-": "v"})


def test_tokens_round_trip_and_reject_garbage():
    assert decode_token(encode_token(["é", 3])) == ["é", 3]
    assert decode_token(None) is None
    with pytest.raises(BadRequest):
        decode_token("%%%")


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "t.db")
    database.write("CREATE TABLE t (v INTEGER)")
    return database


def test_a_failed_transaction_leaves_nothing(db):
    with pytest.raises(RuntimeError), db.transaction():
        db.write("INSERT INTO t VALUES (1)")
        with db.transaction():  # nested: joins the outer one
            db.write("INSERT INTO t VALUES (2)")
        raise RuntimeError("crash between two writes")
    assert db.read("SELECT count(*) AS n FROM t")[0]["n"] == 0


def test_a_read_only_transaction_takes_no_write_lock(db):
    with db.transaction():
        db.read("SELECT * FROM t")
        other = threading.Thread(target=db.write, args=("INSERT INTO t VALUES (9)",))
        other.start()
        other.join(5)
        assert not other.is_alive()
    assert db.read("SELECT v FROM t")[0]["v"] == 9


def test_concurrent_writers_neither_lose_rows_nor_lock_up(db):
    def add(n):
        for i in range(50):
            with db.transaction():
                db.write("INSERT INTO t VALUES (?)", (n * 100 + i,))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.read("SELECT count(DISTINCT v) AS n FROM t")[0]["n"] == 400
