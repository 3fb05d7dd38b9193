"""The bucket's ObjectCreated notification, as the AWS wiring's tests see it.

On AWS an upload's reply comes back while the photo is still `pending`; the
S3 event arrives later (at least once, in any order) and another function
indexes the photo. Here every PutObject on the stage's bucket (by the API
or by a test) queues the event AWS would send, with the object's eTag,
versionId and a sequencer; the events are delivered after each HTTP
request's reply, in order, unless a test holds them to deliver them its
own way (shuffled, duplicated, or interleaved step by step)."""

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_plus

LAMBDA_RETRIES = 2  # an asynchronous invocation that fails is retried twice, then dropped


@dataclass
class S3Events:
    bucket: str
    invoke: Callable[[dict], object] = lambda event: None  # set once the chalice test client exists
    queued: list[dict] = field(default_factory=list)
    held: bool = False
    dropped: list[tuple[dict, Exception]] = field(default_factory=list)
    _sequence: itertools.count = field(default_factory=lambda: itertools.count(0x5AED6DCD90281E5))

    def watch(self, s3_client) -> None:
        """Queue an event for every object this client puts in the bucket."""
        s3_client.meta.events.register("provide-client-params.s3.PutObject", self._remember_put)
        s3_client.meta.events.register("after-call.s3.PutObject", self._queue_put)

    def event(self, record: dict) -> dict:
        """The notification S3 sends for one stored object."""
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"},
                        "object": {**record, "key": quote_plus(record["key"])},
                    },
                }
            ]
        }

    def take(self) -> list[dict]:
        """The queued events' records, emptying the queue (to deliver by hand)."""
        taken, self.queued = self.queued, []
        return taken

    def deliver(self, records: list[dict] | None = None, shuffle: int | None = None, duplicate: bool = False) -> None:
        """Deliver `records` (default: everything queued), in order, or
        shuffled with seed `shuffle`, each once or twice; a delivery that
        raises is retried as Lambda would, then dropped."""
        records = self.take() if records is None else records
        if duplicate:
            records = [record for record in records for _ in range(2)]
        if shuffle is not None:
            records = random.Random(shuffle).sample(records, len(records))
        for record in records:
            self.deliver_one(record)

    def deliver_one(self, record: dict) -> None:
        for attempt in range(1 + LAMBDA_RETRIES):
            try:
                self.invoke(self.event(record))
                return
            except Exception as e:  # what Lambda does with a failed asynchronous invocation
                if attempt == LAMBDA_RETRIES:
                    self.dropped.append((record, e))

    def after_request(self) -> None:
        if not self.held:
            self.deliver()

    def _remember_put(self, params, context, **_):
        if params.get("Bucket") == self.bucket:
            context["faceprint_put"] = (params["Key"], len(params.get("Body") or b""))

    def _queue_put(self, http_response, parsed, context, **_):
        if "faceprint_put" not in context or http_response.status_code != 200:
            return
        key, size = context["faceprint_put"]
        record = {"key": key, "size": size, "eTag": parsed["ETag"].strip('"'), "sequencer": f"{next(self._sequence):X}"}
        if parsed.get("VersionId"):
            record["versionId"] = parsed["VersionId"]
        self.queued.append(record)
