"""Deterministic simulation of what is deployed, in the spirit of
FoundationDB's simulator and TigerBeetle's VOPR: the project's own code
runs over the in-memory fakes on one thread, each process a greenlet that
stops before every port call; a scheduler seeded by one number decides
which goes on next, how time passes, and what each call meets.

On AWS (two schedules in three) it is the deployed path: API uploads
record photos pending; the bucket (as strict as S3: chalicelib/ops/memory.py)
notifies each change at least once, in seconds or minutes, sometimes twice;
the notifications go to a model of the SQS queue (receives counted, the
visibility timeout, delays, a message received more than MAX_RECEIVES
times moved to the dead-letter queue, counts that lag a minute); Lambda's
event source hands batches to index_queue.handle_batch in invocations
with the worker's timeout, deleting a batch whose invocation returned; the
scheduled re-drive (index_queue.redrive_lost, its empty-queue rule) runs
every minute, the daily check (maintenance.sweep) now and then. Beside
them: puts, delete markers, deletes by version id and undeletes straight
into the bucket, DELETE /images, `reindex` and `repair` from a laptop, and
people's requests. Offline (one in three), `make run`'s server: an upload
indexes at once, its re-drive runs every minute, and a crash kills the
whole server, which starts again (its re-drive's first round at once).

Faults come from a budget (most schedules have none or one): a call
throttled, failing, timing out after it took effect, the process killed
before or after it, a crash between DynamoDB's two commit writes, a lost
notification, a Lambda's timeout, an outage of Rekognition for minutes,
IndexFaces failing a few times in a row on one photo. A photo whose
indexing always fails (`poison`) or kills its process (`killer`) is no
fault of the service.

Once every planned operation has ended, faults stop and the world settles
(notifications delivered, the queue drained, the re-drive run minute after
minute until nothing is pending). Then, before any repair: where no fault
struck, every invariant holds and `check` finds nothing; where one did,
each invariant that fails is one that `check` reports (the daily check's
work), and none of the promises (a request acknowledged, a photo indexed
by a run that ended well) is broken. Then the daily check runs, the world
settles again, and every invariant must hold. A failure names its seed,
which replays it exactly, and the trace of its steps.

    Simulation(seed).run()          # raises Counterexample with the trace
"""

import heapq
import itertools
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import quote_plus

from greenlet import greenlet

from chalicelib.core import index_queue, indexing, library, people, records
from chalicelib.core.errors import FaceprintError, ServiceUnavailable, Throttled
from chalicelib.core.ports import IndexQueue, QueueDepth, QueuedMessage
from chalicelib.core.records import FAILED, FINAL, INDEXED, NO_FACES
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, people_in, photo_of

KEYS = ("a.png", "b.png", "c.png")
FACES = ("ann", "bob")  # who may be in a photo
PEOPLE = ("p1", "p2")  # person ids
NAMES = ("Ann", "Bob", "Cy")
POISON = "poison"  # IndexFaces on it always fails (the service answers, the photo is at fault)
KILLER = "killer"  # IndexFaces on it kills the process every time (out of memory, say)
# How long each process may run (.chalice/config.json; API Gateway's 29 s for a request).
API_TIMEOUT = 30
WORKER_TIMEOUT = 300  # the queue worker's lambda_timeout (.chalice/config.json)
REDRIVE_TIMEOUT = 120
CHECK_TIMEOUT = 900
# What the protocol's grace relies on: nothing runs longer than Lambda's
# longest timeout. A command from a laptop is stopped here too (README).
CLI_TIMEOUT = records.RUN_GRACE_SECONDS - 60
VISIBILITY = 6 * WORKER_TIMEOUT  # the queue's visibility timeout (make aws-setup)
WORKERS = 2  # the event source's maximum concurrency, here
PLANNED_WITHIN = 900  # seconds: when the planned operations start
SETTLE_LIMIT = 3 * 24 * 3600  # a world still busy after this long never settles
MAX_STEPS = 40_000
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Crash(BaseException):
    """The process died here: no `except Exception` sees it."""


class Counterexample(AssertionError):
    pass


@dataclass
class Op:
    number: int
    name: str
    body: Callable[[], object]
    kind: str  # upload, delete, bucket, people, worker, redrive, maintenance
    process: str = ""
    deadline: float | None = None  # the world's seconds when its timeout stops it
    speed: float = 1.0  # how often the scheduler lets it go on, relative to the others
    started: int = 0  # when it began and ended, in the order of every start and end
    ended: int | None = None
    outcome: str = ""
    result: object = None
    waiting: str = "start"
    glet: greenlet | None = None
    keys: set = field(default_factory=set)  # the photos it is about (what a fault is charged to)
    info: dict = field(default_factory=dict)


@dataclass(order=True)
class _Timer:
    at: float
    order: int
    label: str = field(compare=False)
    action: Callable[[], None] = field(compare=False)


@dataclass(frozen=True)
class Problem:
    """An invariant that does not hold: about a photo's key, a face or a
    person (`subject`, and the people it involves: `also`), which `check`
    may report about any of them; or a broken promise, which no `check`
    can see (`promise`)."""

    subject: str
    text: str
    promise: bool = False
    also: tuple = ()


class Simulation:
    def __init__(self, seed: int, operations: int | None = None, workdir: Path | None = None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.mode = self.rng.choice(["aws", "aws", "embedded"])
        self.budget = self.rng.choices([0, 1, 2, 3, 6], weights=[40, 30, 15, 10, 5])[0]
        self.fault_chance = self.rng.choice([0.02, 0.05, 0.1])
        self.operations = operations or self.rng.randint(5, 14)
        self.seconds = 0.0
        self.step = 0
        self._moments = itertools.count()  # starts and ends in the order they happen (many share a step)
        self.trace: list[str] = []
        self.timers: list[_Timer] = []
        self.live: list[Op] = []
        self.done: list[Op] = []
        self.faulting = True
        self.struck = False  # whether any fault struck in this schedule
        self.faults = 0  # how many
        # Whether one was a kill (a process dead mid-way, a Lambda's timeout),
        # a lost notification or a message dead-lettered: what only the daily
        # check repairs. Failed calls alone leave at most stray faces and
        # people's requests half done.
        self.hard = False
        self.charges: Counter = Counter()  # key -> faults that struck an operation about it
        self.outage_until = -1.0
        self.flaky: Counter = Counter()  # key -> IndexFaces calls on it that fail yet (a 5xx that passes)
        self.current: Op | None = None
        self.planned_left = 0
        self.incarnation = 1  # of the offline server
        self.ended_processes: set[str] = set()
        self.aborted_checks: list[str] = []  # daily checks stopped by one photo (issue 25's third defect)
        self._numbers = itertools.count(1)
        self._order = itertools.count()
        self._main = greenlet.getcurrent()
        self._workdir = workdir
        base = fake_services(index_on_upload=self.mode == "embedded")
        ids = random.Random(seed ^ 0x5EED)
        base.photos.new_id = base.engine.new_id = lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4))
        base.photos.clock = self.now
        base.records.between_commit_steps = self._between_commit_steps
        self.queue = SimQueue(self)
        self.raw = replace(base, queue=self.queue, clock=self.now)
        self.svc = replace(
            self.raw,
            engine=_Gated(self, "engine", base.engine),
            records=_Gated(self, "records", base.records),
            photos=_Gated(self, "photos", base.photos),
            people=_Gated(self, "people", base.people),
            queue=_Gated(self, "queue", self.queue),
        )
        self._processes = _Processes(self)

    # The world's clock.

    def now(self) -> str:
        return (_EPOCH + timedelta(seconds=self.seconds)).isoformat(timespec="milliseconds")

    def log(self, line: str) -> None:
        self.trace.append(f"{self.step:5d} {self.now()[11:23]} {line}")

    def at(self, seconds: float, label: str, action: Callable[[], None]) -> None:
        heapq.heappush(self.timers, _Timer(seconds, next(self._order), label, action))

    # Running.

    def run(self) -> "Simulation":
        saved, records.PROCESSES = records.PROCESSES, self._processes
        try:
            self._plan()
            self._loop(until=lambda: not self.planned_left and not self.live)
            self.faulting = False
            self.log("--- settling: no more faults")
            self._settle()
            self._check(before_repair=True)
            self._daily_checks()
            self._check(before_repair=False)
        except Counterexample:
            raise
        except Exception as e:
            raise self._counterexample(f"the simulation itself failed: {type(e).__name__}: {e}") from e
        finally:
            records.PROCESSES = saved
        return self

    def _loop(self, until: Callable[[], bool]) -> None:
        """Go on until `until()`: resume live processes, hand the queue's
        messages to workers, fire what is due, let time pass."""
        while not until():
            self.step += 1
            if self.step > MAX_STEPS:
                raise self._counterexample(f"still busy after {MAX_STEPS} steps")
            self._fire_due()
            pollable = self.mode == "aws" and self.queue.visible() and self._workers() < WORKERS
            choices = (["resume"] * 6 if self.live else []) + (["poll"] * 3 if pollable else [])
            if not choices:
                self._pass_time(self._next_moment())
                continue
            action = self.rng.choice([*choices, "time"])
            if action == "resume":
                self._resume(self.rng.choices(self.live, weights=[op.speed for op in self.live])[0])
            elif action == "poll":
                self._poll()
            else:
                self._pass_time(self.seconds + self.rng.expovariate(1 / 5))

    def _settle(self) -> None:
        """Faults off: deliver what is in flight, drain the queue, let the
        re-drive run minute after minute, until nothing is pending."""
        limit = self.seconds + SETTLE_LIMIT
        self._loop(until=lambda: self._quiet() or self.seconds > limit)
        if not self._quiet():
            raise self._counterexample("the world never settled: " + self._busy())

    def _quiet(self) -> bool:
        return (
            not self.live
            and not any(timer.label.startswith("S3 notifies") for timer in self.timers)
            and not self.queue.backlog_now()
            and not self.raw.records.list_pending(maintenance.FAR_FUTURE, 1)
        )

    def _busy(self) -> str:
        pending = self.raw.records.list_pending(maintenance.FAR_FUTURE, 10)
        return f"{len(self.live)} running, {self.queue.backlog_now()} queued, pending or owed: {pending}"

    def _next_moment(self) -> float:
        moments = [self.timers[0].at] if self.timers else []
        moments += [m for m in [self.queue.next_visible()] if m is not None]
        return max(self.seconds, min(moments)) if moments else self.seconds + 60

    def _pass_time(self, until: float) -> None:
        """Time passes, up to `until`; never past a live process's timeout,
        unless the budget spends a fault on it (the process is stopped)."""
        deadlines = [op.deadline for op in self.live if op.deadline is not None]
        if deadlines and until >= min(deadlines):
            if self._spend(0.1):
                for op in self.live:
                    if op.deadline is not None and op.deadline <= until:
                        op.info["timed out"] = True
                        self.hard = True
                        self.log(f"#{op.number} will be stopped by its timeout")
            else:
                until = min(until, min(deadlines) - 0.001)
        if until > self.seconds:
            self.seconds = until

    def _fire_due(self) -> None:
        while self.timers and self.timers[0].at <= self.seconds:
            timer = heapq.heappop(self.timers)
            timer.action()

    # Faults.

    def _spend(self, chance: float) -> bool:
        """Whether a fault strikes now, within the budget."""
        if not self.faulting or self.budget <= 0 or self.rng.random() >= chance:
            return False
        self.budget -= 1
        self.struck = True
        self.faults += 1
        return True

    def _fault(self, op: Op, call: str) -> str | None:
        if op.kind == "bucket" or not self._spend(self.fault_chance):
            return None
        if ":between" in call:
            return "crash"
        if self.mode == "embedded":
            return self.rng.choice(["error", "crash", "crash_after"] + (["flaky"] if "index_faces" in call else []))
        kinds = ["throttle", "error", "timeout_after", "crash", "crash_after"]
        if call.startswith("engine.index_faces"):
            kinds += ["outage", "flaky"]
        if call.startswith("queue."):
            kinds = ["error", "timeout_after", "crash"]
        return self.rng.choice(kinds)

    def _charge(self, op: Op) -> None:
        for key in op.keys:
            self.charges[key] += 1

    def _between_commit_steps(self) -> None:
        """DynamoDB's commit is two writes: a crash may come in between."""
        if self.current is not None and self._main.switch("records.commit_faces:between") == "crash":
            raise Crash()

    # Processes.

    def _begin(self, op: Op) -> Op:
        op.started = next(self._moments)
        op.speed = self.rng.choice([1.0, 1.0, 1.0, 0.3, 0.05])  # some are slow: overtaken for minutes
        if not op.process:
            op.process = self._process_for(op)
        op.info.setdefault("began", self.now())
        op.glet = greenlet(lambda _fault=None: self._body(op), parent=self._main)
        self.live.append(op)
        self.log(f"#{op.number} starts: {op.name}")
        self._resume(op)
        return op

    def _process_for(self, op: Op) -> str:
        if self.mode == "aws":
            return f"lambda:{op.number}:0"  # another machine: never known gone
        if op.kind == "maintenance" and not op.name.startswith("re-drive"):
            return f"sim:cli-{op.number}:0"  # `make reindex`, `make check-consistency`: a process of its own
        return f"sim:server-{self.incarnation}:0"

    def _body(self, op: Op) -> None:
        try:
            op.result = op.body()
            op.outcome = "ok"
        except Crash:
            op.outcome = "crashed"
        except FaceprintError as e:
            op.outcome = f"{type(e).__name__}: {e.message}"
        except Exception as e:  # what a client or Lambda would see as an error
            op.outcome = f"{type(e).__name__}: {e}"

    def _resume(self, op: Op, fault: str | None = None) -> None:
        self.current = op
        if fault is None and op.waiting != "start":
            if op.info.get("timed out"):
                self.log(f"#{op.number} ran past its timeout")
                fault = "crash"
            else:
                fault = self._fault(op, op.waiting)
        if op.waiting != "start":
            self.log(f"#{op.number} {op.waiting}" + (f": {fault}" if fault else ""))
        if fault:
            self._charge(op)
            op.info["faults"] = op.info.get("faults", 0) + 1
            self.hard = self.hard or fault in ("crash", "crash_after")
        self.seconds += self.rng.random() * 0.05  # each call takes a little time
        call = op.glet.switch(fault)
        self.current = None
        if op.glet.dead:
            self._ended(op)
            if op.outcome == "crashed" and self.mode == "embedded" and op.process.startswith("sim:server"):
                self._restart_server()
        else:
            op.waiting = call

    def _ended(self, op: Op) -> None:
        op.ended = next(self._moments)
        self.live.remove(op)
        self.done.append(op)
        self.log(f"#{op.number} ends: {op.outcome}")
        if op.process.startswith("sim:cli"):
            self.ended_processes.add(op.process)
        if op.kind == "redrive" and self.mode == "embedded" and op.outcome == "ok" and not self.faulting:
            self._nothing_waited_for(op)
        if op.kind == "worker" and op.outcome == "ok":  # Lambda's event source deletes the batch
            self.queue.delete([message.receipt for message in op.info["messages"]])
        elif _may_pass(op.outcome) and op.kind in ("upload", "delete", "people") and self.rng.random() < 0.5:
            again = Op(next(self._numbers), op.name + " (again)", op.body, op.kind, keys=set(op.keys), info=op.info)
            again.deadline = None if op.deadline is None else self.seconds + API_TIMEOUT
            self._begin(again)

    def _nothing_waited_for(self, op: Op) -> None:
        """Offline every process is on this machine: once the server's
        re-drive has run, no photo waits for an attempt that is over (its
        process dead, or the server's own attempt ended, whatever its mark
        says), as issue 25's seventh defect had `make run` wait 15 minutes."""
        since = records.iso_before(self.now(), records.RUN_GRACE_SECONDS)
        for key in self.raw.records.list_pending(maintenance.FAR_FUTURE, 50):
            image = self.raw.records.get_image(key)
            marks = image.get("running", []) if image["status"] == "pending" else []
            if any(mark > op.info["began"] for mark in marks):
                continue  # an attempt begun after the re-drive looked: the next one sees it
            if marks and image.get("retryAt", "") > self.now() and not any(self._may_run(m, since) for m in marks):
                raise self._counterexample(
                    f"after the re-drive #{op.number}, {key} waits until {image['retryAt'][11:19]} "
                    f"for attempts that are over: {marks}"
                )

    def _may_run(self, mark: str, since: str) -> bool:
        """What the server would know of a mark (attempt_may_run, from inside it)."""
        where = mark.split("#")[1]
        if mark <= since or where in self.ended_processes:
            return False
        if where == f"sim:server-{self.incarnation}:0":
            return self._processes.under_way(mark)
        return True

    def _restart_server(self) -> None:
        """Offline a crash is the server's: every request and run in it dies
        with it; `make run` again starts a new one, whose re-drive runs at once."""
        dead = f"sim:server-{self.incarnation}:0"
        self.log("the server died: started again")
        for op in [op for op in self.live if op.process == dead]:
            self.current = op
            op.glet.throw(Crash())
            self.current = None
            self._ended(op)
            self._charge(op)
        self.ended_processes.add(dead)
        self.incarnation += 1
        self._redrive_tick(recurring=False)

    def _gate(self, call: str) -> str | None:
        """Called by a process before each port call: the scheduler decides
        when it goes on, and what fault the call meets."""
        if self.current is None:
            return None
        return self._main.switch(call)

    def _workers(self) -> int:
        return sum(op.kind == "worker" for op in self.live)

    def _daily_checks(self) -> None:
        """The daily check, once every attempt that may still run is surely
        over, day after day until one goes through (one may stop on a photo
        that fails, as a crash or an error stops it: issue 25's third
        defect); then the world settles again."""
        later = self.seconds + records.RUN_GRACE_SECONDS + 60
        self._loop(until=lambda: self.seconds >= later and self._quiet())
        for day in range(1, 9):
            self.log(f"--- the daily check (day {day})")
            body = lambda: maintenance.sweep(self.svc)  # noqa: E731
            op = self._begin(Op(next(self._numbers), "daily check", body, "maintenance"))
            op.deadline = self.seconds + CHECK_TIMEOUT
            self._loop(until=lambda: op.ended is not None)  # noqa: B023
            self._settle()
            if op.outcome == "ok":
                return
            self.aborted_checks.append(op.outcome)
        raise self._counterexample(f"the daily check never went through: {self.aborted_checks}")

    # What is deployed: the queue's workers, the re-drive, the daily check.

    def _poll(self) -> None:
        """Lambda's event source: a batch of visible messages, one invocation."""
        messages = self.queue.receive(self.rng.choice([1, 1, 2, 3, 10]))
        if not messages:
            return
        keys = {event.key for message in messages for event in _decode(message.body)}
        op = Op(next(self._numbers), f"worker {sorted(keys)} x{len(messages)}", lambda: None, "worker")
        op.deadline = self.seconds + WORKER_TIMEOUT
        op.keys, op.info["messages"] = keys, messages
        seed = self.rng.getrandbits(32)
        op.body = lambda: index_queue.handle_batch(
            self.svc, messages, lambda: max(0.0, op.deadline - self.seconds), random.Random(seed)
        )
        self._begin(op)

    def _redrive_tick(self, recurring: bool = True) -> None:
        """Every minute: on AWS the scheduled re-drive (sent to the queue once
        it is empty); offline the server's own (indexing at once)."""
        if recurring:
            self.at(self.seconds + index_queue.REDRIVE_EVERY_SECONDS, "re-drive", self._redrive_tick)
        if any(op.name.startswith("re-drive") for op in self.live):
            return
        if self.mode == "aws":
            body = lambda: index_queue.redrive_lost(self.svc)  # noqa: E731
            self._begin(Op(next(self._numbers), "re-drive (scheduled)", body, "redrive", deadline=self.seconds + 120))
            return

        def server_redrive() -> None:
            while indexing.redrive_pending(self.svc)["pending"] == indexing.REDRIVE_BATCH:
                pass

        self._begin(Op(next(self._numbers), "re-drive (the server's)", server_redrive, "redrive"))

    def _notify(self) -> None:
        """S3's notifications of the bucket's changes: to the queue, at least
        once (sometimes twice), in seconds or minutes; one may be lost (a fault)."""
        bucket = self.raw.photos
        changes, bucket.events[:] = list(bucket.events), []
        if self.mode != "aws":
            return
        for change in changes:
            name = f"{change['eventName']} {change['key']} {change['versionId'][:6]}"
            if self._spend(0.05):
                self.charges[change["key"]] += 1
                self.log(f"S3 loses {name}")
                self.hard = True
                continue
            body = json.dumps(_s3_event(change))
            for copy in range(2 if self.rng.random() < 0.1 else 1):
                delay = 0.5 + self.rng.expovariate(1 / 2)
                roll = self.rng.random()
                if roll < 0.08:
                    delay += self.rng.uniform(10, 120)
                elif roll < 0.09:
                    delay += self.rng.uniform(120, 900)
                self.log(f"S3 will notify {name}" + (" (again)" if copy else "") + f" in {delay:.0f} s")
                self.at(self.seconds + delay, f"S3 notifies {name}", partial(self.queue.send, [body]))

    # The plan: what users do, when.

    def _plan(self) -> None:
        self.planned_left = self.operations
        burst = self.rng.uniform(0, PLANNED_WITHIN)
        for _ in range(self.operations):
            start = burst + self.rng.uniform(0, 20) if self.rng.random() < 0.4 else self.rng.uniform(0, PLANNED_WITHIN)
            self.at(start, "planned", self._start_planned)
        self.at(self.rng.uniform(0, 60), "re-drive", self._redrive_tick)
        if self.mode == "aws" and self.rng.random() < 0.3:
            self.at(self.rng.uniform(0, PLANNED_WITHIN), "daily check", self._daily_check)

    def _daily_check(self) -> None:
        body = lambda: maintenance.sweep(self.svc)  # noqa: E731
        self._begin(Op(next(self._numbers), "daily check", body, "maintenance", deadline=self.seconds + CHECK_TIMEOUT))

    def _start_planned(self) -> None:
        self.planned_left -= 1
        op = self._plan_one()
        if op.deadline is not None:
            op.deadline += self.seconds
        self._begin(op)

    def _plan_one(self) -> Op:
        rng = self.rng
        number = next(self._numbers)
        key = rng.choice(KEYS)
        aws = self.mode == "aws"
        api = API_TIMEOUT if aws else None
        weights = {
            "upload": 10,
            "put": 2 if aws else 0,
            "delete": 3,
            "marker": 2 if aws else 0,
            "unversion": 2 if aws else 0,
            "undelete": 2 if aws else 0,
            "rm": 1 if aws else 0,
            "reindex": 1,
            "repair": 1,
            "person": 2,
            "unperson": 2,
            "associate": 4,
            "disassociate": 3,
        }
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        if kind in ("upload", "put"):
            faces = rng.choice([(), ("ann",), ("bob",), ("ann",), ("ann", "bob"), (POISON,)] * 2 + [(KILLER,)])
            data = photo_of(*faces, shade=rng.choice([0, 0, 1]))
            metadata = {}
            if rng.random() < 0.7:
                metadata["name"] = rng.choice(NAMES)
            if rng.random() < 0.35:
                metadata[people.PERSON_METADATA] = rng.choice(PEOPLE)
            info = {"key": key, "metadata": metadata, "person": metadata.get("person")}
            label = f"{kind} {key} {list(faces)} {metadata}"
            if kind == "upload":
                body = lambda: indexing.upload_image(self.svc, key, data, metadata)  # noqa: E731
                name = f"PUT /images/{key} {list(faces)} {metadata}"
                return Op(number, name, body, "upload", keys={key}, deadline=api, info=info)
            body = lambda: self.svc.photos.put(key, data, "image/png", metadata)  # noqa: E731
            return Op(number, label + " into the bucket", body, "bucket", keys={key}, info={**info, "changes": key})
        if kind == "delete":
            body = lambda: library.delete_image(self.svc, key)  # noqa: E731
            return Op(number, f"DELETE /images/{key}", body, "delete", keys={key}, deadline=api, info={"key": key})
        if kind in ("marker", "unversion", "undelete", "rm"):
            return self._bucket_tool(number, kind, key)
        if kind == "reindex":
            path = (self._workdir or Path("/tmp")) / f"reindex-{self.seed}-{number}.json"
            body = lambda: maintenance.reindex(self.svc, path)  # noqa: E731
            return Op(number, "reindex", body, "maintenance", deadline=CLI_TIMEOUT)
        if kind == "repair":
            body = lambda: maintenance.repair(self.svc, maintenance.check(self.svc))  # noqa: E731
            return Op(number, "check and repair", body, "maintenance", deadline=CLI_TIMEOUT)
        return self._people_op(number, kind, api)

    def _bucket_tool(self, number: int, kind: str, key: str) -> Op:
        """S3's own tools on the bucket (the console, `aws s3`)."""
        photos = self.svc.photos

        def unversion() -> None:
            head = photos.head(key)
            if head is not None:
                photos.delete_version(key, head.version_id)

        bodies = {
            "marker": (f"`aws s3 rm` {key} (a delete marker)", lambda: photos.delete_current(key), "delete"),
            "unversion": (f"delete {key}'s current version by its id", unversion, "upload"),
            "undelete": (f"undelete {key}", lambda: photos.undelete(key), "upload"),
            "rm": (f"delete every version of {key}", lambda: photos.delete(key), "delete"),
        }
        name, body, changes = bodies[kind]
        return Op(number, name, body, "bucket", keys={key}, info={"key": key, "changes": changes})

    def _people_op(self, number: int, kind: str, api: float | None) -> Op:
        rng = self.rng
        person = rng.choice(PEOPLE)
        if kind == "person":
            name = rng.choice(NAMES)
            body = lambda: people.put_person(self.svc, person, name)  # noqa: E731
            return Op(number, f"PUT /people/{person}", body, "people", deadline=api, info={"creates": person})
        if kind == "unperson":
            body = lambda: people.delete_person(self.svc, person)  # noqa: E731
            return Op(number, f"DELETE /people/{person}", body, "people", deadline=api, info={"deletes": person})
        faces = self._some_faces(person if kind == "disassociate" else None)
        if kind == "associate":
            faces = self._free_faces() or faces

            def name_and_give() -> dict:  # the console's "This is...": the person first, if new
                if self.svc.records.get_person(person) is None:
                    people.put_person(self.svc, person, person.upper())
                return people.associate_faces(self.svc, person, faces or ["none"], 75.0)

            info = {"associates": person, "creates": person, "faces": faces}
            return Op(number, f"POST /people/{person}/faces {faces}", name_and_give, "people", deadline=api, info=info)
        face = faces[0] if faces else "none"
        body = lambda: people.disassociate_face(self.svc, person, face)  # noqa: E731
        info = {"disassociates": person, "faces": [face]}
        return Op(number, f"DELETE /people/{person}/faces/{face}", body, "people", deadline=api, info=info)

    def _free_faces(self) -> list[str]:
        """A face of no one, if any."""
        free = sorted(i for i, face in self.raw.records.faces.items() if not face.get("UserId"))
        return [self.rng.choice(free)] if free else []

    def _some_faces(self, owner: str | None = None) -> list[str]:
        """A face or two (of `owner`, most of the time, when they have any)."""
        ids = sorted(self.raw.records.faces)
        theirs = [i for i in ids if owner and self.raw.records.faces[i].get("UserId") == owner]
        if theirs and self.rng.random() < 0.8:
            ids = theirs
        return self.rng.sample(ids, min(len(ids), self.rng.randint(1, 2))) if ids else []

    # The invariants.

    def _check(self, before_repair: bool) -> None:
        found = self._problems()
        disagreements = maintenance.check(self.raw)
        if before_repair and self.struck:
            if not self.hard:  # failed calls alone never leave a record naming faces the collection lacks
                stored = {key for key in KEYS if self.raw.photos.head(key) is not None}
                hard_only = (maintenance.RECORD_WITHOUT_FACE, maintenance.FACE_NOT_LISTED)
                disagreements = [d for d in disagreements if d.kind not in hard_only or d.key not in stored]
            seen = {value for d in disagreements for value in (d.key, d.face_id, d.person_id) if value}
            found = [p for p in found if p.promise or not {p.subject, *p.also} & seen]
            disagreements = []  # what the daily check is for
        lines = [problem.text for problem in found]
        if disagreements:
            lines.append("check: " + "; ".join(map(str, disagreements)))
        if lines:
            when = "before any repair" if before_repair else "after the daily check"
            why = "" if not before_repair or not self.struck else " (that `check` cannot see)"
            raise self._counterexample(f"{when}{why}:\n  " + "\n  ".join(lines))

    def _problems(self) -> list[Problem]:
        raw = self.raw
        problems: list[Problem] = []
        collection = set(raw.engine.faces)
        recorded: set[str] = set()
        for key in KEYS:
            head = raw.photos.head(key)
            image = raw.records.get_image(key)
            if head is None:
                if image is not None:
                    problems.append(Problem(key, f"{key}: a record outlives its photo: {image['status']}"))
                    recorded |= {face["FaceId"] for face in raw.records.faces_of(key)}  # theirs is that problem
                continue
            if image is None:
                problems.append(Problem(key, f"{key}: a stored photo has no record"))
                continue
            faces = raw.records.faces_of(key)
            recorded |= {face["FaceId"] for face in faces}
            found = self._photo_problems(head, image, faces, collection)
            problems += [Problem(key, f"{key}: {text}") for text in found]
            problems += self._failed_without_cause(key, head, image)
        if collection - recorded:
            problems += [Problem(i, f"collection face {i[:8]}: no record names it") for i in collection - recorded]
        problems += [Problem(i, f"face record {i[:8]}: no image lists it") for i in set(raw.records.faces) - recorded]
        return problems + self._check_people(recorded)

    def _photo_problems(self, head, image: dict, faces: list[dict], collection: set[str]) -> list[str]:
        problems = []
        data = self.raw.photos.read(head.key)
        who = people_in(data)
        if image["status"] not in FINAL:
            problems.append(f"still {image['status']} once settled")
        if image["etag"] != head.etag:
            problems.append("the record is of other bytes than the stored photo")
        if image["metadata"] != head.metadata:
            problems.append(f"metadata {image['metadata']} is not the stored version's {head.metadata}")
        if (POISON in who or KILLER in who) and image["status"] != FAILED:
            problems.append(f"a photo whose every attempt fails is {image['status']}, not failed")
        elif image["status"] in (INDEXED, NO_FACES):
            if len(faces) != len(who) or image["faceCount"] != len(who):
                problems.append(f"{len(faces)} face records, faceCount {image['faceCount']}, the photo has {len(who)}")
            missing = {face["FaceId"] for face in faces} - collection
            if missing:
                problems.append(f"face records not in the collection: {sorted(missing)}")
        elif image["status"] == FAILED and (faces or not image.get("error")):
            problems.append(f"failed with {len(faces)} faces, reason {image.get('error')!r}")
        if image.get("owed"):
            problems.append(f"work still owed once settled: {image['owed']}")
        return problems

    def _failed_without_cause(self, key: str, head, image: dict) -> list[Problem]:
        """A photo ends `failed` for its own sake (it fails while others
        succeed), or after faults struck its attempts again and again; never
        when a run indexed its version and went on to the end unharmed."""
        if image["status"] != FAILED or image["etag"] != head.etag:
            return []  # not failed, or the record of another version (that problem is check's)
        if {POISON, KILLER} & set(people_in(self.raw.photos.read(key))):
            return []
        version = (key, head.version_id)
        indexed_by = [
            op
            for op in self.done
            if op.outcome == "ok" and op.info.get("indexed", {}).get(version) == op.info.get("faults", 0)
        ]
        if indexed_by:
            text = f"{key}: failed ({image.get('error')}), though #{indexed_by[0].number} indexed it and ended well"
            return [Problem(key, text, promise=True)]
        if self.charges[key] < 2:
            text = f"{key}: failed ({image.get('error')}) after {self.charges[key]} fault(s)"
            return [Problem(key, text, promise=True)]
        return []

    def _check_people(self, recorded: set[str]) -> list[Problem]:
        raw, problems = self.raw, []
        live = {p["personId"] for p in maintenance._all(raw.records.list_people)}
        engine_owner = {i: u for i, u in raw.people.owners_of.items() if i in raw.engine.faces}
        for face_id in recorded:
            owner = raw.records.get_face(face_id).get("UserId")
            if owner is not None and owner not in live:
                text = f"face {face_id[:8]} belongs to {owner!r}, who is not a person"
                problems.append(Problem(face_id, text, also=(owner,)))
            if owner != engine_owner.get(face_id):
                text = f"face {face_id[:8]}: records say {owner!r}, the collection {engine_owner.get(face_id)!r}"
                problems.append(Problem(face_id, text, also=tuple(filter(None, (owner, engine_owner.get(face_id))))))
        for user in set(raw.people.users) - live:
            problems.append(Problem(user, f"the collection's user {user!r} is no person"))
        for person in live - set(raw.people.users):
            problems.append(Problem(person, f"the person {person!r} has no user in the collection"))
        for person in live:
            counted = raw.records.get_person(person)["faceCount"]
            theirs = [f for f in recorded if raw.records.get_face(f).get("UserId") == person]
            if counted != len(theirs):
                problems.append(Problem(person, f"{person}: faceCount {counted}, faces {len(theirs)}"))
        return problems + self._check_model(live)

    def _check_model(self, live: set[str]) -> list[Problem]:
        """What acknowledged requests promise and nothing later undid: a
        person deleted stays deleted unless made again; a face given to or
        taken from a person stays so (through a reindex too). About a face
        or a person: once a fault struck, `check` may see it first."""
        problems = self._check_enrolments(live)
        for op in self.done:
            if op.outcome != "ok":
                continue
            person = op.info.get("deletes")
            if person in live and not self._later(op, partial(_creates, person)):
                problems.append(Problem(person, f"{person!r} was deleted by #{op.number} and came back"))
            for face in (
                op.result.get("associatedFaces", [])
                if op.info.get("associates") and isinstance(op.result, dict)
                else []
            ):
                self._expect_owner(op, face["FaceId"], op.info["associates"], problems)
            if op.info.get("disassociates") and isinstance(op.result, dict):
                for face in op.result.get("disassociatedFaces", []):
                    self._expect_owner(op, face["FaceId"], None, problems, not_owner=op.info["disassociates"])
        return problems

    def _check_enrolments(self, live: set[str]) -> list[Problem]:
        """A face enrolled by upload stays its person's (through a reindex
        too) unless one of their faces was taken from them or given, they
        were deleted (and made again since), or a request gave the face
        itself to someone (a face a reindex made, before its person was
        carried over to it)."""
        problems = []
        people_ops = [op for op in self.done + self.live if op.kind == "people"]
        touched = {
            op.info.get("disassociates") or op.info.get("associates") or op.info.get("deletes") for op in people_ops
        }
        asked = {face for op in people_ops for face in op.info.get("faces") or []}
        for key in KEYS:
            image = self.raw.records.get_image(key)
            enrolment = (image or {}).get("enrolment", {})
            person = enrolment.get("personId")
            if enrolment.get("status") != "associated" or person not in live or person in touched:
                continue
            faces = self.raw.records.faces_of(key)
            owners = [face.get("UserId") for face in faces]
            if asked & {face["FaceId"] for face in faces}:
                continue
            if owners != [person]:
                text = f"{key}: enrolled as {person!r}, its faces now belong to {owners}"
                problems += [Problem(face["FaceId"], text, also=(person,)) for face in faces] or [Problem(key, text)]
        return problems

    def _expect_owner(
        self, op: Op, face_id: str, owner: str | None, problems: list[Problem], not_owner: str | None = None
    ) -> None:
        slot = op.info.setdefault("slots", {}).get(face_id)
        if slot is None:
            return
        key, etag, box = slot
        person = owner or not_owner

        def undoes(other: Op) -> bool:
            """What may rightly change whose this face is: a new photo (or
            none) at the key, the person's deletion, another request about
            the person's faces, or one about the face in the same place of
            the photo (a reindex's new face given to someone else). Not a
            reindex, a repair or the re-drive."""
            info = other.info
            return (
                (info.get("key") == key and (other.kind in ("upload", "delete") or "changes" in info))
                or info.get("deletes") == person
                or person in (info.get("associates"), info.get("disassociates"))
                or (other.kind == "people" and slot in info.get("slots", {}).values())
            )

        if self._later(op, undoes):
            return
        image = self.raw.records.get_image(key)
        if image is None or image.get("facesEtag", image["etag"]) != etag:
            return
        now = [f for f in self.raw.records.faces_of(key) if f["BoundingBox"] == box]
        holder = now[0].get("UserId") if now else None
        subject = now[0]["FaceId"] if now else key
        if owner is not None and holder != owner:
            text = f"#{op.number} gave a face of {key} to {owner!r}; it now belongs to {holder!r}"
            problems.append(Problem(subject, text, also=tuple(filter(None, (owner, holder)))))
        if not_owner is not None and holder == not_owner:
            text = f"#{op.number} took a face of {key} from {not_owner!r}; it is theirs again"
            problems.append(Problem(subject, text, also=(not_owner,)))

    def _later(self, op: Op, matches: Callable[[Op], bool]) -> bool:
        """Whether an operation that may undo `op` overlapped it or came after."""
        return any(
            matches(other)
            for other in self.done + self.live
            if other is not op and (other.ended is None or other.ended > op.started)
        )

    def _counterexample(self, problem: str) -> Counterexample:
        tail = "\n".join(self.trace[-400:])
        return Counterexample(
            f"seed {self.seed} ({self.mode}, {'faults struck' if self.struck else 'no fault'}): {problem}\n"
            f"replay: make explore SEED={self.seed} SCHEDULES=1\ntrace:\n{tail}"
        )


class SimQueue(IndexQueue):
    """SQS's standard queue as the indexing queue uses it: a message sent
    (maybe delayed) is received by one worker at a time, invisible for the
    visibility timeout (or what the worker sets), each receive counted; a
    message received MAX_RECEIVES times goes to the dead-letter queue at
    its next receive; only the latest receipt handle deletes it or changes
    its visibility; the counts may lag up to a minute."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self._messages: dict[int, dict] = {}
        self._ids = itertools.count(1)
        self.dead: list[str] = []
        self._counts: list[tuple[float, QueueDepth]] = [(float("-inf"), QueueDepth())]  # (when, depth) at each change

    def send(self, bodies: list[str], delay_seconds: int = 0) -> None:
        for body in bodies:
            number = next(self._ids)
            visible = self._sim.seconds + max(0, min(delay_seconds, 900))
            self._messages[number] = {"body": body, "visible": visible, "receives": 0, "receipt": None}
        self._counted()

    def receive(self, most: int) -> list[QueuedMessage]:
        now = self._sim.seconds
        visible = [number for number, m in self._messages.items() if m["visible"] <= now]
        chosen = self._sim.rng.sample(visible, min(most, len(visible)))
        received = []
        for number in sorted(chosen):
            message = self._messages[number]
            message["receives"] += 1
            if message["receives"] > index_queue.MAX_RECEIVES:
                self.dead.append(self._messages.pop(number)["body"])
                self._sim.hard = True
                self._sim.log(f"message {number} moved to the dead-letter queue")
                continue
            message["receipt"] = f"{number}.{message['receives']}"
            message["visible"] = now + VISIBILITY
            received.append(QueuedMessage(message["body"], message["receipt"], message["receives"]))
        self._counted()
        return received

    def delete(self, receipts: list[str]) -> None:
        for receipt in receipts:
            number = int(receipt.split(".")[0])
            if self._messages.get(number, {}).get("receipt") == receipt:
                del self._messages[number]
        self._counted()

    def retry_after(self, receipts: list[str], seconds: int) -> None:
        for receipt in receipts:
            message = self._messages.get(int(receipt.split(".")[0]))
            if message is not None and message["receipt"] == receipt:
                message["visible"] = self._sim.seconds + seconds

    def depth(self) -> QueueDepth:
        """ApproximateNumberOf*: as they stood up to a minute ago."""
        then = self._sim.seconds - self._sim.rng.uniform(0, 60)
        return [depth for when, depth in self._counts if when <= then][-1]

    def backlog_now(self) -> int:
        return len(self._messages)

    def visible(self) -> bool:
        return any(m["visible"] <= self._sim.seconds for m in self._messages.values())

    def next_visible(self) -> float | None:
        return min((m["visible"] for m in self._messages.values()), default=None)

    def _counted(self) -> None:
        now, waiting, in_flight, delayed = self._sim.seconds, 0, 0, 0
        for message in self._messages.values():
            if message["visible"] <= now:
                waiting += 1
            elif message["receipt"] is not None:
                in_flight += 1
            else:
                delayed += 1
        self._counts.append((now, QueueDepth(waiting, in_flight, delayed)))


class _Processes(records.Processes):
    """Who runs a call, as attempt marks name it: on AWS a Lambda (another
    machine: never known gone); offline the server (one incarnation after
    another) or a command of its own."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__()
        self._sim = sim

    def this(self) -> str:
        op = self._sim.current
        return op.process if op is not None else "sim:main:0"

    def gone(self, where: str) -> bool:
        return where in self._sim.ended_processes

    def under_way(self, mark: str) -> bool:
        with self._lock:
            return mark in self._under_way


def _s3_event(change: dict) -> dict:
    """The notification S3 sends for one change of the bucket."""
    stored = {name: value for name, value in change.items() if name not in ("eventName", "key")}
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": change["eventName"],
                "s3": {"bucket": {"name": "sim"}, "object": {"key": quote_plus(change["key"]), **stored}},
            }
        ]
    }


def _decode(body: str) -> list[index_queue.PhotoEvent]:
    try:
        return index_queue.decode(body)
    except ValueError:
        return []


def _brief(args: tuple) -> str:
    """The call's first argument, short, for the trace."""
    if not args:
        return ""
    first = args[0]
    if isinstance(first, dict):
        return f"{first.get('key', '')} {first.get('status', '')}"
    if isinstance(first, list) and first and isinstance(first[0], str) and first[0].startswith("{"):
        return f"{len(first)} message(s)"
    return str(getattr(first, "key", first))[:40]


def _may_pass(outcome: str) -> bool:
    """Whether a client would try the request again: it died, or the reply
    says the service failed (5xx), not that the request was wrong (4xx)."""
    return outcome == "crashed" or outcome.startswith(("ServiceUnavailable", "Throttled", "TimeoutError"))


def _creates(person: str, op: Op) -> bool:
    """Whether `op` may make `person`: PUT /people, or an upload naming them."""
    return person in (op.info.get("creates"), op.info.get("person"))


class _Gated:
    """A port whose every call first waits for the scheduler, then meets the
    fault it decides: throttled or failing before taking effect, timed out
    after it (the effect stands, the caller never hears), the process
    killed before or after it; or, on IndexFaces, an outage of minutes."""

    def __init__(self, sim: Simulation, port: str, target) -> None:
        self._sim, self._port, self._target = sim, port, target

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        sim, call = self._sim, f"{self._port}.{name}"

        def gated(*args, **kwargs):
            fault = sim._gate(f"{call}({_brief(args)})")
            op = sim.current
            if op is not None and args and isinstance(getattr(args[0], "key", None), str):
                op.keys.add(args[0].key)
            if fault == "outage":
                sim.outage_until = sim.seconds + sim.rng.uniform(120, 900)
                sim.log(f"Rekognition fails every call until {sim.now()[11:19]}+{sim.outage_until - sim.seconds:.0f} s")
            if fault == "flaky":
                sim.flaky[args[0].key] = sim.rng.randint(2, 6)
                sim.log(f"IndexFaces fails the next {sim.flaky[args[0].key]} calls on {args[0].key}")
            if call == "engine.index_faces":
                _index_faces_fate(sim, op, args[0])
            if fault == "throttle":
                raise Throttled(f"{call} was throttled (simulated)")
            if fault == "error":
                raise ServiceUnavailable(f"{call} failed (simulated)")
            if fault == "crash":
                raise Crash()
            result = attr(*args, **kwargs)
            _observe(sim, call, args, result)
            if fault == "timeout_after":
                raise TimeoutError(f"{call} timed out after taking effect (simulated)")
            if fault == "crash_after":
                raise Crash()
            return result

        return gated


def _index_faces_fate(sim: Simulation, op: Op | None, version) -> None:
    """What IndexFaces meets whatever the budget: the photo's own failure
    (poison), the process killed by it (killer), a Rekognition outage."""
    try:
        who = people_in(sim.raw.photos.read_version(version))
    except Exception:  # a version that is gone: the real call says so
        return
    if KILLER in who:
        sim.struck = sim.hard = True  # a process killed: what it was doing is left as a crash leaves it
        sim.faults += 1
        if op is not None:
            sim._charge(op)
        raise Crash()
    if POISON in who:
        raise ServiceUnavailable("IndexFaces cannot take this photo (simulated: it fails every time)")
    if sim.seconds < sim.outage_until and sim.faulting:
        if op is not None:
            sim._charge(op)
        raise ServiceUnavailable("Rekognition answered 500 (simulated outage)")
    if sim.flaky[version.key] > 0 and sim.faulting:
        sim.flaky[version.key] -= 1
        if op is not None:
            sim._charge(op)
        raise ServiceUnavailable(f"IndexFaces answered 500 on {version.key} (simulated)")


def _observe(sim: Simulation, call: str, args: tuple, result) -> None:
    """What the world learns from a call: the bucket notifies its changes;
    a run indexed a version; the model notes which photo slot a person's
    face is."""
    if call.startswith("photos."):
        sim._notify()
    elif call == "engine.index_faces" and sim.current is not None:
        # which version it indexed, and how many faults had struck it then (one after: no promise)
        indexed = sim.current.info.setdefault("indexed", {})
        indexed[(args[0].key, args[0].version_id)] = sim.current.info.get("faults", 0)
    elif call in ("records.associate_faces", "records.disassociate_faces") and sim.current is not None:
        slots = sim.current.info.setdefault("slots", {})
        for face_id in args[1]:
            face = sim.raw.records.faces.get(face_id)
            image = sim.raw.records.images.get(face["imageKey"]) if face else None
            if image is not None:
                slots[face_id] = (image["key"], image.get("facesEtag", image["etag"]), face["BoundingBox"])
