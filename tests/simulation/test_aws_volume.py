"""The AWS stage at volume, simulated (tests/support/aws_volume.py: the
project's indexing code over the fakes, on a virtual clock): the small
cases of `make simulate-aws`, against issue 17's bar (none failed, none
pending, settled within 10% of the quota-limited minimum, at most 1.05
Lambda invocations and 1.02 IndexFaces calls a photo), and what happens
when the quota is smaller than the stage thinks, events are lost, workers
crash, or a photo can never be indexed."""

import subprocess
import sys

import pytest

from tests.support.aws_volume import Faults, Scenario, simulate
from tests.support.photos import REPO


def assert_meets_the_bar(result) -> None:
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.left_in_queue == 0 and result.dead_letters == 0
    assert result.ratio <= 1.10, result.report()
    assert result.invocations_per_photo <= 1.05 and result.calls_per_photo <= 1.02, result.report()
    assert result.missing_faces == 0


@pytest.mark.parametrize(("photos", "tps"), [(2000, 5), (6000, 50)])
def test_an_import_settles_at_the_quotas_pace_with_duplicate_events_and_errors(photos, tps):
    faults = Faults(lost_events=0, crashes=0)
    result = simulate(Scenario(photos=photos, tps=tps, seed=3, faults=faults))
    assert_meets_the_bar(result)
    assert result.counts.events_duplicated > 0 and result.counts.index_errors > 0
    assert result.counts.peak_concurrency == result.workers  # the rest of the account's concurrency is left alone


def test_a_crashed_worker_gives_its_batch_back_within_minutes():
    """Not after the queue's visibility timeout (12 minutes): the worker
    holds its batch only as long as it can run."""
    result = simulate(Scenario(photos=3000, tps=50, seed=3, faults=Faults(lost_events=0, crashes=0.05)))
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.counts.killed_invocations >= 5
    assert result.settled_seconds <= result.minimum_seconds + 3 * 60


def test_lost_events_are_redriven_once_the_queue_is_empty():
    result = simulate(Scenario(photos=1500, tps=5, seed=4, faults=Faults(lost_events=0.02)))
    assert result.all_final and result.failed == 0 and result.pending == 0
    assert result.counts.events_lost >= 10
    # Each lost photo sent once (a few more: those whose duplicate event was lost too are not lost).
    assert result.counts.events_lost - 2 <= result.counts.redriven <= result.counts.events_lost
    assert result.settled_seconds <= result.minimum_seconds + 4 * 60


def test_a_quota_smaller_than_the_stage_thinks_is_back_pressure_and_nothing_fails():
    """Twice the quota's pace: throttles send batches back, delayed; slower
    than paced right, but none fails."""
    result = simulate(Scenario(photos=1000, tps=10, quota=5, seed=5))
    assert result.all_final and result.failed == 0 and result.pending == 0, result.report()
    assert result.counts.throttled > 0 and result.counts.throttled_batches > 0
    assert result.dead_letters == 0
    assert result.settled_seconds <= 2 * result.minimum_seconds


def test_a_photo_that_can_never_be_indexed_ends_failed_with_its_reason_and_its_event_dead_lettered():
    poison = frozenset({"photos/000007.png", "photos/000300.png"})
    result = simulate(Scenario(photos=500, tps=5, seed=6, faults=Faults(poison=poison)))
    assert result.all_final and result.failed == 2 and result.pending == 0
    assert result.dead_letters == 2 and result.left_in_queue == 0
    [reason] = result.failed_reasons
    assert reason == (
        "Indexing failed 5 times; the last time: "
        "IndexFaces failed on AWS's side (InternalServerError); retry after a pause."
    )


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
    assert "Rekognition $0.20" in out


def test_the_simulation_needs_no_aws_and_refuses_nonsense():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "simulate_aws.py"), "--photos", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "must be above 0" in done.stderr
