"""The AWS wiring over HTTP: the dev stage (moto and the Rekognition fake,
tests/support/fake_rekognition.py) and a chalice.test.Client of it."""

import pytest
from chalice.test import Client

from app import app
from tests.support.fake_rekognition import aws_stage


@pytest.fixture
def stage(monkeypatch):
    with aws_stage(monkeypatch, "dev") as resources:
        yield resources


@pytest.fixture
def client(stage):
    with Client(app, stage_name="dev") as c:
        yield c
