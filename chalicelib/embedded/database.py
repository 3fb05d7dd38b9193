"""One SQLite database shared by the embedded engine's collection and the
record store, safe under `chalice local`'s one-thread-per-request server.

Each thread borrows a connection from a pool. `transaction()` is re-entrant
and lazy: BEGIN IMMEDIATE runs at the first write inside it, so slow work
inside never holds the write lock before it must, and everything written
inside it commits together, or not at all. `transaction(immediate=True)`
takes the write lock at once: for a read-then-write (compare-and-set) that
no other writer may slip into. `after_commit()` defers work that must only
follow a commit (the collection's in-memory index).
"""

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chalicelib.embedded import private

BUSY_TIMEOUT_MS = 30_000


class Database:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        private.folder(path.parent)
        private.file(path)  # SQLite gives its write-ahead log and shared memory the database's mode
        for beside in (path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            if beside.exists():  # made before: tightened too
                private.file(beside)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")

    def read(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def read_committed(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        """Like read(), on a connection of its own: inside a transaction it
        sees what is committed, not this thread's writes yet."""
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            self._pool.put(conn)

    def write(self, sql: str, params: Sequence = ()) -> int:
        """Run one write; inside transaction() it joins it, else it commits alone."""
        with self.transaction(), self._connection() as conn:
            self._begin_if_needed(conn)
            return conn.execute(sql, params).rowcount

    def write_many(self, sql: str, rows: Sequence[Sequence]) -> None:
        with self.transaction(), self._connection() as conn:
            self._begin_if_needed(conn)
            conn.executemany(sql, rows)

    @contextmanager
    def transaction(self, immediate: bool = False) -> Iterator[None]:
        state = self._local
        if getattr(state, "depth", 0):
            state.depth += 1
            try:
                if immediate:
                    with self._connection() as conn:
                        self._begin_if_needed(conn)
                yield
            finally:
                state.depth -= 1
            return
        with self._connection() as conn:
            state.depth, state.begun, state.after_commit = 1, False, []
            try:
                if immediate:
                    self._begin_if_needed(conn)
                yield
                if state.begun:
                    conn.execute("COMMIT")
                committed = state.after_commit
            except BaseException:
                if state.begun:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if state.begun:
                    self._write_lock.release()
                state.depth, state.begun, state.after_commit = 0, False, []
        for callback in committed:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the open transaction has committed (and released
        the write lock), or now if none is open; never if it rolls back."""
        if getattr(self._local, "depth", 0):
            self._local.after_commit.append(callback)
        else:
            callback()

    def checkpoint(self) -> bool:
        """Copy the write-ahead log into the database and empty it
        (TRUNCATE), so that rows deleted (and, with secure_delete, zeroed)
        leave no older copy in the log. False when a reader kept part of it:
        the next checkpoint (SQLite's own, every 1000 pages) finishes."""
        with self._connection() as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    def close(self) -> None:
        """Close the idle connections (a command done with the database)."""
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def _begin_if_needed(self, conn: sqlite3.Connection) -> None:
        if not self._local.begun:
            # One writer per process at a time (no "database is locked" between
            # our own threads); busy_timeout covers other processes (the CLI).
            self._write_lock.acquire()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._write_lock.release()
                raise
            self._local.begun = True

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None
            self._pool.put(conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=NORMAL")
        # What is deleted is overwritten with zeros, not left in free pages
        # (an erasure must not leave a person's name in the file).
        conn.execute("PRAGMA secure_delete=ON")
        return conn
