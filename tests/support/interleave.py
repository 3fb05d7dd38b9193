"""Deterministic interleavings: runs side by side in threads, each stopping
at the calls a test names until the test lets it go on.

    steps = Steps()
    svc = steps.wrap(svc)                       # engine, records, people
    steps.pause("A", "index_faces")             # A stops right after IndexFaces
    a = steps.start("A", index_photo, svc, key, version)
    steps.reached("A", "index_faces")           # wait until it is there
    ...                                         # do other things meanwhile
    steps.release("A"); a.result()              # let it finish
"""

import threading
from concurrent.futures import Future
from dataclasses import replace

TIMEOUT = 60


class Steps:
    def __init__(self) -> None:
        self._pauses: dict[tuple[str, str], tuple[threading.Event, threading.Event]] = {}

    def wrap(self, svc):
        return replace(
            svc,
            engine=_Paused(self, svc.engine),
            records=_Paused(self, svc.records),
            photos=_Paused(self, svc.photos),
            people=_Paused(self, svc.people) if svc.people is not None else None,
        )

    def pause(self, run: str, method: str) -> None:
        """Run `run` stops right after its next call of `method` (once)."""
        self._pauses[(run, method)] = (threading.Event(), threading.Event())

    def reached(self, run: str, method: str) -> None:
        reached, _ = self._pauses[(run, method)]
        assert reached.wait(TIMEOUT), f"{run} never reached {method}"

    def release(self, run: str) -> None:
        for (name, _), (_, go) in self._pauses.items():
            if name == run:
                go.set()

    def start(self, run: str, function, *args, **kwargs) -> Future:
        future: Future = Future()

        def body():
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as e:
                future.set_exception(e)

        threading.Thread(target=body, name=run, daemon=True).start()
        return future

    def after_call(self, method: str) -> None:
        pause = self._pauses.get((threading.current_thread().name, method))
        if pause is None or pause[0].is_set():
            return
        reached, go = pause
        reached.set()
        assert go.wait(TIMEOUT), f"{threading.current_thread().name} was never released after {method}"


class _Paused:
    def __init__(self, steps: Steps, target) -> None:
        self._steps, self._target = steps, target

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            result = attr(*args, **kwargs)
            self._steps.after_call(name)
            return result

        return call
