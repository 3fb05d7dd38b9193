"""One API, two wirings: the same contract tests run against the embedded
stage (`local`) and the AWS wiring (`dev`: moto S3 and DynamoDB, and the
Rekognition fake, with the bucket's S3 events delivered after each reply,
as AWS does: an upload's reply says `pending`, a read after it `indexed`)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

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
    s3: object = None  # the AWS wiring's S3 client, which a download link leads to

    def download(self, key: str, accept: str = "image/*") -> tuple[int, str, bytes]:
        """GET /images/{key}/file as a browser or `curl -L` does it: on AWS
        the reply is a 307 to a presigned S3 link, which is followed (here by
        reading the object it names). (status, content type, bytes)."""
        reply = self.client.http.get(f"/images/{key}/file", headers={"Accept": accept})
        if reply.status_code != 307:
            return reply.status_code, reply.headers.get("Content-Type", ""), reply.body
        link = urlparse(reply.headers["Location"])
        assert parse_qs(link.query)["X-Amz-Expires"] == ["300"]
        bucket, name = link.netloc.split(".", 1)[0], unquote(link.path.lstrip("/"))
        stored = self.s3.get_object(Bucket=bucket, Key=name)
        return 200, stored["ContentType"], stored["Body"].read()

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

        yield Api(stage, client, stored, monkeypatch, resources.events, resources.s3)


def deliver_after_each_request(client: Client, events: S3Events) -> None:
    """The events a request caused arrive once its reply is back."""
    request = client.http.request

    def request_then_deliver(*args, **kwargs):
        reply = request(*args, **kwargs)
        events.after_request()
        return reply

    client.http.request = request_then_deliver
