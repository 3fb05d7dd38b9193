import os
from pathlib import Path

import pytest

from chalicelib import wiring
from tests.support import processes
from tests.support.stages import STAGES, serving

# How long a stopped server's analysis workers may take to end (they poll
# for their parent twice a second) before the end-of-run check fails the run.
WORKERS_GRACE_SECONDS = 10
_STRAYS_BEFORE = pytest.StashKey[set]()


def pytest_configure(config):
    from moto.s3.models import FakeBucket

    from tests.support.moto_tls import permission_over_tls

    FakeBucket.get_permission = permission_over_tls  # every request to moto stands for one over HTTPS


# Whole layers that index the shared photos with dlib or start real servers:
# `pytest -m "not slow"` leaves them out (units, adapters, contracts on fakes).
SLOW_LAYERS = ("api", "ops", "e2e")
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        layer = item.path.relative_to(TESTS).parts[0]
        if layer in SLOW_LAYERS:
            item.add_marker(pytest.mark.slow)


def pytest_sessionstart(session):
    session.config.stash[_STRAYS_BEFORE] = set(processes.stray_workers())


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if it leaves analysis workers running: below this
    process (after its own pool is closed), or orphaned by a server the run
    started (spawn_main of this venv, started in this repository)."""
    wiring.close()
    below = processes.wait_gone(processes.workers_below(os.getpid()), WORKERS_GRACE_SECONDS)
    before = session.config.stash[_STRAYS_BEFORE]
    strays = processes.wait_gone([pid for pid in processes.stray_workers() if pid not in before], WORKERS_GRACE_SECONDS)
    left = below + strays
    if left:
        message = f"The run left {len(left)} analysis worker(s) running, killed now: " + "; ".join(
            f"{pid} (parent {processes.parents().get(pid)}): {' '.join(processes.command(pid))[:100]}" for pid in left
        )
        processes.kill(left)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "analysis workers left running", red=True)
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(params=STAGES)
def api(request, tmp_path, monkeypatch):
    """The HTTP API on an empty archive, once per wiring (local, then AWS)."""
    with serving(request.param, tmp_path / "data", monkeypatch) as running:
        yield running


@pytest.fixture
def client(api):
    return api.client


@pytest.fixture(scope="module", params=STAGES)
def module_api(request, tmp_path_factory):
    """Like `api`, shared by a whole module (for archives that take a while to index)."""
    with pytest.MonkeyPatch.context() as mp, serving(request.param, tmp_path_factory.mktemp("data"), mp) as running:
        yield running
