import pytest

from tests.support.photos import FACES_DIR
from tests.support.stages import STAGES, serving


def pytest_configure(config):
    if not (FACES_DIR / "people.json").is_file():
        raise pytest.UsageError(
            f"The tests need the shared photos: {FACES_DIR}/people.json is missing. "
            "Set FACEPRINT_FACES_DIR to the faces folder (photos + people.json)."
        )


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
