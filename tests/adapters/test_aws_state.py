"""The stage's shared items on DynamoDB (chalicelib/aws/state.py) against
moto, and against the in-memory SharedState the tests and the simulation
use: the same answers from both. A schedule's turns, a hold, conditional
updates; the people table's listings never show them."""

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import clients as aws
from chalicelib.aws.dynamodb import DynamoRecordStore
from chalicelib.aws.state import DynamoSharedState
from chalicelib.core.pacing import InMemoryState
from tests.support.fake_rekognition import AWS_ENV, REGION, load_setup_script

PEOPLE = "people-test"


@pytest.fixture
def dynamodb(monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=aws.config_for("dynamodb"))
        setup = load_setup_script()
        settings = setup.stage_settings(
            {
                "FACEPRINT_STAGE": "test",
                "FACEPRINT_ENGINE": "rekognition",
                "FACEPRINT_BUCKET": "unused",
                "FACEPRINT_IMAGES_TABLE": "images-test",
                "FACEPRINT_FACES_TABLE": "faces-test",
                "FACEPRINT_PEOPLE_TABLE": PEOPLE,
                "FACEPRINT_COLLECTION": "unused",
                "FACEPRINT_INDEX_QUEUE": "unused",
            }
        )
        setup.create_tables(client, settings, log=lambda _: None)
        yield client


@pytest.fixture(params=["dynamodb", "memory"])
def state(request):
    if request.param == "memory":
        return InMemoryState()
    return DynamoSharedState(request.getfixturevalue("dynamodb"), PEOPLE, stage="test")


def test_turns_of_a_schedule_follow_each_other_a_step_apart(state):
    assert state.reserve("pace", now=100.0, step=0.25, latest=101.0)[0] == 100.0
    assert state.reserve("pace", now=100.0, step=0.25, latest=101.0)[0] == 100.25
    start, item = state.reserve("pace", now=100.1, step=0.25, latest=101.0)
    assert start == 100.5 and item["tat"] == 100.75


def test_an_idle_schedule_gives_a_turn_at_once(state):
    state.reserve("pace", now=100.0, step=1.0, latest=200.0)
    assert state.reserve("pace", now=150.0, step=1.0, latest=200.0)[0] == 150.0


def test_no_turn_is_taken_after_the_callers_latest(state):
    for _ in range(4):
        state.reserve("pace", now=100.0, step=1.0, latest=200.0)
    start, item = state.reserve("pace", now=100.0, step=1.0, latest=102.5)
    assert start is None and item["tat"] == 104.0
    assert state.reserve("pace", now=100.0, step=1.0, latest=104.0)[0] == 104.0  # nothing was taken


def test_a_hold_pushes_the_schedule_but_never_back(state):
    state.hold_until("pace", 500.0, {"openUntil": 500.0})
    assert state.reserve("pace", now=100.0, step=1.0, latest=1000.0)[0] == 500.0
    item = state.hold_until("pace", 300.0)
    assert item["tat"] == 501.0 and item["openUntil"] == 500.0


def test_updates_set_remove_add_and_respect_their_condition(state):
    assert state.read("breaker") == {}
    item = state.update("breaker", {"failAt": 10.5, "failKey": "a.jpg"}, add={"done": 3})
    assert item == {"failAt": 10.5, "failKey": "a.jpg", "done": 3}
    assert state.update("breaker", {"failAt": 11.0}, only_if={"failAt": 9.0}) is None
    item = state.update("breaker", {"failKey": None}, add={"done": 2}, only_if={"failAt": 10.5, "okAt": None})
    assert item == {"failAt": 10.5, "done": 5}
    assert state.read("breaker") == item


def test_the_shared_items_never_show_as_people(dynamodb):
    state = DynamoSharedState(dynamodb, PEOPLE, stage="test")
    state.update("breaker", {"okAt": 1.0})
    state.reserve("pace:eu-west-3:IndexFaces", now=1.0, step=1.0, latest=2.0)
    records = DynamoRecordStore(dynamodb, "images-test", "faces-test", "unused", PEOPLE, stage="test")
    assert records.list_people(100).items == []
    assert records.get_person("#breaker") is None and records.find_people(["#breaker"]) == {}


def test_stages_that_name_one_pace_table_share_its_schedules_and_keep_their_breakers_and_checks(dynamodb):
    """FACEPRINT_PACE_TABLE: two stages of one account and region take
    their turns on one schedule, a step apart; the breaker, the re-drive's
    and the check's places stay each stage's own (another stage's photos
    and collection are not this one's)."""
    from chalicelib import wiring
    from chalicelib.core.config import Settings
    from chalicelib.core.pacing import BREAKER

    dynamodb.create_table(
        TableName="people-other",
        KeySchema=[{"AttributeName": "personId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "personId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def stage(name: str, people: str):
        env = {
            "FACEPRINT_STAGE": name,
            "FACEPRINT_ENGINE": "rekognition",
            "FACEPRINT_BUCKET": f"bucket-{name}",
            "FACEPRINT_IMAGES_TABLE": f"images-{name}",
            "FACEPRINT_FACES_TABLE": f"faces-{name}",
            "FACEPRINT_PEOPLE_TABLE": people,
            "FACEPRINT_COLLECTION": f"collection-{name}",
            "FACEPRINT_INDEX_QUEUE": f"queue-{name}",
            "FACEPRINT_INDEX_TPS": "2",
            "FACEPRINT_PACE_TABLE": PEOPLE,
        }
        return wiring._build_aws(Settings.from_env(env)).pacing

    one, other = stage("test", PEOPLE), stage("other", "people-other")
    one.index.take()
    after_one = one.index.state.read(one.index.name)["tat"]
    other.index.take()  # within the other's step: its turn is the next on the same schedule
    assert other.index.state.read(other.index.name)["tat"] == after_one + 0.5
    assert one.breaker.failed("a.jpg") and other.breaker.failed("b.jpg")  # each its stage's first failure: counted
    assert one.state.read(BREAKER)["failKey"] == "a.jpg" and other.state.read(BREAKER)["failKey"] == "b.jpg"
    other.state.update("check", {"step": 3})
    assert one.state.read("check") == {}
