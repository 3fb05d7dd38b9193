"""The analysis worker processes of the embedded engine: their pool, the
time limit, the restart after a runaway photo, and their end.

dlib's shape predictor, descriptor and detector.run() hold the GIL
(measured: two threads take as long as one after the other), and its
objects are not documented as thread-safe, so processes are what lets 2
cores serve 2 requests, and a worker that runs past the time limit can be
killed without touching the server.

The workers end with the server, however it ends:
- A normal exit (Ctrl-C; SIGTERM, which wiring.stop_on_sigterm turns into
  the same): the pool is shut down cleanly, by concurrent.futures at
  interpreter exit and by `close` at exit (wiring.py registers it).
- Anything else (SIGKILL, a crash): each worker watches its parent, and
  exits within PARENT_POLL_SECONDS of it being gone. PR_SET_PDEATHSIG cannot
  do this: it fires when the *thread* that started the worker ends, and the
  pool starts from a request thread that ends after its request.
"""

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from chalicelib.core.errors import ImageTooComplex
from chalicelib.core.limits import MAX_FACES, TIME_LIMIT_SECONDS
from chalicelib.embedded import analysis

PARENT_POLL_SECONDS = 0.5


class FaceAnalyzer:
    """Runs analysis.analyze in a pool of worker processes, one per core by
    default, each with its own dlib models, started on first use."""

    def __init__(self, workers: int | None = None, time_limit: float = TIME_LIMIT_SECONDS) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._time_limit = time_limit
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def analyze(
        self, data: bytes, largest_only: bool = False, quality_filter: str = "NONE", max_faces: int = MAX_FACES
    ) -> analysis.Analysis:
        for attempt in (1, 2):
            executor = self._pool()
            future = executor.submit(_analyze_in_worker, data, largest_only, quality_filter, max_faces)
            try:
                return future.result(timeout=self._time_limit)
            except FutureTimeout:
                self._restart(executor)
                raise ImageTooComplex(
                    f"Analysing this photo took over {self._time_limit:g} s, the limit: send a smaller photo."
                ) from None
            except BrokenProcessPool:
                # Another request's runaway photo got the workers killed: retry once.
                self._restart(executor)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the workers, letting a photo being analysed finish."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def _restart(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        # ProcessPoolExecutor.kill_workers() arrives in Python 3.14; until then
        # its process table is the only handle on the workers.
        for process in list(executor._processes.values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


# In each worker process.

_models: analysis.Models | None = None


def _start_worker(parent: int) -> None:
    global _models
    # Ctrl-C in a terminal reaches the whole process group: the server
    # decides when its workers stop, not the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-parent", daemon=True).start()
    _models = analysis.load_models()


def _exit_with(parent: int) -> None:
    while _alive(parent):
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def _alive(parent: int) -> bool:
    """Is `parent` still this process's parent? An orphan is adopted by
    another process (init or a subreaper), so its parent id changes."""
    if os.getppid() != parent:
        return False
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _analyze_in_worker(data: bytes, largest_only: bool, quality_filter: str, max_faces: int) -> analysis.Analysis:
    return analysis.analyze(_models, data, largest_only, quality_filter, max_faces)
