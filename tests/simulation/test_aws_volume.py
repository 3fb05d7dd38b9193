"""The AWS stage at volume, simulated (chalicelib/ops/aws_volume.py: the
project's own code over the fakes, on a virtual clock): the small cases of
`make simulate-aws`, against issue 17's bar (none failed, none pending,
settled within 10% of the quota-limited minimum, at most 1.05 Lambda
invocations and 1.02 IndexFaces calls a photo) and issues 25 and 26's:
a quota with no burst and slow calls, a photo that kills its worker, an
outage of Rekognition (5xx, throttles, hangs), mass deletes, searches over
the budget, two stages on one quota, a collection that fills up, and the
scheduled check. The big runs (100,000 photos, a million, ten million
faces) are `make simulate-aws TABLE=1`'s, quoted in docs/deploy.md."""

import subprocess
import sys

import pytest

from chalicelib.core import indexing
from chalicelib.ops.aws_volume import (
    Faults,
    Outage,
    Scenario,
    simulate,
    simulate_check,
    simulate_deletes,
    simulate_searches,
    simulate_two_stages,
)
from tests.support.photos import REPO

QUIET = Faults(lost_events=0, crashes=0)  # no fault whose catching-up costs a small import minutes


def assert_meets_the_bar(result, ratio: float = 1.10) -> None:
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.left_in_queue == 0 and result.dead_letters == 0 and result.alarms == []
    assert result.ratio <= ratio, result.report()
    assert result.invocations_per_photo <= 1.05 and result.calls_per_photo <= 1.02, result.report()
    assert result.missing_faces == 0


@pytest.mark.parametrize(("photos", "tps"), [(2000, 5), (6000, 50)])
def test_an_import_settles_at_the_quotas_pace_with_duplicate_events_and_errors(photos, tps):
    result = simulate(Scenario(photos=photos, tps=tps, seed=3, faults=QUIET))
    assert_meets_the_bar(result)
    assert result.counts.events_duplicated > 0 and result.counts.index_errors > 0
    assert result.counts.peak_concurrency == result.workers  # the rest of the account's concurrency is left alone


@pytest.mark.parametrize("tps", [5, pytest.param(50, marks=pytest.mark.slow)])
def test_one_shared_schedule_keeps_a_quota_with_no_burst_whatever_the_latency(tps):
    """Rekognition's bucket holding a single call, IndexFaces 0.8 s: the
    workers' calls never come closer than the quota allows."""
    result = simulate(Scenario(photos=400 * tps, tps=tps, seed=4, faults=QUIET, burst_calls=1, index_seconds=0.8))
    assert_meets_the_bar(result)
    assert result.counts.throttled == 0


def test_a_photo_that_kills_its_worker_takes_no_batch_mate_to_the_dead_letter_queue():
    crashing = frozenset({"photos/0000007.png", "photos/0000300.png", "photos/0001200.png"})
    result = simulate(Scenario(photos=3000, tps=5, seed=5, faults=Faults(lost_events=0, crashing=crashing)))
    assert result.all_final and result.failed == 3 and result.pending == 0, result.report()
    assert result.dead_letters == 3 and result.innocent_dead_letters == 0
    # Four quick crashes each (its batch given back within HOLD_SECONDS), the last ones at the queue's end.
    assert result.settled_seconds <= result.minimum_seconds + 3 * 60, result.report()
    [reason] = result.failed_reasons
    assert reason.startswith("Indexing stopped its worker 4 times")


@pytest.mark.parametrize("kind", ["5xx", "throttle", "hang"])
def test_an_hour_of_rekognition_failing_every_call_fails_no_photo(kind):
    faults = Faults(lost_events=0, outage=Outage(1, kind, start=120))
    result = simulate(Scenario(photos=3000, tps=5, seed=6, faults=faults))
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.dead_letters == 0
    assert result.ratio <= 1.10, result.report()  # against the quota's minimum plus the hour
    assert result.counts.breaker_waits > 0 or kind == "throttle"


@pytest.mark.parametrize("seed", [3, 4])
def test_a_crashed_worker_gives_its_batch_back_within_seconds(seed):
    """The heartbeat holds a batch only while its worker lives. A worker that
    dies in its start-up, before its handler holds the batch, leaves it
    invisible for the queue's visibility timeout: the re-drive sends its
    photos once they are due (REDRIVE_AFTER_SECONDS), not after 30 minutes."""
    result = simulate(Scenario(photos=3000, tps=50, seed=seed, faults=Faults(lost_events=0, crashes=0.05)))
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.counts.killed_invocations >= 5 and result.innocent_dead_letters == 0
    waited = indexing.REDRIVE_AFTER_SECONDS + 60 if result.counts.killed_before_holding else 0
    assert result.settled_seconds <= result.minimum_seconds + 150 + waited, result.report()


def test_lost_events_are_redriven_once_no_message_waits():
    result = simulate(Scenario(photos=1500, tps=5, seed=4, faults=Faults(lost_events=0.02)))
    assert result.all_final and result.failed == 0 and result.pending == 0
    assert result.counts.events_lost >= 10
    # Each lost photo sent once (a few more: photos still in a worker's batch when the queue emptied).
    assert result.counts.events_lost - 2 <= result.counts.redriven <= result.counts.events_lost + 20
    assert result.settled_seconds <= result.minimum_seconds + 4 * 60


def test_a_quota_smaller_than_the_stage_thinks_slows_every_worker_down_and_nothing_fails():
    """Twice the quota's pace: the throttles cut the shared pace."""
    result = simulate(Scenario(photos=1500, tps=10, quota=5, seed=5, faults=QUIET))
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.counts.throttled > 0 and result.dead_letters == 0
    assert result.settled_seconds <= 1.3 * result.minimum_seconds


def test_two_stages_sharing_one_pace_keep_to_one_quota():
    result = simulate_two_stages(1500, 5, shared_pace=True, seed=2)
    assert result.all_final and result.failed == 0, result.report()
    assert result.counts.throttled == 0 and result.ratio <= 1.15


def test_a_photo_that_can_never_be_indexed_ends_failed_with_its_reason_and_its_event_dead_lettered():
    poison = frozenset({"photos/0000007.png", "photos/0000300.png"})
    result = simulate(Scenario(photos=500, tps=5, seed=6, faults=Faults(poison=poison)))
    assert result.all_final and result.failed == 2 and result.pending == 0
    assert result.dead_letters == 2 and result.left_in_queue == 0 and result.innocent_dead_letters == 0
    [reason] = result.failed_reasons
    assert reason == (
        "Indexing failed 5 times; the last time: "
        "IndexFaces failed on AWS's side (InternalServerError); retry after a pause."
    )


def test_a_collection_that_fills_up_fails_the_photos_beyond_at_once_and_says_so():
    result = simulate(Scenario(photos=1000, tps=5, seed=7, faults=QUIET, collection_limit=800))
    assert result.all_final and result.indexed == 800 and result.failed == 200, result.report()
    assert result.calls_per_photo <= 1.02  # each tried once: no retries of a full collection
    assert "collection nearly full" in result.alarms and result.dead_letters == 0
    [reason] = result.failed_reasons
    assert "holds as many faces as it may" in reason


@pytest.mark.parametrize("how", ["api", "s3"])
def test_mass_deletes_over_delete_faces_quota_leave_no_face_and_no_record(how):
    result = simulate_deletes(600, how, delete_tps=5, seed=8)
    assert result.records_left_after_check == 0 and result.faces_left_after_check == 0, result.report()
    assert result.records_left == result.faces_left == result.counts.events_lost  # the check's to catch
    assert result.counts.delete_throttled == 0 and result.ratio <= 1.2, result.report()


def test_searches_over_the_budget_are_told_to_wait_and_never_exceed_the_quota():
    budget = simulate_searches(10, 120, budget=True, seed=9)
    assert budget.rekognition_throttled == 0 and budget.throttled_503 == 0, budget.report()
    assert budget.busiest_second <= budget.quota and budget.budget_429 > 0
    before = simulate_searches(10, 120, budget=False, seed=9)
    assert before.throttled_503 > 0.2 * before.requests  # what the per-method throttles let through


def test_the_scheduled_check_covers_the_archive_in_runs_within_its_limits():
    result = simulate_check(30_000, seed=10)
    assert result.strays_left == 0 and result.records_left == 0, result.report()
    assert result.found == {"face_without_record": 100, "record_without_photo": 100}
    assert result.longest_run_seconds <= 900 and result.peak_mb < 50


def test_the_same_seed_simulates_the_same_run():
    first, again = (simulate(Scenario(photos=400, tps=5, seed=8)).report() for _ in range(2))
    assert first == again


def test_make_simulate_aws_prints_the_figures():
    done = subprocess.run(
        ["make", "--no-print-directory", "simulate-aws", "N=200", "TPS=50", "SEED=2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in ("200 photos", "settled after", "quota-limited minimum", "0 failed, 0 pending", "a photo"):
        assert expected in out
    assert "Rekognition $0.20" in out and "alarms: none" in out


def test_the_simulation_needs_no_aws_and_refuses_nonsense():
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.ops.simulate_aws", "--photos", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "must be above 0" in done.stderr
