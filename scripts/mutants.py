"""make mutants: how many single-point bugs in the indexing protocol the
tests kill (docs/internals.md, "How indexing stays right").

Each mutant below changes one thing in the protocol's code (core/indexing.py,
core/records.py, core/index_queue.py, the carry-over in core/people.py, the DELETE in core/library.py, the
SQLite and DynamoDB record stores). One at a time, in a copy of the tree
(never in the tree itself), it is put in and the fast tests run (`pytest -m
"not slow"`, stopping at the first failure): the protocol's own first
(tests/unit, tests/contract), then SCHEDULES schedules of the simulation
(`make explore`, from a fixed seed), then the rest. A mutant that fails any
of them is killed; the score is the share killed. A mutant that survives
must be killed by a new test, or argued equivalent here (`equivalent=`: why
no test can tell it from the real code), which leaves it out of the score.

    python scripts/mutants.py [--schedules 2000] [--only NAME ...] [--files PATH ...] [--reverse]
                              [--simulation-only] [--list]

The list is kept with the code: a mutant whose text is no longer in its file
(exactly once) stops the run, to be brought up to date."""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 7_000_000  # the simulation's schedules: the same ones for every mutant
# The fast tests, the protocol's own first (in this order: pytest runs a file named twice
# once): a mutant they kill need not wait for the rest.
FIRST_TESTS = [
    "tests/contract/test_versions_and_verdicts.py",
    "tests/contract/test_interleavings.py",
    "tests/unit",
    "tests/contract",
]
OTHER_TESTS = ["tests/adapters", "tests/ops", "tests/api", "tests/e2e"]
SCORE_NEEDED = 0.9


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    equivalent: str = ""  # why no test can tell it from the real code, if so


INDEXING, RECORDS, QUEUE = "chalicelib/core/indexing.py", "chalicelib/core/records.py", "chalicelib/core/index_queue.py"
SQLITE, DYNAMODB, PEOPLE = "chalicelib/embedded/records.py", "chalicelib/aws/dynamodb.py", "chalicelib/core/people.py"
LIBRARY = "chalicelib/core/library.py"

MUTANTS = [
    # The four issue 25 names. The sequencer compare itself is gone (it refused a
    # version made current again): versions are ordered by the bucket, read after
    # the record, through _superseded; its mutants stand for it.
    Mutant(
        "a run skipping the version compare (the sequencer compare's successor)",
        INDEXING,
        "        return photo.version_id != version.version_id",
        "        return False",
    ),
    Mutant(
        "a commit that finds the photo deleted and does not undo itself",
        INDEXING,
        "            if svc.photos.head(key) is None:  # a delete raced this run: it stands",
        "            if False:",
    ),
    Mutant(
        "record_failure overwriting a final outcome",
        INDEXING,
        "        if is_final_for(current, photo):\n            return current\n        if current is None or not same",
        "        if current is None or not same",
    ),
    Mutant(
        "the reindex carry-over trusting the records' owner over the collection's",
        PEOPLE,
        '        person_id = engine[old] if old in engine else carry[old].get("UserId")',
        '        person_id = carry[old].get("UserId") or engine.get(old)',
    ),
    # Issue 25's own: items 1, 2, 4, 5, 7 and the throttles.
    Mutant(
        "an upload writing its pending record without looking at the bucket (item 1)",
        INDEXING,
        "        if _superseded(head, photo.version):  # a later put of the key stands, with its own record",
        "        if False:",
    ),
    Mutant(
        "ObjectRemoved ignoring an older version made current again (item 2)",
        INDEXING,
        "            return index_photo(svc, key)\n        outcome = _forget",
        "            return current\n        outcome = _forget",
    ),
    Mutant(
        "a verdict written while another attempt may commit (item 4)",
        INDEXING,
        "    if _under_way(base, svc.clock(), mine=token):",
        "    if False:",
    ),
    Mutant(
        "a verdict whose write lost committing over the new record (item 4)",
        INDEXING,
        "        if decide_again:\n            return _AGAIN",
        "        if False:\n            return _AGAIN",
    ),
    Mutant(
        "a throttled commit counted as an attempt",
        INDEXING,
        "        if isinstance(e, Throttled):  # back-pressure of any service (a throttled commit): handed back too",
        "        if False:",
    ),
    Mutant(
        "a throttled IndexFaces counted as an attempt",
        INDEXING,
        "    except Throttled:\n        _end_attempt(svc, photo, claimed, token)",
        "    except Throttled:\n        _end_attempt(svc, photo, claimed, token, counted=True)",
    ),
    Mutant(
        "the re-drive waiting for attempts of processes that are gone (item 7)",
        INDEXING,
        "        if marks and not any(attempt_may_run(mark, since) for mark in marks):",
        "        if False:",
    ),
    Mutant(
        "a mark of a gone process taken for one that may run (items 5, 7)",
        RECORDS,
        "    return PROCESSES.may_run(mark, where)",
        "    return True",
    ),
    Mutant(
        "an attempt over in this process still taken for one under way",
        INDEXING,
        "        attempt_ended(token)  # whatever its mark on the record says: this process knows it is over",
        "        pass",
    ),
    Mutant(
        "a restore keeping the marks the backup caught (item 5)",
        SQLITE,
        '        record.pop("running")\n',
        '        record.get("running")\n',
    ),
    Mutant(
        "an attempt's end leaving its mark on the record",
        INDEXING,
        '        ended["running"] = _running(record, moment, mine=token)',
        '        ended["running"] = record.get("running")',
    ),
    Mutant(
        "an attempt's end giving up when another writer came first",
        INDEXING,
        "        record = svc.records.get_image(photo.key)\n    return None",
        "        break\n    return None",
    ),
    # The rest of the protocol (issue 14's and since).
    Mutant(
        "a run that lost keeping the faces it added",
        INDEXING,
        "            svc.engine.delete_faces(sorted(new_ids))\n            logs.log_indexed(key, base, started, "
        'outcome="lost")',
        '            logs.log_indexed(key, base, started, outcome="lost")',
    ),
    Mutant(
        "a duplicate run committing over the one that finished first",
        INDEXING,
        "    return is_final_for(latest, photo)",
        "    return False",
    ),
    Mutant(
        "a commit whose reply was lost taken for one that failed",
        INDEXING,
        '    return faces[0]["FaceId"] in {face["FaceId"] for face in svc.records.faces_of(key)}',
        "    return False",
    ),
    Mutant(
        "the attempts never running out",
        INDEXING,
        "    if before >= attempts:  # counted as they began: the last one crashed or failed",
        "    if False:",
    ),
    Mutant(
        "the last failed attempt not ending the version failed",
        INDEXING,
        "    if mine and attempt >= attempts:",
        "    if mine and attempt > attempts:",
    ),
    Mutant(
        "an attempt not counted before it starts",
        INDEXING,
        "    claim = _pending_record(svc, photo, current, attempts=before + 1,",
        "    claim = _pending_record(svc, photo, current, attempts=before,",
    ),
    Mutant(
        "a record of the same version forgetting its attempts",
        INDEXING,
        "        kept = {name: current[name] for name in _KEPT_FOR_THE_SAME_VERSION if current.get(name) is not None}",
        "        kept = {}",
    ),
    Mutant(
        "marks of attempts long over kept",
        INDEXING,
        "if entry != mine and attempt_may_run(entry, since)]",
        "if entry != mine]",
    ),
    Mutant(
        "a photo gone leaving its faces in the collection",
        INDEXING,
        "    svc.engine.delete_faces(list(dict.fromkeys(owed)))",
        "    pass",
    ),
    Mutant(
        "the same bytes again keeping the older metadata",
        INDEXING,
        '        "metadata": photo.metadata,\n        "versionId"',
        '        "metadata": current["metadata"],\n        "versionId"',
    ),
    Mutant(
        "a new version of the same bytes keeping the old one's enrolment",
        INDEXING,
        '        image.pop("enrolment", None)',
        "        pass",
    ),
    Mutant(
        "a reindex not carrying people over to the new faces",
        INDEXING,
        "    if _faces_etag(base) == photo.etag:\n        for old in listed:",
        "    if False:\n        for old in listed:",
    ),
    Mutant(
        "the replaced faces retired without their people",
        INDEXING,
        '        people.retire_faces(svc, owed["retire"], owed.get("carry", {}))',
        '        svc.engine.delete_faces(owed["retire"])',
    ),
    Mutant(
        "an enrolment owed struck off before it is done",
        INDEXING,
        '_without_none({**image, "owed": left if retire or enrol else None})',
        '_without_none({**image, "owed": left if retire else None})',
    ),
    Mutant(
        "an outcome dropping the enrolment recorded for its version",
        INDEXING,
        '    kept = {name: base[name] for name in ("uploadedAt", "enrolment") if base.get(name) is not None}',
        '    kept = {name: base[name] for name in ("uploadedAt",) if base.get(name) is not None}',
    ),
    Mutant(
        "a photo re-driven again and again never ending failed",
        INDEXING,
        "        if count >= MAX_REDRIVES:",
        "        if False:",
    ),
    Mutant(
        "`failed` final for any version of the same bytes",
        RECORDS,
        '    return record["status"] != FAILED or same_version(record, photo)',
        "    return True",
    ),
    Mutant(
        "versions told apart by their bytes alone",
        RECORDS,
        "        return version_id == photo.version_id",
        "        return etag == photo.etag",
    ),
    Mutant(
        "work owed after a commit never due to the re-drive",
        RECORDS,
        '    if record.get("owed"):\n        return record["owed"].get("since") or record["updatedAt"]',
        '    if False:\n        return record["owed"].get("since") or record["updatedAt"]',
    ),
    Mutant(
        "a record made again starting at the same revision",
        RECORDS,
        "    return first_revision() if expected is None else expected + 1",
        "    return 1 if expected is None else expected + 1",
    ),
    Mutant(
        "the queue's last receive not ending the photo failed",
        QUEUE,
        "    elif message.receive_count >= MAX_RECEIVES:",
        "    elif message.receive_count > MAX_RECEIVES:",
    ),
    Mutant(
        "a throttle counted as a receive's failure",
        QUEUE,
        "        except Throttled as e:",
        "        except KeyboardInterrupt as e:",
    ),
    Mutant(
        "a partly failed batch leaving its done messages to come again",
        QUEUE,
        "                svc.queue.delete([message.receipt])\n                batch.done += 1",
        "                batch.done += 1",
    ),
    Mutant(
        "ObjectRemoved ignored",
        QUEUE,
        "            indexing.remove_photo(svc, event.key)",
        "            pass",
    ),
    Mutant(
        "an event's version id dropped",
        QUEUE,
        '                version = PhotoVersion(key, stored.get("eTag", ""), stored.get("versionId"), sequencer)',
        '                version = PhotoVersion(key, stored.get("eTag", ""), None, sequencer)',
    ),
    Mutant(
        "SQLite: a compare-and-set that ignores the revision",
        SQLITE,
        '            if not self._at_revision(image["key"], expected_revision):\n'
        "                return None\n            return self._write_image",
        "            return self._write_image",
    ),
    Mutant(
        "SQLite: the re-drive's oldest not first",
        SQLITE,
        '            "ORDER BY pending_since LIMIT ?",',
        '            "ORDER BY key DESC LIMIT ?",',
    ),
    Mutant(
        "DynamoDB: a compare-and-set that takes any newer revision",
        DYNAMODB,
        '        "ConditionExpression": "#revision = :expected",',
        '        "ConditionExpression": "#revision >= :expected",',
    ),
    Mutant(
        "DynamoDB: a commit that lost leaving its face items",
        DYNAMODB,
        "        if old is None:\n            self._take_back(key, new_ids)",
        "        if False:\n            self._take_back(key, new_ids)",
    ),
    # Found by the simulation after the merges (issue 25's third round), each put back.
    Mutant(
        "a face given and taken at once left as the records' last write says",
        PEOPLE,
        "    follow_the_collection(svc, [face_id])\n    return",
        "    return",
    ),
    Mutant(
        "a delete that lost its pending write leaving the faces it took named",
        INDEXING,
        '        if svc.records.put_image(_pending_record(svc, photo, current, retry_in=0), current["revision"])'
        " is not None:\n            return\n",
        '        svc.records.put_image(_pending_record(svc, photo, current, retry_in=0), current["revision"])\n'
        "        return\n",
    ),
    Mutant(
        "a carry stopping at a face retired too (two reindexes of one photo)",
        PEOPLE,
        "        new = _last_stop(carry, carry[old])\n",
        "        new = carry[old]\n",
    ),
    Mutant(
        "a DELETE owing the re-drive no visit",
        LIBRARY,
        "        indexing.owe_a_visit(svc, image)\n",
        "        pass\n",
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=2000)
    parser.add_argument("--only", nargs="*", help="names (or parts of names) of the mutants to run")
    parser.add_argument("--files", nargs="*", help="only the mutants of these files (e.g. chalicelib/core/indexing.py)")
    parser.add_argument("--reverse", action="store_true", help="the last first (a second run meets the first halfway)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument(
        "--simulation-only", action="store_true", help="the schedules alone, no test: what the simulation itself sees"
    )
    args = parser.parse_args(argv)
    chosen = [
        m
        for m in MUTANTS
        if (not args.only or any(part in m.name for part in args.only)) and (not args.files or m.path in args.files)
    ]
    if args.reverse:
        chosen.reverse()
    stale = [m.name for m in MUTANTS if (ROOT / m.path).read_text().count(m.old) != 1]
    if stale:
        print("These mutants' text is no longer in their file exactly once; bring them up to date:")
        print("\n".join(f"  {name}" for name in stale))
        return 2
    if args.list:
        for number, m in enumerate(MUTANTS, 1):
            print(f"{number:2d}. {m.name} ({m.path})" + (" [argued equivalent]" if m.equivalent else ""))
        return 0
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="faceprint-mutants-") as scratch:
        tree = Path(scratch) / "tree"
        _copy_tree(tree)
        against = "" if args.simulation_only else "the fast tests and "
        print(f"{len(chosen)} mutants, each against {against}{args.schedules:,} schedules", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped: the score so far, and no tree left
        try:
            for number, mutant in enumerate(chosen, 1):
                began = time.monotonic()
                verdict = _run(tree, mutant, args.schedules, args.simulation_only) or "SURVIVED"
                results.append((mutant, verdict))
                print(f"{number:2d}. {verdict:<58.58} {time.monotonic() - began:6.0f} s  {mutant.name}", flush=True)
        except KeyboardInterrupt:
            print(f"\nstopped after {len(results)} of {len(chosen)} mutants", flush=True)
    return _report(results, time.monotonic() - started)


def _copy_tree(tree: Path) -> None:
    """The tracked files as they are now (uncommitted changes too)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)


def _run(tree: Path, mutant: Mutant, schedules: int, simulation_only: bool = False) -> str:
    path = tree / mutant.path
    original = path.read_text()
    path.write_text(original.replace(mutant.old, mutant.new, 1))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("FACEPRINT_FACES_DIR", str((ROOT / ".." / "shared" / "faces").resolve()))
    try:
        if simulation_only:
            return _explore(tree, env, schedules)
        return _tests(tree, env, FIRST_TESTS) or _explore(tree, env, schedules) or _tests(tree, env, OTHER_TESTS)
    finally:
        path.write_text(original)


def _tests(tree: Path, env: dict, paths: list[str]) -> str:
    """ "killed: <the first test that failed>", or "" when they all pass."""
    pytest = ["-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", "-p", "no:randomly", *paths]
    tests = _python(tree, env, pytest)
    if tests.returncode == 0:
        return ""
    failed = [line for line in tests.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return "killed: " + (failed[0].split("::", 1)[-1].split(" - ")[0] if failed else "the tests")


def _explore(tree: Path, env: dict, schedules: int) -> str:
    """ "killed: the simulation (seed ...)", or "" when every schedule is clean."""
    explore = ["-m", "tests.simulation.explore", "--schedules", str(schedules), "--seed", str(SEED)]
    explored = _python(tree, env, explore)
    if explored.returncode == 0:
        return ""
    first = explored.stderr.split(":", 1)[0] if explored.stderr else "a counterexample"
    return f"killed: the simulation ({first})"


def _python(tree: Path, env: dict, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True, text=True)


def _report(results: list, seconds: float) -> int:
    scored = [(m, verdict) for m, verdict in results if not m.equivalent]
    killed = sum(verdict.startswith("killed") for _, verdict in scored)
    survivors = [m for m, verdict in scored if not verdict.startswith("killed")]
    equivalent = [m for m, verdict in results if m.equivalent]
    score = killed / len(scored) if scored else 1.0
    print(
        f"\nmutation score: {killed} of {len(scored)} killed ({score:.0%}), "
        f"{len(equivalent)} argued equivalent and left out; {seconds / 60:.1f} min"
    )
    for m in survivors:
        print(f"  survived: {m.name} ({m.path})")
    for m in equivalent:
        print(f"  equivalent: {m.name}: {m.equivalent}")
    return 0 if score >= SCORE_NEEDED and not survivors else 1


if __name__ == "__main__":
    sys.exit(main())
