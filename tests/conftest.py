import pytest
from chalice.test import Client

from app import app
from tests.photos import FACES_DIR


def pytest_configure(config):
    if not (FACES_DIR / "people.json").is_file():
        raise pytest.UsageError(
            f"The tests need the shared photos: {FACES_DIR}/people.json is missing. "
            "Set FACEPRINT_FACES_DIR to the faces folder (photos + people.json)."
        )


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh, empty data folder for the embedded stage."""
    path = tmp_path / "data"
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(path))
    return path


@pytest.fixture
def client(data_dir):
    with Client(app, stage_name="local") as c:
        yield c
