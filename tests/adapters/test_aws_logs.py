"""The AWS stage's logs (docs/privacy.md): `make aws-setup` gives every
function's log group and the audit log group their retention, and the API
writes its audit lines into the audit group (moto's CloudWatch Logs)."""

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws.audit import CloudWatchAuditLog
from chalicelib.core.config import Settings
from tests.support.fake_rekognition import AWS_ENV, REGION, aws_stage, load_setup_script


@pytest.fixture
def logs(monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("logs", region_name=REGION)


def retentions(logs) -> dict[str, int | None]:
    groups = logs.describe_log_groups()["logGroups"]
    return {group["logGroupName"]: group.get("retentionInDays") for group in groups}


def test_aws_setup_gives_every_log_group_its_retention(logs):
    setup = load_setup_script()
    settings = setup.stage_settings(setup.stage_environment("dev"))
    logs.create_log_group(logGroupName="/aws/lambda/faceprint-dev")  # made by Lambda before, without one
    setup.create_log_groups(settings, logs, log=lambda _: None)
    assert retentions(logs) == {
        "/aws/lambda/faceprint-dev": 30,
        "/aws/lambda/faceprint-dev-index_queued_photos": 30,
        "/aws/lambda/faceprint-dev-redrive_pending": 30,
        "/aws/lambda/faceprint-dev-check_archive": 30,
        "/faceprint/dev/audit": 90,
    }
    longer = Settings.from_env({**setup.stage_environment("dev"), "FACEPRINT_AUDIT_RETENTION_DAYS": "365"})
    setup.create_log_groups(longer, logs, log=lambda _: None)  # again: only the retentions change
    assert retentions(logs)["/faceprint/dev/audit"] == 365
    setup.remove_audit_log(settings, logs, log=lambda _: None)
    assert "/faceprint/dev/audit" not in retentions(logs)


def test_a_retention_cloudwatch_does_not_take_is_refused_by_name():
    with pytest.raises(Exception, match="FACEPRINT_LOG_RETENTION_DAYS"):
        Settings.from_env({"FACEPRINT_LOG_RETENTION_DAYS": "45"})


def test_an_audit_line_lands_in_the_audit_group_and_a_missing_group_only_warns(logs, caplog):
    logs.create_log_group(logGroupName="/faceprint/dev/audit")
    CloudWatchAuditLog(logs, "/faceprint/dev/audit").write({"route": "/people/{person_id}"})
    (stream,) = logs.describe_log_streams(logGroupName="/faceprint/dev/audit")["logStreams"]
    events = logs.get_log_events(logGroupName="/faceprint/dev/audit", logStreamName=stream["logStreamName"])["events"]
    assert [json.loads(event["message"]) for event in events] == [{"route": "/people/{person_id}"}]
    CloudWatchAuditLog(logs, "/faceprint/nowhere/audit").write({"route": "/x"})
    assert "make aws-setup" in caplog.text


def test_the_aws_api_audits_each_request(monkeypatch):
    from chalice.test import Client

    from app import app

    with aws_stage(monkeypatch, "dev") as stage, Client(app, stage_name="dev") as client:
        client.http.put("/people/keanu", body='{"name": "Keanu"}', headers={"Content-Type": "application/json"})
        client.http.get("/people/keanu")
        cloudwatch = boto3.client("logs", region_name=REGION)
        group = Settings.from_env(stage.env).audit_log_group
        (stream,) = cloudwatch.describe_log_streams(logGroupName=group)["logStreams"]
        events = cloudwatch.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        lines = [json.loads(event["message"]) for event in events]
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("PUT", "/people/{person_id}", 201),
        ("GET", "/people/{person_id}", 200),
    ]
    assert lines[1]["asked"] == {"person_id": "keanu"} and lines[1]["returned"] == {"people": ["keanu"]}
