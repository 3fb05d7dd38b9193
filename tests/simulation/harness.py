"""Deterministic simulation of indexing and people, in the spirit of
FoundationDB's simulator and TigerBeetle's VOPR: the real use cases run over
the in-memory fakes on one thread, each operation a greenlet that stops
before every port call; a scheduler seeded by one number decides which
operation goes on next and what each call does (succeed, throttle, time out
before or after taking effect, crash before or after), when S3 events come
(late, twice, shuffled, never), when Lambda retries, when the re-drive,
`reindex` and `repair` run, and how time passes. Once the schedule is over
the world settles (faults stop, events are delivered, live operations end,
the re-drive and the scheduled check run until quiet) and the invariants
are checked. A failure names its seed, which replays it exactly, and the
trace of its steps.

    Simulation(seed).run()          # raises Counterexample with the trace
"""

import copy
import itertools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from greenlet import greenlet

from chalicelib.core import indexing, library, people
from chalicelib.core.errors import FaceprintError, Throttled
from chalicelib.core.ports import PhotoVersion
from chalicelib.core.records import FINAL, INDEXED, NO_FACES, RUN_GRACE_SECONDS, normalize_sequencer
from chalicelib.ops import maintenance
from tests.support.fakes import fake_services, people_in, photo_of

KEYS = ("a.png", "b.png", "c.png")
FACES = ("ann", "bob")  # who may be in a photo
PEOPLE = ("p1", "p2")  # person ids
NAMES = ("Ann", "Bob", "Cy")
# A photo whose indexing kills the process every time (a Lambda that times
# out on it): its attempts must run out and end it `failed`, never pending.
POISON = "poison"
FAULTS = ("throttle", "timeout", "timeout_after", "crash", "crash_after")
LAMBDA_TRIES = 3  # an asynchronous invocation and Lambda's two retries
MAX_STEPS = 3000
# No operation lives longer than Lambda's longest timeout (what the protocol's
# RUN_GRACE_SECONDS relies on): one that would is stopped at its next call.
TIMEOUT_SECONDS = 14 * 60
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Crash(BaseException):
    """The process (a Lambda) died here: no `except Exception` sees it."""


class Counterexample(AssertionError):
    pass


@dataclass
class Op:
    number: int
    name: str
    body: Callable[[], object]
    kind: str  # what the model needs to know: upload, delete, associate, ...
    started: int = 0
    ended: int | None = None
    outcome: str = ""
    result: object = None
    waiting: str = "start"
    born: float = 0.0  # the world's seconds when it started
    glet: greenlet | None = None
    info: dict = field(default_factory=dict)


@dataclass
class Event:
    name: str  # ObjectCreated or ObjectRemoved
    key: str
    version: PhotoVersion | None
    tries: int = 0


class Simulation:
    def __init__(
        self, seed: int, operations: int | None = None, fault_rate: float | None = None, workdir: Path | None = None
    ):
        self.seed = seed
        self.rng = random.Random(seed)
        self.mode = self.rng.choice(["aws", "aws", "embedded"])
        self.fault_rate = fault_rate if fault_rate is not None else self.rng.choice([0.0, 0.03, 0.08, 0.15])
        self.operations = operations or self.rng.randint(6, 18)
        self.seconds = 0.0
        self.step = 0
        self.trace: list[str] = []
        self.events: list[Event] = []
        self.live: list[Op] = []
        self.done: list[Op] = []
        self.faulting = True
        self.crashed = False  # whether any call met a fault (or a poison photo) in this schedule
        self.current: Op | None = None
        self._numbers = itertools.count(1)
        self._main = greenlet.getcurrent()
        self._workdir = workdir
        base = fake_services(index_on_upload=self.mode == "embedded")
        self.raw = base
        base.photos.clock = self.now
        ids = random.Random(seed ^ 0x5EED)
        base.photos.new_id = base.engine.new_id = lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4))
        self.raw.records.between_commit_steps = self._between_commit_steps
        self.svc = replace(
            base,
            engine=_Gated(self, "engine", base.engine),
            records=_Gated(self, "records", base.records),
            photos=_Gated(self, "photos", base.photos),
            people=_Gated(self, "people", base.people),
            clock=self.now,
        )

    # The world's clock.

    def now(self) -> str:
        return (_EPOCH + timedelta(seconds=self.seconds)).isoformat(timespec="milliseconds")

    def log(self, line: str) -> None:
        self.trace.append(f"{self.step:5d} {self.now()[11:23]} {line}")

    # Running.

    def run(self) -> "Simulation":
        try:
            self._chaos()
            self._settle()
            self._check()
        except Counterexample:
            raise
        except Exception as e:
            raise self._counterexample(f"the simulation itself failed: {type(e).__name__}: {e}") from e
        return self

    def _chaos(self) -> None:
        planned = self.operations
        while (planned or self.live or self.events) and self.step < MAX_STEPS:
            self.step += 1
            self.seconds += self.rng.random() * 2
            choices = []
            if planned:
                choices += ["start"] * 2
            if self.live:
                choices += ["resume"] * 6
            if self.events:
                choices += ["event"] * 2
            choices += ["time"]
            action = self.rng.choice(choices)
            if action == "start":
                planned -= 1
                self._begin(self._plan_one())
            elif action == "resume":
                self._resume(self.rng.choice(self.live))
            elif action == "event":
                self._deliver(self.events.pop(self.rng.randrange(len(self.events))))
            else:
                self.seconds += self.rng.choice([30, 120, 400, 1000])
                self.log(f"time passes: {self.now()}")

    def _settle(self) -> None:
        self.faulting = False
        self.log("--- settling: no more faults")
        for round_ in range(12):
            while self.live or self.events:
                self.step += 1
                if self.live:
                    self._resume(self.live[0])
                else:
                    self._deliver(self.events.pop(0))
            self.seconds += RUN_GRACE_SECONDS + indexing.REDRIVE_AFTER_SECONDS + 1
            before = self._fingerprint()
            for _ in range(50):
                redriven = self._run_now("redrive", lambda: indexing.redrive_pending(self.svc))
                if not redriven["pending"]:
                    break
            if round_ == 0 and not self.crashed:
                self._nothing_to_repair()
            self._run_now("scheduled check", lambda: maintenance.sweep(self.svc))
            if self._fingerprint() == before and not self.events:
                return

    def _nothing_to_repair(self) -> None:
        """Where no call failed, the protocol itself leaves nothing behind:
        no stray face, no record to fix; the scheduled check has no work."""
        found = maintenance.check(self.raw)
        if found:
            raise self._counterexample(
                "with no fault, the re-drive settled and still left: " + "; ".join(map(str, found))
            )

    def _run_now(self, name: str, body: Callable[[], object]) -> object:
        op = Op(next(self._numbers), name, body, "maintenance")
        self._begin(op)
        while op.ended is None:
            self.step += 1
            self._resume(op)
        if op.outcome == "crashed":  # a poison photo killed it: the attempt it began counts
            return {"pending": 1}
        if op.outcome != "ok":
            raise self._counterexample(f"{name} failed while settling: {op.outcome}")
        return op.result

    # Operations.

    def _begin(self, op: Op) -> None:
        op.started = self.step
        op.born = self.seconds
        op.glet = greenlet(lambda _fault=None: self._body(op), parent=self._main)
        self.live.append(op)
        self.log(f"#{op.number} starts: {op.name}")
        self._resume(op)

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
            fault = self._fault(op.waiting)
            if self.seconds - op.born > TIMEOUT_SECONDS:  # Lambda (or the CLI's run) is stopped by its timeout
                fault = "crash"
                self.log(f"#{op.number} ran past its {TIMEOUT_SECONDS} s timeout")
        if op.waiting != "start":
            self.log(f"#{op.number} {op.waiting}" + (f": {fault}" if fault else ""))
        if fault:
            self.crashed = True
        call = op.glet.switch(fault)
        self.current = None
        if op.glet.dead:
            op.ended = self.step
            self.live.remove(op)
            self.done.append(op)
            self.log(f"#{op.number} ends: {op.outcome}")
            self._after(op)
        else:
            op.waiting = call

    def _gate(self, call: str) -> str | None:
        """Called by an operation before each port call: the scheduler
        decides when it goes on, and what fault the call meets."""
        if self.current is None:
            return None
        return self._main.switch(call)

    def _between_commit_steps(self) -> None:
        """DynamoDB's commit is two writes: a crash may come in between."""
        if self._gate("records.commit_faces:between") == "crash":
            raise Crash()

    def _fault(self, call: str) -> str | None:
        if not self.faulting or self.rng.random() >= self.fault_rate:
            return None
        if ":between" in call:
            return "crash"
        return self.rng.choice(FAULTS)

    def _after(self, op: Op) -> None:
        """What follows an operation: Lambda retries a failed event; a client
        may try a failed request again."""
        if op.kind == "event":
            event = op.info["event"]
            if op.outcome != "ok" and event.tries < LAMBDA_TRIES:
                self.events.append(event)
            elif op.outcome != "ok":
                self.log(f"event dropped after {event.tries} tries: {event.name} {event.key}")
        elif op.outcome not in ("ok", "") and op.kind in ("upload", "delete", "people") and self.rng.random() < 0.5:
            self._begin(Op(next(self._numbers), op.name + " (again)", op.body, op.kind, info=op.info))

    def _deliver(self, event: Event) -> None:
        event.tries += 1
        if event.name == "ObjectCreated":
            body = lambda: indexing.index_photo(self.svc, event.key, event.version)  # noqa: E731
        else:
            body = lambda: indexing.remove_photo(self.svc, event.key)  # noqa: E731
        version = f" {event.version.sequencer[-4:]}" if event.version else ""
        self._begin(
            Op(
                next(self._numbers),
                f"{event.name} {event.key}{version} (try {event.tries})",
                body,
                "event",
                info={"event": event},
            )
        )

    def stored(self, name: str, key: str, version: PhotoVersion | None) -> None:
        """S3's notification of a put or a delete: at least once, late, maybe never."""
        if self.mode != "aws":
            return
        roll = self.rng.random()
        copies = 0 if roll < 0.05 else 2 if roll < 0.2 else 1
        self.crashed = self.crashed or copies == 0  # a lost event is a fault: only the scheduled check finds it
        for _ in range(copies):
            self.events.append(Event(name, key, version))
        if copies != 1:
            self.log(f"S3 sends {copies} {name} event(s) for {key}")

    def _plan_one(self) -> Op:
        rng = self.rng
        number = next(self._numbers)
        key = rng.choice(KEYS)
        kind = rng.choices(
            [
                "upload",
                "put",
                "delete",
                "unstore",
                "redrive",
                "reindex",
                "repair",
                "person",
                "unperson",
                "associate",
                "disassociate",
            ],
            weights=[10, 2, 3, 1, 2, 2, 1, 2, 2, 4, 3] if self.mode == "aws" else [10, 0, 3, 0, 2, 2, 1, 2, 2, 4, 3],
        )[0]
        if kind in ("upload", "put"):
            faces = rng.choice([(), ("ann",), ("bob",), ("ann",), ("ann", "bob"), (POISON,)])
            data = photo_of(*faces, shade=rng.choice([0, 0, 1]))
            metadata = {}
            if rng.random() < 0.7:
                metadata["name"] = rng.choice(NAMES)
            if rng.random() < 0.35:
                metadata[people.PERSON_METADATA] = rng.choice(PEOPLE)
            label = f"{kind} {key} {list(faces)} {metadata}"
            if kind == "upload":
                body = lambda: indexing.upload_image(self.svc, key, data, metadata)  # noqa: E731
                return Op(
                    number,
                    label,
                    body,
                    "upload",
                    info={"key": key, "metadata": metadata, "person": metadata.get("person")},
                )
            return Op(
                number,
                label,
                lambda: self.svc.photos.put(key, data, "image/png", metadata),
                "upload",
                info={"key": key, "person": metadata.get("person")},
            )
        if kind == "delete":
            return Op(
                number,
                f"DELETE /images/{key}",
                lambda: library.delete_image(self.svc, key),
                "delete",
                info={"key": key},
            )
        if kind == "unstore":
            return Op(
                number,
                f"delete {key} from the bucket",
                lambda: self.svc.photos.delete(key),
                "delete",
                info={"key": key},
            )
        if kind == "redrive":
            return Op(number, "re-drive", lambda: indexing.redrive_pending(self.svc), "maintenance")
        if kind == "reindex":
            path = (self._workdir or Path("/tmp")) / f"reindex-{self.seed}-{number}.json"
            return Op(number, "reindex", lambda: maintenance.reindex(self.svc, path), "maintenance")
        if kind == "repair":
            return Op(
                number,
                "check and repair",
                lambda: maintenance.repair(self.svc, maintenance.check(self.svc)),
                "maintenance",
            )
        person = rng.choice(PEOPLE)
        if kind == "person":
            name = rng.choice(NAMES)
            return Op(
                number,
                f"PUT /people/{person}",
                lambda: people.put_person(self.svc, person, name),
                "people",
                info={"creates": person},
            )
        if kind == "unperson":
            return Op(
                number,
                f"DELETE /people/{person}",
                lambda: people.delete_person(self.svc, person),
                "people",
                info={"deletes": person},
            )
        faces = self._some_faces(person if kind == "disassociate" else None)
        if kind == "associate":
            faces = self._free_faces() or faces

            def name_and_give() -> dict:  # the console's "This is...": the person first, if new
                if self.svc.records.get_person(person) is None:
                    people.put_person(self.svc, person, person.upper())
                return people.associate_faces(self.svc, person, faces or ["none"], 75.0)

            return Op(
                number,
                f"POST /people/{person}/faces {faces}",
                name_and_give,
                "people",
                info={"associates": person, "creates": person, "faces": faces},
            )
        face = faces[0] if faces else "none"
        return Op(
            number,
            f"DELETE /people/{person}/faces/{face}",
            lambda: people.disassociate_face(self.svc, person, face),
            "people",
            info={"disassociates": person, "faces": [face]},
        )

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

    # After settling: the invariants.

    def _check(self) -> None:
        raw = self.raw
        problems = []
        collection = set(raw.engine.faces)
        recorded: set[str] = set()
        for key in KEYS:
            head = raw.photos.head(key)
            image = raw.records.get_image(key)
            if head is None:
                if image is not None:
                    problems.append(f"{key}: a record outlives its photo: {image['status']}")
                continue
            if image is None:
                problems.append(f"{key}: a stored photo has no record")
                continue
            faces = raw.records.faces_of(key)
            recorded |= {face["FaceId"] for face in faces}
            if image["status"] not in FINAL:
                problems.append(f"{key}: still {image['status']} once settled")
            if image["etag"] != head.etag:
                problems.append(f"{key}: the record is of other bytes than the stored photo")
            if image["metadata"] != head.metadata:
                problems.append(f"{key}: metadata {image['metadata']} is not the stored version's {head.metadata}")
            expected = len(people_in(raw.photos.read(key)))
            if POISON in people_in(raw.photos.read(key)) and image["status"] != "failed":
                problems.append(f"{key}: a photo that kills every attempt is {image['status']}, not failed")
            elif image["status"] in (INDEXED, NO_FACES):
                if len(faces) != expected or image["faceCount"] != expected:
                    problems.append(
                        f"{key}: {len(faces)} face records, faceCount {image['faceCount']}, the photo has {expected}"
                    )
                missing = {face["FaceId"] for face in faces} - collection
                if missing:
                    problems.append(f"{key}: face records not in the collection: {sorted(missing)}")
            elif image["status"] == "failed" and (faces or not image.get("error")):
                problems.append(f"{key}: failed with {len(faces)} faces, reason {image.get('error')!r}")
            if image.get("owed"):
                problems.append(f"{key}: work still owed once settled: {image['owed']}")
        if collection - recorded:
            problems.append(f"collection faces no record names: {sorted(collection - recorded)}")
        unlisted = set(raw.records.faces) - recorded
        if unlisted:
            problems.append(f"face records no image lists: {sorted(unlisted)}")
        problems += self._check_people(recorded)
        disagreements = maintenance.check(raw)
        if disagreements:
            problems.append("check: " + "; ".join(map(str, disagreements)))
        if problems:
            raise self._counterexample("\n  ".join(problems))

    def _check_people(self, recorded: set[str]) -> list[str]:
        raw, problems = self.raw, []
        live = {p["personId"] for p in maintenance._all(raw.records.list_people)}
        engine_owner = {i: u for i, u in raw.people.owners_of.items() if i in raw.engine.faces}
        for face_id in recorded:
            owner = raw.records.get_face(face_id).get("UserId")
            if owner is not None and owner not in live:
                problems.append(f"face {face_id[:8]} belongs to {owner!r}, who is not a person")
            if owner != engine_owner.get(face_id):
                problems.append(
                    f"face {face_id[:8]}: records say {owner!r}, the collection {engine_owner.get(face_id)!r}"
                )
        if set(raw.people.users) != live:
            problems.append(f"the collection's users {sorted(raw.people.users)} are not the people {sorted(live)}")
        for person in live:
            counted = raw.records.get_person(person)["faceCount"]
            theirs = [f for f in recorded if raw.records.get_face(f).get("UserId") == person]
            if counted != len(theirs):
                problems.append(f"{person}: faceCount {counted}, faces {len(theirs)}")
        problems += self._check_model(live)
        return problems

    def _check_model(self, live: set[str]) -> list[str]:
        """What acknowledged requests promise and nothing later undid: a
        person deleted stays deleted unless made again; a face given to or
        taken from a person stays so (through a reindex too)."""
        problems = self._check_enrolments(live)
        for op in self.done:
            if op.outcome != "ok":
                continue
            person = op.info.get("deletes")
            if person in live and not self._later(op, partial(_creates, person)):
                problems.append(f"{person!r} was deleted by #{op.number} and came back")
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

    def _check_enrolments(self, live: set[str]) -> list[str]:
        """A face enrolled by upload stays its person's (through a reindex
        too) unless one of their faces was taken from them or given."""
        problems = []
        touched = {
            op.info.get("disassociates") or op.info.get("associates")
            for op in self.done + self.live
            if op.kind == "people"
        }
        for key in KEYS:
            image = self.raw.records.get_image(key)
            enrolment = (image or {}).get("enrolment", {})
            person = enrolment.get("personId")
            if enrolment.get("status") != "associated" or person not in live or person in touched:
                continue
            owners = [face.get("UserId") for face in self.raw.records.faces_of(key)]
            if owners != [person]:
                problems.append(f"{key}: enrolled as {person!r}, its faces now belong to {owners}")
        return problems

    def _expect_owner(
        self, op: Op, face_id: str, owner: str | None, problems: list[str], not_owner: str | None = None
    ) -> None:
        slot = op.info.setdefault("slots", {}).get(face_id)
        if slot is None:
            return
        key, etag, box = slot
        person = owner or not_owner

        def undoes(other: Op) -> bool:
            """What may rightly change whose this face is: a new photo (or
            none) at the key, the person's deletion, another request about
            the person's faces. Not a reindex, a repair or the re-drive."""
            info = other.info
            return (
                (info.get("key") == key and other.kind in ("upload", "delete"))
                or info.get("deletes") == person
                or person in (info.get("associates"), info.get("disassociates"))
            )

        if self._later(op, undoes):
            return
        image = self.raw.records.get_image(key)
        if image is None or image.get("facesEtag", image["etag"]) != etag:
            return
        now = [f for f in self.raw.records.faces_of(key) if f["BoundingBox"] == box]
        holder = now[0].get("UserId") if now else None
        if owner is not None and holder != owner:
            problems.append(f"#{op.number} gave a face of {key} to {owner!r}; it now belongs to {holder!r}")
        if not_owner is not None and holder == not_owner:
            problems.append(f"#{op.number} took a face of {key} from {not_owner!r}; it is theirs again")

    def _later(self, op: Op, matches: Callable[[Op], bool]) -> bool:
        """Whether an operation that may undo `op` overlapped it or came after."""
        return any(
            matches(other)
            for other in self.done + self.live
            if other is not op and (other.ended is None or other.ended > op.started)
        )

    def _fingerprint(self) -> tuple:
        raw = self.raw
        return (
            copy.deepcopy(raw.records.images),
            sorted(raw.records.faces),
            sorted(raw.engine.faces),
            sorted(raw.people.owners_of.items()),
            sorted(raw.people.users),
            sorted((k, str(v)) for k, v in raw.records.people.items()),
        )

    def _counterexample(self, problem: str) -> Counterexample:
        tail = "\n".join(self.trace[-400:])
        return Counterexample(
            f"seed {self.seed} ({self.mode}, fault rate {self.fault_rate}): {problem}\n"
            f"replay: make explore SEED={self.seed} SCHEDULES=1\ntrace:\n{tail}"
        )


def _brief(args: tuple) -> str:
    """The call's first argument, short, for the trace."""
    if not args:
        return ""
    first = args[0]
    if isinstance(first, dict):
        return f"{first.get('key', '')} {first.get('status', '')}"
    return str(getattr(first, "key", first))[:40]


def _creates(person: str, op: Op) -> bool:
    """Whether `op` may make `person`: PUT /people, or an upload naming them."""
    return person in (op.info.get("creates"), op.info.get("person"))


class _Gated:
    """A port whose every call first waits for the scheduler, then meets the
    fault it decides: throttled or timed out before taking effect, timed out
    after it (the effect stands, the caller never hears), or a crash before
    or after."""

    def __init__(self, sim: Simulation, port: str, target) -> None:
        self._sim, self._port, self._target = sim, port, target

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        sim, call = self._sim, f"{self._port}.{name}"

        def gated(*args, **kwargs):
            fault = sim._gate(f"{call}({_brief(args)})")
            if call == "engine.index_faces" and POISON in people_in(sim.raw.photos.read_version(args[0])):
                sim.crashed = True
                raise Crash()
            if fault == "throttle":
                raise Throttled(f"{call} was throttled (simulated)")
            if fault == "timeout":
                raise TimeoutError(f"{call} timed out (simulated)")
            if fault == "crash":
                raise Crash()
            result = attr(*args, **kwargs)
            sim._observe(call, args, result)
            if fault == "timeout_after":
                raise TimeoutError(f"{call} timed out after taking effect (simulated)")
            if fault == "crash_after":
                raise Crash()
            return result

        return gated


def _observe(self: Simulation, call: str, args: tuple, result) -> None:
    """What the world learns from a call: S3 notifies puts and deletes; the
    model notes which photo slot a person's face is."""
    if call == "photos.put":
        sequencer = normalize_sequencer(self.raw.photos.events[-1]["sequencer"])  # the event's: the reply has none
        self.stored("ObjectCreated", result.key, replace(result.version, sequencer=sequencer))
    elif call == "photos.delete":
        self.stored("ObjectRemoved", args[0], None)
    elif call in ("records.associate_faces", "records.disassociate_faces") and self.current is not None:
        slots = self.current.info.setdefault("slots", {})
        for face_id in args[1]:
            face = self.raw.records.faces.get(face_id)
            image = self.raw.records.images.get(face["imageKey"]) if face else None
            if image is not None:
                slots[face_id] = (image["key"], image.get("facesEtag", image["etag"]), face["BoundingBox"])


Simulation._observe = _observe
