"""One API, two wirings: the same contract tests run against the embedded
stage (`local`) and the AWS wiring (`dev`: moto S3 and DynamoDB, and the
Rekognition fake, with the bucket's S3 events delivered after each reply,
as AWS does: an upload's reply says `pending`, a read after it `indexed`)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chalice.config import Config
from chalice.test import Client

from app import app
from tests.support.fake_rekognition import aws_stage
from tests.support.s3_events import S3Events

STAGES = ["local", "dev"]


@dataclass
class Api:
    stage: str
    client: Client
    stored: Callable[[], list[str]]  # what the photo store holds, to prove nothing was stored
    monkeypatch: object
    events: S3Events | None = None  # the AWS wiring's bucket events (None offline: no events)

    def configure(self, **variables: str) -> None:
        """Set the stage's environment variables, as its environment_variables
        in .chalice/config.json would (they win over the process's own)."""
        configured = Config.environment_variables.fget
        self.monkeypatch.setattr(Config, "environment_variables", property(lambda c: {**configured(c), **variables}))


@contextmanager
def serving(stage: str, data_dir: Path, monkeypatch) -> Iterator[Api]:
    if stage == "local":
        monkeypatch.setenv("FACEPRINT_DATA_DIR", str(data_dir))
        with Client(app, stage_name="local") as client:
            yield Api(stage, client, lambda: sorted(p.stem for p in (data_dir / "photos").glob("*.json")), monkeypatch)
        return
    with aws_stage(monkeypatch, stage) as resources, Client(app, stage_name=stage) as client:
        deliver_after_each_request(client, resources.events)

        def stored() -> list[str]:
            listing = resources.s3.list_objects_v2(Bucket=resources.bucket)
            return sorted(item["Key"] for item in listing.get("Contents", []))

        yield Api(stage, client, stored, monkeypatch, resources.events)


def deliver_after_each_request(client: Client, events: S3Events) -> None:
    """The events a request caused arrive once its reply is back."""
    request = client.http.request

    def request_then_deliver(*args, **kwargs):
        reply = request(*args, **kwargs)
        events.after_request()
        return reply

    client.http.request = request_then_deliver
