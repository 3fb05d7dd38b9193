"""The SQLite unit of work the embedded adapters share, alone."""

import threading

import pytest

from chalicelib.embedded.database import Database


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
