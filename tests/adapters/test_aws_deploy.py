"""What a deployment rests on: least-privilege policies that match the code,
the setup script, and `chalice package` to Terraform, offline."""

import ast
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.apigateway.models import UsagePlan

from chalicelib.api import gateway
from chalicelib.api.replies import NO_ROUTE
from chalicelib.aws.dynamodb import DynamoRecordStore
from chalicelib.core import index_queue
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from tests.support.fake_rekognition import AWS_ENV, REGION, FakeRekognition, load_setup_script
from tests.support.photos import REPO

ADAPTERS = [
    ("apigateway", REPO / "chalicelib" / "aws" / "api_keys.py"),
    ("rekognition", REPO / "chalicelib" / "aws" / "rekognition.py"),
    ("dynamodb", REPO / "chalicelib" / "aws" / "dynamodb.py"),
    ("dynamodb", REPO / "chalicelib" / "aws" / "state.py"),
    ("s3", REPO / "chalicelib" / "aws" / "s3.py"),
    ("sqs", REPO / "chalicelib" / "aws" / "sqs.py"),
]
# Client methods whose IAM action is not their own name.
IAM_ACTION = {
    "apigateway:GetApiKey": "apigateway:GET",  # API Gateway's actions are HTTP verbs on its resources
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",  # HeadBucket has no action of its own
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:GeneratePresignedUrl": "s3:GetObject",  # the link is signed with the function's role
    "s3:CopyObject": "s3:PutObject",  # and GetObject(Version) on its source: an erasure copies a photo onto itself
    # A transaction's updates need the UpdateItem permission (there is no action of its own).
    "dynamodb:TransactWriteItems": "dynamodb:UpdateItem",
    # SQS's batch calls need the permission of the single one.
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# Actions a call needs beyond its own: IndexFaces reads the S3 version it is
# given with the caller's rights, and DeleteObjects removes versions; the
# workers' SQS event source polls the queue (and deletes what they are done
# with) with the function's role.
IMPLIED = {"s3:GetObjectVersion", "s3:DeleteObjectVersion", "sqs:ReceiveMessage", "sqs:DeleteMessage"}
LOGS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


def _called_actions() -> set[str]:
    """Every `self._client.<method>(...)` (and `self._paced...`, the client
    of the paced calls) in the adapters, as IAM actions."""
    actions = set()
    for service, path in ADAPTERS:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr in ("_client", "_paced")
            ):
                name = "".join(part.capitalize() for part in node.func.attr.split("_"))
                action = f"{service}:{name}"
                actions.add(IAM_ACTION.get(action, action))
    return actions


def _policies(stage: str) -> dict[str, dict]:
    """The stage's policy files by function (as the stage's config names them)."""
    stage_config = json.loads((REPO / ".chalice" / "config.json").read_text())["stages"][stage]
    files = {"api_handler": stage_config["iam_policy_file"]}
    files |= {name: f["iam_policy_file"] for name, f in stage_config["lambda_functions"].items()}
    return {name: json.loads((REPO / ".chalice" / file).read_text()) for name, file in files.items()}


def _policy_actions(policy: dict) -> list[str]:
    return [action for statement in policy["Statement"] for action in statement["Action"]]


def test_the_adapters_call_what_the_policies_are_checked_against():
    assert {"rekognition:IndexFaces", "dynamodb:BatchGetItem", "s3:PutObject", "s3:ListBucket"} <= _called_actions()


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_policies_grant_together_exactly_the_actions_the_code_calls(stage):
    granted = set()
    for policy in _policies(stage).values():
        actions = _policy_actions(policy)
        assert not [a for a in actions if "*" in a]
        assert len(actions) == len(set(actions))
        granted |= set(actions)
    assert granted == _called_actions() | IMPLIED | LOGS


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_function_has_a_role_of_its_own_with_only_what_its_job_needs(stage):
    """tests/api/test_aws_roles.py checks each grants what its function calls."""
    actions = {name: set(_policy_actions(policy)) for name, policy in _policies(stage).items()}
    assert "rekognition:IndexFaces" not in actions["api_handler"]
    assert not {"sqs:ReceiveMessage", "sqs:DeleteMessage"} & actions["api_handler"]
    assert {"apigateway:GET"} == {a for name in actions for a in actions[name] if a.startswith("apigateway:")}
    assert "apigateway:GET" in actions["api_handler"]
    searches = {"rekognition:DetectFaces", "rekognition:SearchFacesByImage", "rekognition:CompareFaces"}
    assert not searches & (actions["index_queued_photos"] | actions["check_archive"] | actions["redrive_pending"])
    assert not {a for a in actions["index_queued_photos"] if a.startswith("s3:") and "Get" not in a and "List" not in a}
    assert {a.split(":")[0] for a in actions["redrive_pending"]} == {"logs", "dynamodb", "sqs"}
    assert not {"sqs:ReceiveMessage", "sqs:DeleteMessage"} & actions["check_archive"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stage_uses_its_policy_files(stage):
    config = json.loads((REPO / ".chalice" / "config.json").read_text())["stages"][stage]
    assert config["autogen_policy"] is False
    assert config["iam_policy_file"] == f"policy-{stage}.json"
    roles = {name: f["iam_policy_file"] for name, f in config["lambda_functions"].items()}
    assert roles == {
        "index_queued_photos": f"policy-{stage}-index.json",
        "redrive_pending": f"policy-{stage}-redrive.json",
        "check_archive": f"policy-{stage}-check.json",
    }


@pytest.fixture
def aws(monkeypatch):
    """Moto S3, DynamoDB, API Gateway and Route53 plus the Rekognition fake,
    as `main` gets them from boto3."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(UsagePlan, "apply_patch_operations", _remove_stages_by_name(UsagePlan.apply_patch_operations))
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        clients = {
            "s3": s3,
            "dynamodb": boto3.client("dynamodb", region_name=REGION),
            "rekognition": FakeRekognition(s3),
            "apigateway": boto3.client("apigateway", region_name=REGION),
            "route53": boto3.client("route53", region_name=REGION),
            "sqs": boto3.client("sqs", region_name=REGION),
            "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
            "logs": boto3.client("logs", region_name=REGION),
        }
        indexing = {name: clients[name] for name in ("sqs", "cloudwatch", "apigateway", "logs")}
        yield SimpleNamespace(**clients, indexing=indexing, factory=lambda: (REGION, clients.__getitem__))


def _remove_stages_by_name(apply):
    """moto 5.2 removes a usage plan's API stage only when it has no method
    throttles (it compares whole entries); API Gateway removes it by its
    API id and stage name, whatever its throttles."""

    def patched(plan, patch_operations):
        for op in patch_operations:
            if op["op"] == "remove" and op["path"] == "/apiStages":
                api_id, stage = op["value"].split(":")
                plan.api_stages = [s for s in plan.api_stages if (s["apiId"], s["stage"]) != (api_id, stage)]
        return apply(plan, [op for op in patch_operations if not (op["op"] == "remove" and op["path"] == "/apiStages")])

    return patched


def _dev_settings():
    setup = load_setup_script()
    return setup, setup.stage_settings(setup.stage_environment("dev"))


def _index(dynamodb, table: str, name: str) -> dict | None:
    indexes = dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
    return next((index for index in indexes if index["IndexName"] == name), None)


def _due_keys(dynamodb, table: str) -> list[str]:
    items = dynamodb.scan(TableName=table, IndexName="due")["Items"]
    return sorted(item["key"]["S"] for item in items)


class _NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_setup_is_idempotent_and_teardown_removes_every_version(aws):
    setup, settings = _dev_settings()
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    first = len(said)
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    again = said[first:]
    # The bucket, three tables, the collection, two queues, three alarms; the bucket already sends to the queue.
    assert sum("already exists" in line for line in again) == 10
    assert not [line for line in again if line.startswith(("created", "updated", "enabled"))]
    assert sum("enabled versioning" in line for line in said) == 1
    block = aws.s3.get_public_access_block(Bucket=settings.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert len(aws.s3.get_bucket_lifecycle_configuration(Bucket=settings.bucket)["Rules"]) == 1
    assert len(aws.s3.get_bucket_cors(Bucket=settings.bucket)["CORSRules"]) == 1
    # A replaced photo, and a deleted one that leaves a delete marker.
    for body in (b"old", b"new"):
        aws.s3.put_object(Bucket=settings.bucket, Key="a.jpg", Body=body)
    aws.s3.put_object(Bucket=settings.bucket, Key="album/b.jpg", Body=b"x")
    aws.s3.delete_object(Bucket=settings.bucket, Key="album/b.jpg")
    listed = aws.s3.list_object_versions(Bucket=settings.bucket)
    assert len(listed["Versions"]) == 3 and len(listed["DeleteMarkers"]) == 1
    setup.teardown_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    setup.teardown_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert aws.s3.list_buckets()["Buckets"] == []
    assert aws.sqs.list_queues().get("QueueUrls", []) == []
    assert aws.cloudwatch.describe_alarms()["MetricAlarms"] == []
    assert aws.dynamodb.list_tables()["TableNames"] == []
    with pytest.raises(ClientError) as raised:
        aws.rekognition.describe_collection(CollectionId=settings.collection)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_setup_versions_the_bucket_expires_old_versions_and_allows_presigned_downloads(aws):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    assert aws.s3.get_bucket_versioning(Bucket=settings.bucket)["Status"] == "Enabled"
    [rule] = aws.s3.get_bucket_lifecycle_configuration(Bucket=settings.bucket)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": ""}  # every photo, whatever its folder
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert rule["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    [cors] = aws.s3.get_bucket_cors(Bucket=settings.bucket)["CORSRules"]
    assert sorted(cors["AllowedMethods"]) == ["GET", "HEAD"]
    assert cors["AllowedOrigins"] == ["*"] and cors["AllowedHeaders"] == ["*"]
    # Indexing names a version: a photo replaced since its event keeps the old bytes.
    first = aws.s3.put_object(Bucket=settings.bucket, Key="a.jpg", Body=b"first")["VersionId"]
    aws.s3.put_object(Bucket=settings.bucket, Key="a.jpg", Body=b"second")
    old = aws.s3.get_object(Bucket=settings.bucket, Key="a.jpg", VersionId=first)
    assert old["Body"].read() == b"first"


def test_setup_keeps_the_bucket_rules_it_does_not_own(aws):
    setup, settings = _dev_settings()
    aws.s3.create_bucket(Bucket=settings.bucket)
    theirs = {"ID": "archive-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    aws.s3.put_bucket_lifecycle_configuration(Bucket=settings.bucket, LifecycleConfiguration={"Rules": [theirs]})
    their_cors = {"ID": "uploads", "AllowedMethods": ["PUT"], "AllowedOrigins": ["https://app.test"]}
    aws.s3.put_bucket_cors(Bucket=settings.bucket, CORSConfiguration={"CORSRules": [their_cors]})
    for _ in range(2):
        setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    rules = aws.s3.get_bucket_lifecycle_configuration(Bucket=settings.bucket)["Rules"]
    assert sorted(rule["ID"] for rule in rules) == ["archive-logs", "faceprint-old-versions"]
    cors = aws.s3.get_bucket_cors(Bucket=settings.bucket)["CORSRules"]
    assert sorted(rule["ID"] for rule in cors) == ["faceprint-presigned-downloads", "uploads"]


def test_setup_creates_the_images_table_with_an_active_sparse_due_index(aws):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    index = _index(aws.dynamodb, settings.images_table, "due")
    assert index["IndexStatus"] == "ACTIVE"
    assert index["KeySchema"] == [
        {"AttributeName": "dueShard", "KeyType": "HASH"},
        {"AttributeName": "pendingSince", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert _index(aws.dynamodb, settings.images_table, "pending") is None
    assert _index(aws.dynamodb, settings.faces_table, "due") is None
    table = settings.images_table
    due = {"pendingSince": {"S": "2026-11-26T03:00"}, "dueShard": {"S": "1"}}
    aws.dynamodb.put_item(TableName=table, Item={"key": {"S": "late.jpg"}, **due})
    aws.dynamodb.put_item(TableName=table, Item={"key": {"S": "done.jpg"}})
    assert _due_keys(aws.dynamodb, table) == ["late.jpg"]


def test_setup_moves_a_stage_from_the_older_pending_index_to_the_due_index(aws):
    """A stage made before: its due records get their shard, the `due`
    index comes, the older one goes; the re-drive finds what was due."""
    setup, settings = _dev_settings()
    table = settings.images_table
    older = {
        "IndexName": "pending",
        "KeySchema": [{"AttributeName": "pendingSince", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    setup._create_table(aws.dynamodb, table, "key", log=lambda _: None, indexes=(older,))  # how setup made it before
    aws.dynamodb.put_item(TableName=table, Item={"key": {"S": "kept.jpg"}})
    aws.dynamodb.put_item(TableName=table, Item={"key": {"S": "late.jpg"}, "pendingSince": {"S": "2026-11-26T03:00"}})
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert f"gave 1 due record(s) of DynamoDB table {table} their shard of the due index" in said
    assert f"adding index due to DynamoDB table {table}" in said
    assert f"removing the older index pending of DynamoDB table {table}" in said
    assert _index(aws.dynamodb, table, "due")["IndexStatus"] == "ACTIVE"
    assert _due_keys(aws.dynamodb, table) == ["late.jpg"]
    records = DynamoRecordStore(aws.dynamodb, table, settings.faces_table, settings.bucket, settings.people_table)
    assert records.list_pending("2027-01-01T00:00", 10) == ["late.jpg"]
    said.clear()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert not [line for line in said if "index due" in line or "shard" in line]


class _IndexStillCreating:
    """A DynamoDB client whose indexes read CREATING for the first `times` DescribeTable calls that show any."""

    def __init__(self, client, times: int) -> None:
        self._client, self._times = client, times

    def __getattr__(self, name):
        return getattr(self._client, name)

    def describe_table(self, **kwargs):
        described = self._client.describe_table(**kwargs)
        indexes = described["Table"].get("GlobalSecondaryIndexes", [])
        if indexes and self._times > 0:
            self._times -= 1
            for index in indexes:
                index["IndexStatus"] = "CREATING"
        return described


def _queue(aws, name: str) -> dict:
    url = aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return {"url": url, **aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]}


def test_setup_creates_the_indexing_queue_with_its_dead_letter_queue_and_sends_it_the_buckets_events(aws):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    queue, dead = _queue(aws, "faceprint-dev-index"), _queue(aws, "faceprint-dev-index-dead")
    fortnight = str(14 * 24 * 3600)
    assert queue["MessageRetentionPeriod"] == dead["MessageRetentionPeriod"] == fortnight
    assert queue["VisibilityTimeout"] == str(6 * 300)  # six times the workers' timeout, as AWS advises
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dead["QueueArn"], "maxReceiveCount": index_queue.MAX_RECEIVES}
    [allowed] = json.loads(queue["Policy"])["Statement"]
    assert allowed["Principal"] == {"Service": "s3.amazonaws.com"} and allowed["Action"] == "sqs:SendMessage"
    assert allowed["Condition"]["ArnEquals"] == {"aws:SourceArn": f"arn:aws:s3:::{settings.bucket}"}
    assert allowed["Condition"]["StringEquals"] == {"aws:SourceAccount": queue["QueueArn"].split(":")[4]}
    [notification] = aws.s3.get_bucket_notification_configuration(Bucket=settings.bucket)["QueueConfigurations"]
    assert notification["QueueArn"] == queue["QueueArn"]
    assert sorted(notification["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    # What S3 sends there: its test event, then each photo's (moto's carries no versionId nor sequencer).
    aws.s3.put_object(Bucket=settings.bucket, Key="album/a b.jpg", Body=b"x")
    bodies = [m["Body"] for m in aws.sqs.receive_message(QueueUrl=queue["url"], MaxNumberOfMessages=10)["Messages"]]
    events = [event for body in bodies for event in index_queue.decode(body)]
    assert [(e.kind, e.key) for e in events] == [(index_queue.CREATED, "album/a b.jpg")]


def test_setup_replaces_the_old_s3_handler_and_keeps_the_buckets_other_notifications(aws):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    theirs = aws.sqs.create_queue(QueueName="audit")["QueueUrl"]
    theirs_arn = aws.sqs.get_queue_attributes(QueueUrl=theirs, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = "arn:aws:lambda:us-east-1:123456789012:function:faceprint-dev-index_stored_photo"
    aws.s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": function, "Events": ["s3:ObjectCreated:*"]}],
            "QueueConfigurations": [{"Id": "audit", "QueueArn": theirs_arn, "Events": ["s3:ObjectRestore:*"]}],
        },
    )
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert any("no longer invokes index_stored_photo" in line for line in said)
    configuration = aws.s3.get_bucket_notification_configuration(Bucket=settings.bucket)
    assert "LambdaFunctionConfigurations" not in configuration
    assert sorted(c["Id"] for c in configuration["QueueConfigurations"]) == ["audit", "faceprint-index-queue"]
    setup.teardown_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    assert aws.sqs.list_queues()["QueueUrls"] == [theirs]


def test_setup_creates_the_alarms_on_dead_letters_stuck_photos_and_a_full_collection_and_keeps_their_actions(aws):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    alarms = {a["AlarmName"]: a for a in aws.cloudwatch.describe_alarms()["MetricAlarms"]}
    dead, pending = alarms["faceprint-dev-index-dead-letters"], alarms["faceprint-dev-index-pending-too-long"]
    assert (dead["Namespace"], dead["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": "faceprint-dev-index-dead"}]
    assert (pending["Namespace"], pending["MetricName"]) == ("Faceprint", "PhotosStuck")  # not a long backlog
    assert pending["Dimensions"] == [{"Name": "Stage", "Value": "dev"}]
    for alarm in (dead, pending):
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0.0)
    full = alarms["faceprint-dev-nearly-full"]
    assert (full["MetricName"], full["Statistic"], full["ComparisonOperator"]) == (
        "CollectionFacesLeft",
        "Minimum",
        "LessThanThreshold",
    )
    assert full["Threshold"] == 0.05 * settings.collection_faces == 500_000
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    aws.cloudwatch.put_metric_alarm(
        **{k: dead[k] for k in setup_alarm_fields(dead)}, AlarmActions=[topic], Threshold=5.0
    )
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert "updated CloudWatch alarm faceprint-dev-index-dead-letters" in said
    dead = aws.cloudwatch.describe_alarms(AlarmNames=["faceprint-dev-index-dead-letters"])["MetricAlarms"][0]
    assert dead["Threshold"] == 0.0 and dead["AlarmActions"] == [topic]


def setup_alarm_fields(alarm: dict) -> list[str]:
    fields = ("AlarmName", "Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods")
    return [*fields, "ComparisonOperator", "TreatMissingData"]


def _deploy_api(aws, name: str = "faceprint") -> str:
    """What `chalice deploy` makes: a REST API with the stage `api`."""
    api = aws.apigateway.create_rest_api(name=name)["id"]
    root = aws.apigateway.get_resources(restApiId=api)["items"][0]["id"]
    aws.apigateway.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    aws.apigateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    aws.apigateway.create_deployment(restApiId=api, stageName="api")
    return api


def test_setup_makes_the_usage_plan_and_key_once_the_api_is_deployed(aws, tmp_path):
    setup, settings = _dev_settings()
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert any("has no API yet" in line and "run this again" in line for line in said)
    assert aws.apigateway.get_usage_plans()["items"] == []
    api = _deploy_api(aws)
    said.clear()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    [plan] = aws.apigateway.get_usage_plans()["items"]
    assert plan["name"] == "faceprint-dev-plan"
    [stage] = plan["apiStages"]
    assert (stage["apiId"], stage["stage"]) == (api, "api")
    searches = {"/search/POST", "/search/PUT", "/search/people/POST", "/search/people/PUT"}
    searches |= {"/faces/{face_id}/matches/GET", "/compare/POST", "/people/suggestions/POST"}
    assert set(stage["throttle"]) == searches
    assert {(t["rateLimit"], t["burstLimit"]) for t in stage["throttle"].values()} == {(5.0, 5)}  # FACEPRINT_SEARCH_TPS
    assert plan["throttle"] == {"rateLimit": 50.0, "burstLimit": 100}
    # A steady load at the plan's rate cannot use up the month's quota.
    assert plan["quota"]["period"] == "MONTH" and plan["quota"]["limit"] >= 50 * 31 * 24 * 3600
    keys = aws.apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert sorted(key["name"] for key in keys) == ["faceprint-dev-admin", "faceprint-dev-read", "faceprint-dev-write"]
    for key in keys:
        tags = aws.apigateway.get_api_key(apiKey=key["id"])["tags"]
        assert tags == {"faceprint:scope": key["name"].rsplit("-", 1)[1]}
    assert sum("get-api-key" in line for line in said) == 3
    # Again: nothing changes. With another FACEPRINT_SEARCH_TPS: the plan is replaced, the keys kept.
    said.clear()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert "API usage plan faceprint-dev-plan already exists" in said
    faster = replace(settings, search_tps=50.0)
    setup.create_stage(faster, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    [plan] = aws.apigateway.get_usage_plans()["items"]
    assert {t["rateLimit"] for t in plan["apiStages"][0]["throttle"].values()} == {50.0}
    kept = aws.apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert sorted(k["id"] for k in kept) == sorted(k["id"] for k in keys)
    setup.teardown_stage(faster, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    assert aws.apigateway.get_usage_plans()["items"] == [] and aws.apigateway.get_api_keys()["items"] == []


def test_the_stages_key_from_before_scopes_becomes_an_admin_key_until_it_is_deleted(aws, monkeypatch):
    """Its clients keep working: it stays on the plan, tagged admin, and the script says to retire it."""
    setup, settings = _dev_settings()
    _deploy_api(aws)
    old = aws.apigateway.create_api_key(name="faceprint-dev-key", enabled=True)
    tagged = {}
    # moto 5.2 tags no API key (TagResource answers NotFound for /apikeys/...): record what API Gateway would set.
    monkeypatch.setattr(aws.apigateway, "tag_resource", lambda resourceArn, tags: tagged.update({resourceArn: tags}))
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    assert tagged == {f"arn:aws:apigateway:{REGION}::/apikeys/{old['id']}": {"faceprint:scope": "admin"}}
    assert any("faceprint-dev-key" in line and "admin key" in line and "delete" in line for line in said)
    [plan] = aws.apigateway.get_usage_plans()["items"]
    assert old["id"] in {k["id"] for k in aws.apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
    setup.teardown_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    assert aws.apigateway.get_api_keys()["items"] == []


def test_setup_makes_the_bucket_refuse_requests_without_tls_and_keeps_other_statements(aws):
    setup, settings = _dev_settings()
    said = []
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    [statement] = json.loads(aws.s3.get_bucket_policy(Bucket=settings.bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [f"arn:aws:s3:::{settings.bucket}", f"arn:aws:s3:::{settings.bucket}/*"]
    theirs = {
        "Sid": "someone-elses",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteBucket",
        "Resource": f"arn:aws:s3:::{settings.bucket}",
    }
    aws.s3.put_bucket_policy(
        Bucket=settings.bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [theirs]})
    )
    said.clear()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=said.append)
    statements = json.loads(aws.s3.get_bucket_policy(Bucket=settings.bucket)["Policy"])["Statement"]
    assert [st["Sid"] for st in statements] == ["someone-elses", "faceprint-tls-only"]
    assert sum("refuses requests made without TLS" in line for line in said) == 1


def test_setup_takes_the_api_chalice_recorded_when_several_share_the_apps_name(aws, tmp_path):
    setup = load_setup_script()
    chalice_dir = _own_chalice_dir(tmp_path, stage="dev")
    _deploy_api(aws)
    ours = _deploy_api(aws)
    with pytest.raises(ConfigurationError, match="2 APIs are named 'faceprint'"):
        setup.deployed_api_id("dev", aws.apigateway, chalice_dir)
    deployed = {"resources": [{"name": "rest_api", "resource_type": "rest_api", "rest_api_id": ours}]}
    (chalice_dir / "deployed").mkdir()
    (chalice_dir / "deployed" / "dev.json").write_text(json.dumps(deployed))
    assert setup.deployed_api_id("dev", aws.apigateway, chalice_dir) == ours


def test_the_workers_timeout_leaves_room_for_a_batch_at_any_pace():
    setup = load_setup_script()
    for stage in ("dev", "prod"):
        settings = setup.stage_settings(setup.stage_environment(stage))
        timeout = setup.worker_timeout(stage)
        assert timeout - index_queue.RESERVE_SECONDS >= index_queue.BATCH_SIZE * settings.index_interval


def test_setup_waits_until_the_new_index_is_active(aws):
    setup, settings = _dev_settings()
    setup._create_table(aws.dynamodb, settings.images_table, "key", log=lambda _: None)
    slept, said = [], []
    dynamodb = _IndexStillCreating(aws.dynamodb, times=3)
    setup.create_stage(settings, aws.s3, dynamodb, aws.rekognition, **aws.indexing, log=said.append, sleep=slept.append)
    assert len(slept) == 3
    assert sum("waiting for index due" in line for line in said) == 1


def test_setup_stops_with_a_clear_error_when_the_index_stays_creating(aws):
    setup, settings = _dev_settings()
    dynamodb = _IndexStillCreating(aws.dynamodb, times=10**6)
    with pytest.raises(ConfigurationError, match="index due of DynamoDB table .* is CREATING"):
        setup.create_stage(
            settings, aws.s3, dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None, sleep=lambda _: None
        )


def test_teardown_with_yes_needs_no_terminal(aws, capsys):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    aws.s3.put_object(Bucket=settings.bucket, Key="a.jpg", Body=b"x")
    assert setup.main(["teardown", "--stage", "dev", "--yes"], clients=aws.factory, stdin=_NotATerminal()) == 0
    assert aws.s3.list_buckets()["Buckets"] == []
    assert aws.dynamodb.list_tables()["TableNames"] == []
    assert "deleted S3 bucket" in capsys.readouterr().out


def test_teardown_without_yes_and_without_a_terminal_refuses_and_deletes_nothing(aws, capsys):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    assert setup.main(["teardown", "--stage", "dev"], clients=aws.factory, stdin=_NotATerminal("dev\n")) == 2
    assert "no terminal" in capsys.readouterr().err
    assert [b["Name"] for b in aws.s3.list_buckets()["Buckets"]] == [settings.bucket]
    assert len(aws.dynamodb.list_tables()["TableNames"]) == 3


def test_the_teardown_command_without_a_terminal_says_to_pass_yes():
    """What `make aws-teardown` does in CI or a pipe: no traceback from input()."""
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.ops.aws_setup", "teardown", "--stage", "dev"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, **AWS_ENV},
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--yes" in done.stderr and "YES=1" in done.stderr


def test_teardown_at_a_terminal_deletes_only_once_the_stage_name_is_typed(aws, capsys):
    setup, settings = _dev_settings()
    setup.create_stage(settings, aws.s3, aws.dynamodb, aws.rekognition, **aws.indexing, log=lambda _: None)
    assert setup.main(["teardown", "--stage", "dev"], clients=aws.factory, stdin=_Terminal("yes\n")) == 1
    assert "Nothing deleted" in capsys.readouterr().out
    assert len(aws.dynamodb.list_tables()["TableNames"]) == 3
    assert setup.main(["teardown", "--stage", "dev"], clients=aws.factory, stdin=_Terminal("dev\n")) == 0
    assert aws.dynamodb.list_tables()["TableNames"] == []


def test_make_passes_yes_and_the_hosted_zone_to_the_script():
    def command(*args: str) -> str:
        done = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return [line for line in done.stdout.splitlines() if "chalicelib.ops.aws_setup" in line][-1]

    assert command("aws-teardown", "STAGE=dev", "YES=1").split()[-3:] == ["--stage", "dev", "--yes"]
    assert "--yes" not in command("aws-teardown", "STAGE=dev")
    assert command("aws-setup", "STAGE=prod", "HOSTED_ZONE=Z123").split()[-4:] == [
        "--stage",
        "prod",
        "--hosted-zone",
        "Z123",
    ]


# A stage with a custom domain: the guide's snippet, made someone's own.
DOMAIN = "faces.faceprint-demo.net"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def _guide_domain_snippet() -> dict:
    """The JSON the guide tells you to add to a stage for a custom domain."""
    guide = (REPO / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", guide, re.S)
    [snippet] = [json.loads(block) for block in blocks if "api_gateway_custom_domain" in block]
    return snippet


def _own_chalice_dir(tmp_path, stage: str = "prod", **stage_settings) -> Path:
    """A copy of .chalice with the stage's bucket named and `stage_settings` added."""
    chalice_dir = tmp_path / ".chalice"
    shutil.copytree(REPO / ".chalice", chalice_dir, ignore=shutil.ignore_patterns("deployments"))
    for name in ("config.json", *(p.name for p in chalice_dir.glob(f"policy-{stage}*.json"))):
        path = chalice_dir / name
        path.write_text(path.read_text().replace("photos-change-me", "photos-mine"))
    config = json.loads((chalice_dir / "config.json").read_text())
    config["stages"][stage].update(stage_settings)
    (chalice_dir / "config.json").write_text(json.dumps(config, indent=2))
    return chalice_dir


def _own_domain(**changes) -> dict:
    domain = _guide_domain_snippet()["api_gateway_custom_domain"]
    return {**domain, "domain_name": DOMAIN, "certificate_arn": CERTIFICATE, **changes}


def _deploy_domain(aws, regional: bool = False) -> dict:
    """What `chalice deploy` does for the custom domain (Chalice's own call)."""
    if regional:
        return aws.apigateway.create_domain_name(
            domainName=DOMAIN, regionalCertificateArn=CERTIFICATE, endpointConfiguration={"types": ["REGIONAL"]}
        )
    return aws.apigateway.create_domain_name(
        domainName=DOMAIN, certificateArn=CERTIFICATE, endpointConfiguration={"types": ["EDGE"]}
    )


def _a_records(aws, zone_id: str) -> list[dict]:
    records = aws.route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [record for record in records if record["Type"] == "A"]


def _zone(aws, name: str = "faceprint-demo.net") -> str:
    return aws.route53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]


def test_setup_points_the_custom_domain_at_the_api_gateway_domain_once_deployed(aws, tmp_path, capsys):
    setup = load_setup_script()
    chalice_dir = _own_chalice_dir(tmp_path, api_gateway_custom_domain=_own_domain())
    zone = _zone(aws)
    create = ["create", "--stage", "prod", "--hosted-zone", zone]
    # Before `chalice deploy` there is no API Gateway domain to point at.
    assert setup.main(create, clients=aws.factory, chalice_dir=chalice_dir) == 0
    assert "Run this again after the deploy" in capsys.readouterr().out
    assert _a_records(aws, zone) == []
    target = _deploy_domain(aws)
    for _ in range(2):
        assert setup.main(create, clients=aws.factory, chalice_dir=chalice_dir) == 0
    out = capsys.readouterr().out
    assert f"created DNS record {DOMAIN}" in out and f"DNS record {DOMAIN} already points" in out
    [record] = _a_records(aws, zone)
    assert record["Name"].rstrip(".") == DOMAIN
    assert record["AliasTarget"]["DNSName"].rstrip(".") == target["distributionDomainName"]
    assert record["AliasTarget"]["HostedZoneId"] == target["distributionHostedZoneId"]
    # Teardown with the zone removes the record too.
    teardown = ["teardown", "--stage", "prod", "--yes", "--hosted-zone", zone]
    assert setup.main(teardown, clients=aws.factory, chalice_dir=chalice_dir) == 0
    assert _a_records(aws, zone) == []


def test_the_dns_record_follows_the_api_gateway_domain_when_it_is_made_again(aws):
    setup = load_setup_script()
    domain = setup.CustomDomain(DOMAIN, CERTIFICATE, "REGIONAL")
    zone = _zone(aws)
    _deploy_domain(aws)
    assert setup.point_domain_at_api(domain, zone, aws.apigateway, aws.route53, log=lambda _: None)
    aws.apigateway.delete_domain_name(domainName=DOMAIN)  # chalice delete, then deploy as REGIONAL
    target = _deploy_domain(aws, regional=True)
    said = []
    assert setup.point_domain_at_api(domain, zone, aws.apigateway, aws.route53, log=said.append)
    assert said == [f"updated DNS record {DOMAIN} -> {target['regionalDomainName']}"]
    [record] = _a_records(aws, zone)
    assert record["AliasTarget"]["DNSName"].rstrip(".") == target["regionalDomainName"]
    assert record["AliasTarget"]["HostedZoneId"] == target["regionalHostedZoneId"]


def test_setup_leaves_an_a_record_it_did_not_make_and_says_so(aws):
    setup = load_setup_script()
    zone = _zone(aws)
    theirs = {"Name": DOMAIN, "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": "192.0.2.10"}]}
    aws.route53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": theirs}]}
    )
    _deploy_domain(aws)
    domain = setup.CustomDomain(DOMAIN, CERTIFICATE)
    with pytest.raises(ConfigurationError, match="not an alias"):
        setup.point_domain_at_api(domain, zone, aws.apigateway, aws.route53, log=lambda _: None)
    setup.remove_domain_record(domain, zone, aws.route53, log=lambda _: None)
    assert _a_records(aws, zone)[0]["ResourceRecords"] == [{"Value": "192.0.2.10"}]


def test_setup_refuses_a_hosted_zone_that_cannot_hold_the_domain(aws):
    setup = load_setup_script()
    domain = setup.CustomDomain(DOMAIN, CERTIFICATE)
    with pytest.raises(ConfigurationError, match="cannot hold"):
        setup.point_domain_at_api(domain, _zone(aws, "elsewhere.net"), aws.apigateway, aws.route53)
    with pytest.raises(ConfigurationError, match="No Route53 hosted zone"):
        setup.point_domain_at_api(domain, "ZNOSUCHZONE", aws.apigateway, aws.route53)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"domain_name": None}, "example domain_name"),  # the guide's snippet as it stands
        ({"certificate_arn": None}, "example certificate_arn"),
        ({"certificate_arn": "my-certificate"}, "not an ACM certificate ARN"),
        ({"certificate_arn": CERTIFICATE.replace("us-east-1", "eu-west-1")}, "needs its certificate in us-east-1"),
    ],
)
def test_setup_refuses_a_custom_domain_still_a_placeholder_or_unusable(aws, tmp_path, capsys, changes, complaint):
    setup = load_setup_script()
    snippet = _guide_domain_snippet()["api_gateway_custom_domain"]
    domain = _own_domain(**{name: value or snippet[name] for name, value in changes.items()})
    chalice_dir = _own_chalice_dir(tmp_path, api_gateway_custom_domain=domain)
    assert setup.main(["create", "--stage", "prod"], clients=aws.factory, chalice_dir=chalice_dir) == 2
    assert complaint in capsys.readouterr().err
    assert aws.s3.list_buckets()["Buckets"] == []  # refused before creating anything


def test_setup_refuses_a_regional_certificate_from_another_region(aws, tmp_path, capsys):
    setup = load_setup_script()
    domain = _own_domain(certificate_arn=CERTIFICATE.replace("us-east-1", "eu-west-1"))
    chalice_dir = _own_chalice_dir(tmp_path, api_gateway_custom_domain=domain, api_gateway_endpoint_type="REGIONAL")
    assert setup.main(["create", "--stage", "prod"], clients=aws.factory, chalice_dir=chalice_dir) == 2
    assert "in its own region (us-east-1)" in capsys.readouterr().err


def test_a_hosted_zone_for_a_stage_without_a_custom_domain_is_refused(aws, tmp_path, capsys):
    setup = load_setup_script()
    chalice_dir = _own_chalice_dir(tmp_path)
    create = ["create", "--stage", "prod", "--hosted-zone", "Z123"]
    assert setup.main(create, clients=aws.factory, chalice_dir=chalice_dir) == 2
    assert "has no api_gateway_custom_domain" in capsys.readouterr().err


def test_setup_refuses_the_placeholder_bucket_name_and_says_where_to_change_it():
    setup = load_setup_script()
    settings = setup.stage_settings(setup.stage_environment("dev"))
    with pytest.raises(ConfigurationError, match="FACEPRINT_BUCKET"):
        setup.check_policy(settings)


def test_setup_checks_the_policy_names_the_stage_resources(tmp_path):
    setup = load_setup_script()
    shutil.copytree(REPO / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    for name in ("config.json", "policy-dev.json"):
        path = tmp_path / ".chalice" / name
        path.write_text(path.read_text().replace("photos-change-me", "photos-mine"))
    settings = setup.stage_settings(setup.stage_environment("dev", tmp_path / ".chalice"))
    # The functions' own roles still name the placeholder bucket.
    with pytest.raises(
        ConfigurationError, match=r"policy-dev-index\.json, \.chalice/policy-dev-check\.json name another"
    ):
        setup.check_policy(settings, tmp_path / ".chalice")
    for name in ("policy-dev-index.json", "policy-dev-check.json"):
        path = tmp_path / ".chalice" / name
        path.write_text(path.read_text().replace("photos-change-me", "photos-mine"))
    setup.check_policy(settings, tmp_path / ".chalice")
    policy = tmp_path / ".chalice" / "policy-dev.json"
    policy.write_text(policy.read_text().replace("faceprint-dev-faces", "faceprint-other-faces"))
    with pytest.raises(ConfigurationError, match="faces table"):
        setup.check_policy(settings, tmp_path / ".chalice")


def _package(tmp_path, stage: str, chalice_dir: Path = REPO / ".chalice") -> dict:
    """`chalice package --pkg-format terraform` of the app's code and a
    configuration, with no network (pip may not reach an index); the
    Lambda's third-party wheels are `make package-terraform`'s concern."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "app.py", project)
    shutil.copytree(REPO / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(chalice_dir, project / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    (project / "requirements.txt").write_text("")
    env = {
        **os.environ,
        **AWS_ENV,
        "PIP_NO_INDEX": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    chalice = Path(sys.executable).parent / "chalice"
    command = [str(chalice) if chalice.exists() else "chalice", "package", "--pkg-format", "terraform"]
    done = subprocess.run(
        [*command, "--stage", stage, str(tmp_path / "out")], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "out" / "chalice.tf.json").read_text())


def test_chalice_packages_the_dev_stage_for_terraform_offline(tmp_path):
    """The Terraform has the three functions, the indexing workers' event
    source on the stage's queue (at most the workers the stage's pace
    allows), API-key-protected routes and the hand-written policy."""
    terraform = _package(tmp_path, "dev")
    resources = terraform["resource"]
    functions = resources["aws_lambda_function"]
    assert set(functions) == {"api_handler", "index_queued_photos", "redrive_pending", "check_archive"}
    schedules = {rule["schedule_expression"] for rule in resources["aws_cloudwatch_event_rule"].values()}
    assert schedules == {
        "rate(1 minute)",
        "rate(1 hour)",
    }  # the re-drive (index_queue.REDRIVE_EVERY_SECONDS), the check
    assert (functions["check_archive"]["memory_size"], functions["check_archive"]["timeout"]) == (1024, 900)
    assert functions["api_handler"]["environment"]["variables"]["FACEPRINT_ENGINE"] == "rekognition"
    [source] = resources["aws_lambda_event_source_mapping"].values()
    assert source["event_source_arn"].endswith(":faceprint-dev-index")
    assert source["function_name"] == "${aws_lambda_function.index_queued_photos.arn}"
    assert source["batch_size"] == index_queue.BATCH_SIZE
    settings = Settings.from_env(functions["index_queued_photos"]["environment"]["variables"])
    assert source["scaling_config"] == {"maximum_concurrency": settings.workers} == {"maximum_concurrency": 10}
    timeout = functions["index_queued_photos"]["timeout"]
    assert timeout == load_setup_script().worker_timeout("dev") == 300
    assert timeout - index_queue.RESERVE_SECONDS >= index_queue.BATCH_SIZE * settings.index_interval
    assert "aws_s3_bucket_notification" not in resources  # make aws-setup sends the bucket's events to the queue
    # A role per function, each with its own policy file's statements.
    roles = {name: f["role"] for name, f in functions.items()}
    assert roles == {name: f"${{aws_iam_role.{name}_role.arn}}" for name in functions}
    policies = {
        name.removesuffix("_role"): json.dumps(policy["policy"])
        for name, policy in resources["aws_iam_role_policy"].items()
    }
    assert "rekognition:IndexFaces" in policies["index_queued_photos"]
    assert "rekognition:IndexFaces" not in policies["api_handler"] and "apigateway:GET" in policies["api_handler"]
    assert "rekognition:" not in policies["redrive_pending"]
    swagger = json.loads(terraform["locals"]["chalice_api_swagger"])
    assert "api_key" in swagger["securityDefinitions"]
    guarded = [
        op for path in swagger["paths"].values() for op in path.values() if op.get("security") == [{"api_key": []}]
    ]
    assert len(guarded) >= 6  # PUT+POST /index, GET /images, POST+PUT /search, GET /info
    open_routes = {
        (method.upper(), path)
        for path, operations in swagger["paths"].items()
        for method, op in operations.items()
        if "security" not in op
    }
    assert open_routes == {
        ("GET", "/"),
        ("GET", "/console/{name}"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/{name}"),
    }  # as the guide says
    _assert_no_route_is_a_json_404(swagger)
    # API Gateway passes the bytes of every type an upload route takes unchanged (a form's too), as binary.
    assert {"multipart/form-data", "application/x-www-form-urlencoded", "text/plain", "image/jpeg"} <= set(
        swagger["x-amazon-apigateway-binary-media-types"]
    )
    assert "aws_api_gateway_domain_name" not in resources  # a custom domain is opt-in
    # Chalice takes the runtime from the venv's Python: AWS's python3.13 (Amazon Linux 2023).
    assert {f["runtime"] for f in functions.values()} == {"python3.13"}
    # make package-terraform's check of the zip: here, packaged without its
    # wheels, it must say that Pillow and pillow-heif are missing.
    problems, findings = _package_check().check_package(tmp_path / "out", "python3.13")
    assert sorted(problems) == [
        f"{tmp_path / 'out' / 'deployment.zip'}: {name} is missing" for name in ("pillow", "pillow_heif")
    ]
    assert "function index_queued_photos: python3.13" in findings


def _assert_no_route_is_a_json_404(swagger: dict) -> None:
    """API Gateway answers a request for no route itself (403 "Missing
    Authentication Token" by default): the API's document makes it a 404 in
    the API's shape, with the same message as `make run`'s."""
    no_route = swagger["x-amazon-apigateway-gateway-responses"]["MISSING_AUTHENTICATION_TOKEN"]
    assert no_route["statusCode"] == "404"
    body = json.loads(no_route["responseTemplates"]["application/json"])
    assert body == {"error": "NotFound", "message": NO_ROUTE[1]} and "$" not in body["message"]  # nothing substituted


def test_every_type_an_upload_route_takes_is_binary_as_chalice_deploy_requires():
    """chalice deploy refuses a route whose types mix binary and text ones;
    binary, API Gateway passes their bytes unchanged (a form's photo too)."""
    from chalice.deploy.validate import validate_route_content_types

    from app import IMAGE_TYPES, app

    validate_route_content_types(app.routes, app.api.binary_types)
    assert {"multipart/form-data", "application/x-www-form-urlencoded"} <= set(IMAGE_TYPES) <= set(app.api.binary_types)


def test_chalice_deploy_writes_the_gateway_responses_into_the_api_it_puts(monkeypatch):
    """`chalice deploy` replaces the whole API with the document it
    generates (PutRestApi, mode overwrite): the gateway responses are in it."""
    from chalice.deploy import swagger

    from app import app

    monkeypatch.setattr(swagger.SwaggerGenerator, "generate_swagger", swagger.SwaggerGenerator.generate_swagger)
    gateway.add_to_deployed_api()
    _assert_no_route_is_a_json_404(swagger.TemplatedSwaggerGenerator().generate_swagger(app))


def test_chalice_packages_a_stage_with_the_guides_custom_domain_for_terraform(tmp_path):
    chalice_dir = _own_chalice_dir(tmp_path, api_gateway_custom_domain=_own_domain())
    terraform = _package(tmp_path, "prod", chalice_dir)
    resources = terraform["resource"]
    [domain] = resources["aws_api_gateway_domain_name"].values()
    assert domain["domain_name"] == DOMAIN
    assert domain["certificate_arn"] == CERTIFICATE
    assert domain["endpoint_configuration"] == {"types": ["EDGE"]}
    [mapping] = resources["aws_api_gateway_base_path_mapping"].values()
    assert mapping["domain_name"] == DOMAIN
    assert mapping["stage_name"] == "api"
    assert "base_path" not in mapping  # the API at the domain's root: https://<domain>/ is the console
    assert mapping["api_id"] == "${aws_api_gateway_rest_api.rest_api.id}"
    # The record aws-setup makes points where Terraform's outputs say.
    assert "cloudfront_domain_name" in terraform["output"]["AliasDomainName"]["value"]


def _package_check():
    """scripts/check_lambda_package.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("check_lambda_package", REPO / "scripts" / "check_lambda_package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
