"""The analysis worker processes of the embedded engine: their pool, the
time limit, the restart after a runaway photo, and their end.

dlib's shape predictor and face chips hold the GIL, and its objects are not
documented as thread-safe, so processes are what lets 2 cores serve 2
requests, and a worker that runs past the time limit can be killed without
touching the server.

One worker per core, each computing on one thread: an import keeps every
core busy with a photo of its own, and a second thread in a worker would
only compete with the other workers for the same cores (oversubscription:
the machine slower for all). So each worker sets it explicitly: its
onnxruntime sessions (YuNet, dlib's ResNet) run on one thread, without an
inter-op pool (descriptor_net.session), and threadpoolctl limits every BLAS
and OpenMP library loaded in it (numpy's OpenBLAS; faiss's OpenMP, when the
server's modules bring it in) to one thread. A lone search on an idle
machine forgoes the second core, which would save it a few milliseconds.

The workers end with the server, however it ends:
- A stop (SIGINT, SIGTERM: wiring.stop_on_signals; or an exit, by `close`,
  which wiring.py registers): `close` stops them within STOP_GRACE_SECONDS,
  however many photos wait their turn. Photos not started are abandoned
  (workers_stopped), the ones being analysed may finish meanwhile, then
  every worker left is killed: a worker holds nothing to save, and killing
  it spares the server's stop the teardown of its interpreter and models.
- Anything else (SIGKILL, a crash): each worker watches its parent, and
  exits within PARENT_POLL_SECONDS of it being gone. PR_SET_PDEATHSIG cannot
  do this: it fires when the *thread* that started the worker ends, and the
  pool starts from a request thread that ends after its request.
"""

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from threadpoolctl import threadpool_limits

from chalicelib.core.errors import ImageTooComplex
from chalicelib.core.limits import MAX_FACES, TIME_LIMIT_SECONDS
from chalicelib.embedded import analysis

PARENT_POLL_SECONDS = 0.5
# When the workers are stopped, what the photos being analysed have to finish
# (a few times what one photo takes on a loaded machine, far below the limit).
STOP_GRACE_SECONDS = 3.0


def workers_stopped() -> SystemExit:
    """What an analysis raises when the workers were stopped (the process is
    ending) before it ended. What its caller was doing is abandoned as a
    crash would leave it: a photo being indexed stays pending, for a new
    upload or `check --repair` to complete. A SystemExit, not an Exception:
    no use case records it as the photo's failure, and the request's thread
    ends quietly (threading ignores SystemExit itself, not its subclasses),
    without a reply, as it would a moment later with the process."""
    return SystemExit("the analysis workers were stopped")


class FaceAnalyzer:
    """Runs analysis.analyze in a pool of worker processes, one per core by
    default, each with its own dlib models, started on first use."""

    def __init__(self, workers: int | None = None, time_limit: float = TIME_LIMIT_SECONDS) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._time_limit = time_limit
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._stopped = False  # for good: no analysis starts after it
        self._unfinished: set[Future] = set()

    def analyze(
        self,
        data: bytes,
        largest_only: bool = False,
        quality_filter: str = "NONE",
        max_faces: int = MAX_FACES,
        searching: bool = False,
    ) -> analysis.Analysis:
        """analysis.analyze in a worker (its arguments mean the same)."""
        for attempt in (1, 2):
            executor, future = self._submit(data, largest_only, quality_filter, max_faces, searching)
            try:
                return future.result(timeout=self._time_limit)
            except FutureTimeout:
                self._restart(executor)
                raise ImageTooComplex(
                    f"Analysing this photo took over {self._time_limit:g} s, the limit: send a smaller photo."
                ) from None
            except (BrokenProcessPool, CancelledError):
                if self._stopped:
                    raise workers_stopped() from None
                # Another request's runaway photo got the workers killed: retry once.
                self._restart(executor)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stop_accepting(self) -> None:
        """From now on, every analysis asked for ends with workers_stopped.
        Safe in a signal handler: it takes no lock."""
        self._stopped = True

    def close(self, grace: float = STOP_GRACE_SECONDS) -> dict[str, int]:
        """Stop the workers, for good, within about `grace` seconds: the
        analyses not started end at once with workers_stopped, the photos
        being analysed have `grace` seconds to finish, then every worker
        left is killed. Returns how many analyses finished meanwhile and
        how many were abandoned."""
        self.stop_accepting()
        with self._lock:
            executor, self._executor = self._executor, None
            unfinished = self._unfinished.copy()
        if executor is None:
            return {"finished": 0, "abandoned": 0}
        workers = list(executor._processes.values())  # before shutdown() forgets them
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        for future in unfinished:
            # Not concurrent.futures.wait(), which takes a cancelled future for done only once
            # the pool has noticed, and this one no longer looks.
            with contextlib.suppress(CancelledError, FutureTimeout):
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
        finished = sum(1 for future in unfinished if future.done() and not future.cancelled())
        for process in workers:
            process.kill()
        executor.shutdown(wait=True)  # its manager thread sees them gone at once
        return {"finished": finished, "abandoned": len(unfinished) - finished}

    def _submit(self, *args) -> tuple[ProcessPoolExecutor, Future]:
        """Hand a photo to the pool: a new one if a restart replaced it."""
        for attempt in (1, 2):
            executor = self._pool()
            try:
                future = executor.submit(_analyze_in_worker, *args)
            except BrokenProcessPool:  # a worker died since (a restart killed it)
                self._restart(executor)
                if attempt == 2:
                    raise
                continue
            except RuntimeError as e:  # shut down: by close(), by the interpreter's exit, or by a restart
                with self._lock:
                    replaced = self._executor is not executor
                if self._stopped or not replaced:
                    raise workers_stopped() from e
                if attempt == 2:
                    raise
                continue
            self._unfinished.add(future)
            # Not under self._lock: the pool runs it holding a lock of its own
            # that submit() takes. set.discard is atomic.
            future.add_done_callback(self._unfinished.discard)
            return executor, future
        raise AssertionError("unreachable")

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._stopped:
                raise workers_stopped()
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
        for process in list((executor._processes or {}).values()):
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
    threadpool_limits(1)  # every BLAS and OpenMP library loaded: one thread (the module's docstring)
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


def _analyze_in_worker(
    data: bytes, largest_only: bool, quality_filter: str, max_faces: int, searching: bool
) -> analysis.Analysis:
    return analysis.analyze(_models, data, largest_only, quality_filter, max_faces, searching)


def threads_in_worker() -> dict:
    """How many threads each thread pool of this worker may use (the tests ask a worker)."""
    from threadpoolctl import threadpool_info

    sessions = {"yunet": _models.detector.session, "descriptors": _models.descriptors.session}
    return {
        "libraries": {info["internal_api"]: info["num_threads"] for info in threadpool_info()},
        "onnxruntime": {
            name: (s.get_session_options().intra_op_num_threads, s.get_session_options().inter_op_num_threads)
            for name, s in sessions.items()
        },
    }
