"""One API, two wirings: the same contract tests run against the embedded
stage (`local`) and the AWS wiring (`dev`: moto S3 and DynamoDB, and the
Rekognition fake, with S3 events delivered to the handler as the bucket
notification does on AWS)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chalice.config import Config
from chalice.test import Client

from app import app
from tests.support.fake_rekognition import aws_stage, deliver_s3_events

STAGES = ["local", "dev"]


@dataclass
class Api:
    stage: str
    client: Client
    stored: Callable[[], list[str]]  # what the photo store holds, to prove nothing was stored
    monkeypatch: object

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
        deliver_s3_events(monkeypatch, client, resources)

        def stored() -> list[str]:
            listing = resources.s3.list_objects_v2(Bucket=resources.bucket)
            return sorted(item["Key"] for item in listing.get("Contents", []))

        yield Api(stage, client, stored, monkeypatch)
