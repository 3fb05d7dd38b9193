"""The simulation as a test: many seeded schedules of what is deployed (the
API, the bucket's notifications through the queue to its workers, the
re-drive, the daily check, `make run`'s server, reindex, repair, people's
requests) over the in-memory fakes, with a budget of faults; each must
settle into a state where every invariant holds, before any repair where
no fault struck (tests/simulation/harness.py). `make explore SCHEDULES=N
SEED=S` runs as many as asked."""

import logging
import os

import pytest

from chalicelib.core import indexing, people
from tests.simulation.harness import Counterexample, Simulation

# The fast loop's share; `make test` runs the slow one too, from other seeds.
FAST_SCHEDULES = 1000
SLOW_SCHEDULES = int(os.environ.get("FACEPRINT_SIMULATION_SCHEDULES", "10000"))
# Seeds that find a defect put back (tests below): scripts/mutants.py finds more.
# A change to the product's calls shifts every schedule: a test then looks
# on from its seed (slower, still a real search) until it is given a new one.
UPLOAD_SEED, REDRIVE_SEED = 1779, 7056
LOOK_ON = 3000


@pytest.fixture(autouse=True)
def quiet():
    """A run logs every indexing outcome; thousands of them say nothing here."""
    lines = logging.getLogger("faceprint.lines")
    level = lines.level
    lines.setLevel(logging.CRITICAL)
    yield
    lines.setLevel(level)


def explore(first: int, schedules: int, tmp_path) -> None:
    for seed in range(first, first + schedules):
        Simulation(seed, workdir=tmp_path).run()


def finds(tmp_path, seed: int, match: str = "") -> int:
    """The first seed from `seed` (within LOOK_ON) whose schedule gives the
    defect away: a counterexample whose text has `match`."""
    for tried in range(seed, seed + LOOK_ON):
        try:
            Simulation(tried, workdir=tmp_path).run()
        except Counterexample as e:
            if match in str(e):
                return tried
    pytest.fail(f"no counterexample with {match!r} in {LOOK_ON} schedules from seed {seed}")


def test_a_thousand_schedules_settle_with_every_invariant_holding(tmp_path):
    explore(0, FAST_SCHEDULES, tmp_path)


@pytest.mark.slow
def test_many_more_schedules_settle_with_every_invariant_holding(tmp_path):
    explore(1_000_000, SLOW_SCHEDULES, tmp_path)


def test_a_seed_replays_exactly(tmp_path):
    first, again = Simulation(91, workdir=tmp_path).run(), Simulation(91, workdir=tmp_path).run()
    assert first.trace == again.trace and len(first.trace) > 50


def test_it_finds_a_reindex_that_drops_the_people_of_the_faces_it_replaces(tmp_path, monkeypatch):
    """The harness itself can fail: with carry-over taken out (issue 14's
    sixth defect, in its simplest form), a known seed gives it away."""
    monkeypatch.setattr(people, "retire_faces", lambda svc, retire, carry: svc.engine.delete_faces(retire))
    finds(tmp_path, 1060, "it now belongs to None")


def test_it_finds_an_enrolment_that_brings_back_a_person_deleted_after_the_upload(tmp_path, monkeypatch):
    """Enrolment by upload without its tombstone check (a person deleted
    after the photo was uploaded made again): a known seed gives it away,
    with no fault at all."""
    put_person = people.put_person
    monkeypatch.setattr(people, "put_person", lambda svc, person, name, **_: put_person(svc, person, name))
    finds(tmp_path, 3153, "was deleted by")


def test_it_finds_runs_and_uploads_that_ignore_the_buckets_order_of_versions(tmp_path, monkeypatch):
    """The bucket's current version ignored (what the sequencer compare did,
    and issue 25's first defect: an upload's pending record written on
    PutObject's reply alone): a known seed gives it away."""
    monkeypatch.setattr(indexing, "_superseded", lambda photo, version: False)
    finds(tmp_path, UPLOAD_SEED)


def test_it_finds_a_re_drive_that_waits_for_attempts_that_are_over(tmp_path, monkeypatch):
    """Issue 25's seventh defect put back (marks of a process that is gone
    taken for attempts under way): a known seed gives it away."""
    monkeypatch.setattr(indexing, "_abandoned", lambda svc, moment, due: [])
    finds(tmp_path, REDRIVE_SEED, "for attempts that are over")
