"""The bucket's events, through the indexing queue, as the AWS wiring's
tests see them.

On AWS an upload's reply comes back while the photo is still `pending`; S3
sends the ObjectCreated event to the stage's SQS queue (at least once, in
any order), and Lambda's event source hands the queue's messages to the
indexing workers in batches. Here every PutObject and DeleteObject(s) on the
stage's bucket (by the API or by a test) queues the event S3 would send,
with the object's eTag, versionId and a sequencer (moto's own notifications
carry neither, and none for deletes: the stage's bucket sends none here).
`deliver` sends them to the moto queue and drains it as Lambda's event
source does: a batch of up to 10 messages per invocation of the worker,
deleted when the invocation returns, received again when it raised (time
is short here: a failed message is seen again at once), and moved to the
dead-letter queue by moto after the queue's maximum receives. Events are
delivered after each HTTP request's reply, in order, unless a test holds
them to deliver them its own way (shuffled, duplicated, or step by step)."""

import hashlib
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_plus, unquote_plus

from botocore.exceptions import ClientError

from chalicelib.core.index_queue import BATCH_SIZE

MAX_ROUNDS = 1000  # batches one drain runs at most: a queue that never empties is a bug


@dataclass
class S3Events:
    bucket: str
    sqs: object = None
    queue_url: str = ""
    dead_letter_url: str = ""
    invoke: Callable[[dict], object] = lambda event: None  # the worker, set once the chalice test client exists
    queued: list[dict] = field(default_factory=list)
    held: bool = False
    sent: list[dict] = field(default_factory=list)
    invocations: int = 0
    failed_invocations: list[Exception] = field(default_factory=list)
    _sequence: itertools.count = field(default_factory=lambda: itertools.count(0x5AED6DCD90281E5))

    def watch(self, s3_client) -> None:
        """Queue an event for every object this client puts in or deletes from the bucket."""
        s3_client.meta.events.register("provide-client-params.s3.PutObject", self._remember_put)
        s3_client.meta.events.register("after-call.s3.PutObject", self._queue_put)
        s3_client.meta.events.register("provide-client-params.s3.DeleteObject", self._remember_delete)
        s3_client.meta.events.register("after-call.s3.DeleteObject", self._queue_delete)
        s3_client.meta.events.register("provide-client-params.s3.DeleteObjects", self._remember_deletes)
        s3_client.meta.events.register("after-call.s3.DeleteObjects", self._queue_deletes)

    def event(self, record: dict) -> dict:
        """The notification S3 sends for one stored or removed object."""
        stored = {name: value for name, value in record.items() if name != "eventName"}
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "eventName": record.get("eventName", "ObjectCreated:Put"),
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"},
                        "object": {**stored, "key": quote_plus(record["key"])},
                    },
                }
            ]
        }

    def take(self) -> list[dict]:
        """The queued events' records, emptying the queue (to deliver by hand)."""
        taken, self.queued = self.queued, []
        return taken

    def deliver(self, records: list[dict] | None = None, shuffle: int | None = None, duplicate: bool = False) -> None:
        """Send `records` (default: everything queued) to the queue, in order,
        or shuffled with seed `shuffle`, each once or twice, then drain it."""
        records = self.take() if records is None else records
        if duplicate:
            records = [record for record in records for _ in range(2)]
        if shuffle is not None:
            records = random.Random(shuffle).sample(records, len(records))
        self.send([json.dumps(self.event(record)) for record in records])
        self.drain()

    def send(self, bodies: list[str]) -> None:
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        self.sent += [json.loads(body)["Records"][0]["s3"]["object"] for body in bodies]

    def take_sent(self) -> list[dict]:
        """The records sent to the queue so far (to send one again by hand)."""
        return [{**record, "key": unquote_plus(record["key"])} for record in self.sent]

    def move_dead_letters_back(self) -> None:
        """What `aws sqs start-message-move-task` does: the dead-letter
        queue's messages back into the queue, as new messages."""
        while True:
            received = self.sqs.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not received:
                return
            for message in received:
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["Body"])
                self.sqs.delete_message(QueueUrl=self.dead_letter_url, ReceiptHandle=message["ReceiptHandle"])

    def drain(self) -> None:
        """What Lambda's event source does until the queue has no visible
        message: a batch, one invocation, deleted on success."""
        for _ in range(MAX_ROUNDS):
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=BATCH_SIZE, AttributeNames=["All"]
            ).get("Messages", [])
            if not received:
                return
            self.invocations += 1
            try:
                self.invoke(self.sqs_event(received))
            except Exception as e:  # what the event source does with an invocation that raised
                self.failed_invocations.append(e)
                for message in received:  # time passes: what is left of the batch is seen again
                    self._visible_now(message["ReceiptHandle"])
                continue
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
            )
        raise AssertionError(f"the queue still had messages after {MAX_ROUNDS} batches")

    def sqs_event(self, messages: list[dict]) -> dict:
        """The event Lambda's SQS event source invokes a function with."""
        arn = f"arn:aws:sqs:us-east-1:123456789012:{self.queue_url.rsplit('/', 1)[-1]}"
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def backlog(self) -> dict[str, int]:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return {name.removeprefix("ApproximateNumberOf"): int(attributes[name]) for name in names}

    def dead_letters(self) -> list[dict]:
        """The S3 events in the dead-letter queue (left there)."""
        received = self.sqs.receive_message(
            QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in received]

    def after_request(self) -> None:
        if not self.held:
            self.deliver()

    def _visible_now(self, receipt: str) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
        except ClientError as e:
            if e.response["Error"]["Code"] != "ReceiptHandleIsInvalid":  # the worker deleted it: done with
                raise

    def _remember_put(self, params, context, **_):
        if params.get("Bucket") == self.bucket:
            context["faceprint_put"] = (params["Key"], len(params.get("Body") or b""))

    def _queue_put(self, http_response, parsed, context, **_):
        if "faceprint_put" not in context or http_response.status_code != 200:
            return
        key, size = context["faceprint_put"]
        record = {"key": key, "size": size, "eTag": parsed["ETag"].strip('"'), "sequencer": self._sequencer()}
        if parsed.get("VersionId"):
            record["versionId"] = parsed["VersionId"]
        self.queued.append(record)

    def _remember_delete(self, params, context, **_):
        if params.get("Bucket") == self.bucket:
            context["faceprint_delete"] = params["Key"]

    def _queue_delete(self, http_response, parsed, context, **_):
        if "faceprint_delete" not in context or http_response.status_code not in (200, 204):
            return
        name = "ObjectRemoved:DeleteMarkerCreated" if parsed.get("DeleteMarker") else "ObjectRemoved:Delete"
        self._queue_removed(context["faceprint_delete"], name, parsed.get("VersionId"))

    def _remember_deletes(self, params, context, **_):
        if params.get("Bucket") == self.bucket:
            context["faceprint_deletes"] = [(o["Key"], o.get("VersionId")) for o in params["Delete"]["Objects"]]

    def _queue_deletes(self, http_response, parsed, context, **_):
        if "faceprint_deletes" not in context or http_response.status_code != 200:
            return
        failed = {(e["Key"], e.get("VersionId")) for e in parsed.get("Errors", [])}
        for key, version in context["faceprint_deletes"]:
            if (key, version) not in failed:
                self._queue_removed(key, "ObjectRemoved:Delete", version)

    def _queue_removed(self, key: str, name: str, version: str | None) -> None:
        record = {"key": key, "sequencer": self._sequencer(), "eventName": name}
        if version:
            record["versionId"] = version
        self.queued.append(record)

    def _sequencer(self) -> str:
        return f"{next(self._sequence):X}"
