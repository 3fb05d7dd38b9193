"""The indexing queue's SQS adapter on moto: batches of 10, delays,
visibility, the depth's three counts, and a missing queue named."""

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import clients as aws
from chalicelib.aws.sqs import SqsIndexQueue
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.ports import QueueDepth
from tests.support.fake_rekognition import AWS_ENV, REGION

QUEUE = "faceprint-test-index"


@pytest.fixture
def sqs(monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("sqs", region_name=REGION, config=aws.config_for("sqs"))
        client.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "720"})
        yield client


def _requests(client, operation: str) -> list[dict]:
    seen = []
    client.meta.events.register(f"provide-client-params.sqs.{operation}", lambda params, **_: seen.append(params))
    return seen


def _receive(client, url: str) -> list[dict]:
    return client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])


def test_messages_go_in_batches_of_ten_and_a_delay_holds_them(sqs):
    queue = SqsIndexQueue(sqs, QUEUE, stage="test")
    batches = _requests(sqs, "SendMessageBatch")
    queue.send([f"m{i}" for i in range(23)])
    assert [len(b["Entries"]) for b in batches] == [10, 10, 3]
    queue.send(["later"], delay_seconds=60)
    assert queue.depth() == QueueDepth(waiting=23, in_flight=0, delayed=1)
    url = queue.url
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesDelayed"]) == ("23", "1")
    queue.send([])
    assert len(batches) == 4


def test_received_messages_count_in_the_depth_until_deleted_and_can_be_seen_again_sooner(sqs):
    queue = SqsIndexQueue(sqs, QUEUE, stage="test")
    queue.send(["a", "b", "c"])
    received = _receive(sqs, queue.url)
    assert len(received) == 3 and queue.depth() == QueueDepth(0, 3, 0)  # in flight: not visible, still there
    assert _receive(sqs, queue.url) == []
    receipts = [m["ReceiptHandle"] for m in received]
    queue.retry_after(receipts[:1], 0)
    again = _receive(sqs, queue.url)
    assert [m["Body"] for m in again] == [received[0]["Body"]]
    queue.delete(receipts[1:] + [again[0]["ReceiptHandle"]])
    assert queue.depth().total == 0
    queue.delete(receipts[1:])  # gone already: nothing to do
    queue.retry_after(receipts[1:], 0)


def test_the_queue_url_is_asked_once(sqs):
    asked = _requests(sqs, "GetQueueUrl")
    queue = SqsIndexQueue(sqs, QUEUE, stage="test")
    queue.send(["a"])
    queue.depth()
    assert len(asked) == 1


def test_a_missing_queue_says_which_and_how_to_create_it(sqs):
    queue = SqsIndexQueue(sqs, "faceprint-nope-index", stage="nope")
    with pytest.raises(ConfigurationError, match="'faceprint-nope-index'.*make aws-setup STAGE=nope"):
        queue.depth()
