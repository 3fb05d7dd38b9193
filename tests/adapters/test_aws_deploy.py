"""What a deployment rests on: least-privilege policies that match the code,
the setup script, and `chalice package` to Terraform, offline."""

import ast
import importlib.util
import json
import os
import shutil
import subprocess

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.core.errors import ConfigurationError
from tests.support.fake_rekognition import AWS_ENV, REGION, FakeRekognition, load_setup_script
from tests.support.photos import REPO

ADAPTERS = {
    "rekognition": REPO / "chalicelib" / "aws" / "rekognition.py",
    "dynamodb": REPO / "chalicelib" / "aws" / "dynamodb.py",
    "s3": REPO / "chalicelib" / "aws" / "s3.py",
}
# Client methods whose IAM action is not their own name.
IAM_ACTION = {"s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket"}
LOGS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


def _called_actions() -> set[str]:
    """Every `self._client.<method>(...)` in the adapters, as IAM actions."""
    actions = set()
    for service, path in ADAPTERS.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "_client"
            ):
                name = "".join(part.capitalize() for part in node.func.attr.split("_"))
                action = f"{service}:{name}"
                actions.add(IAM_ACTION.get(action, action))
    return actions


def _policy_actions(stage: str) -> list[str]:
    policy = json.loads((REPO / ".chalice" / f"policy-{stage}.json").read_text())
    return [action for statement in policy["Statement"] for action in statement["Action"]]


def test_the_adapters_call_what_the_policies_are_checked_against():
    assert {"rekognition:IndexFaces", "dynamodb:BatchGetItem", "s3:PutObject", "s3:ListBucket"} <= _called_actions()


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_policy_grants_exactly_the_actions_the_code_calls(stage):
    actions = _policy_actions(stage)
    assert not [a for a in actions if "*" in a]
    assert len(actions) == len(set(actions))
    assert set(actions) == _called_actions() | LOGS


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stage_uses_its_policy_file(stage):
    config = json.loads((REPO / ".chalice" / "config.json").read_text())["stages"][stage]
    assert config["autogen_policy"] is False
    assert config["iam_policy_file"] == f"policy-{stage}.json"


def test_setup_is_idempotent_and_teardown_removes_everything(monkeypatch):
    setup = load_setup_script()
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    settings = setup.stage_settings(setup.stage_environment("dev"))
    with mock_aws():
        s3, dynamodb = boto3.client("s3", region_name=REGION), boto3.client("dynamodb", region_name=REGION)
        rekognition = FakeRekognition(s3)
        said = []
        setup.create_stage(settings, s3, dynamodb, rekognition, log=said.append)
        setup.create_stage(settings, s3, dynamodb, rekognition, log=said.append)
        assert sum("already exists" in line for line in said) == 4
        block = s3.get_public_access_block(Bucket=settings.bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        s3.put_object(Bucket=settings.bucket, Key="a.jpg", Body=b"x")
        setup.teardown_stage(settings, s3, dynamodb, rekognition, log=said.append)
        setup.teardown_stage(settings, s3, dynamodb, rekognition, log=said.append)
        assert s3.list_buckets()["Buckets"] == []
        assert dynamodb.list_tables()["TableNames"] == []
        with pytest.raises(ClientError) as raised:
            rekognition.describe_collection(CollectionId=settings.collection)
        assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


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
    setup.check_policy(settings, tmp_path / ".chalice")
    policy = tmp_path / ".chalice" / "policy-dev.json"
    policy.write_text(policy.read_text().replace("faceprint-dev-faces", "faceprint-other-faces"))
    with pytest.raises(ConfigurationError, match="faces table"):
        setup.check_policy(settings, tmp_path / ".chalice")


def test_chalice_packages_the_dev_stage_for_terraform_offline(tmp_path):
    """The app's code and configuration, packaged with no network (pip may
    not reach an index): the Terraform has both functions, the S3 trigger on
    the stage's bucket, API-key-protected routes and the hand-written policy.
    The Lambda's third-party wheels are `make package-terraform`'s concern."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "app.py", project)
    shutil.copytree(REPO / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    (project / "requirements.txt").write_text("")
    env = {
        **os.environ,
        **AWS_ENV,
        "PIP_NO_INDEX": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    chalice = REPO / ".venv" / "bin" / "chalice"
    command = [str(chalice) if chalice.exists() else "chalice", "package", "--pkg-format", "terraform"]
    done = subprocess.run(
        [*command, "--stage", "dev", str(tmp_path / "out")], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    terraform = json.loads((tmp_path / "out" / "chalice.tf.json").read_text())
    resources = terraform["resource"]
    functions = resources["aws_lambda_function"]
    assert set(functions) == {"api_handler", "index_stored_photo"}
    assert functions["api_handler"]["environment"]["variables"]["FACEPRINT_ENGINE"] == "rekognition"
    notification = next(iter(resources["aws_s3_bucket_notification"].values()))
    assert notification["bucket"] == "faceprint-dev-photos-change-me"
    policy = json.dumps(resources["aws_iam_role_policy"])
    assert "rekognition:IndexFaces" in policy
    swagger = json.loads(terraform["locals"]["chalice_api_swagger"])
    assert "api_key" in swagger["securityDefinitions"]
    guarded = [
        op for path in swagger["paths"].values() for op in path.values() if op.get("security") == [{"api_key": []}]
    ]
    assert len(guarded) >= 6  # PUT+POST /index, GET /images, POST+PUT /search, GET /info
    # Chalice takes the runtime from the venv's Python: AWS's python3.13 (Amazon Linux 2023).
    assert {name: f["runtime"] for name, f in functions.items()} == {
        "api_handler": "python3.13",
        "index_stored_photo": "python3.13",
    }
    # make package-terraform's check of the zip: here, packaged without its
    # wheels, it must say that Pillow and pillow-heif are missing.
    problems, findings = _package_check().check_package(tmp_path / "out", "python3.13")
    assert sorted(problems) == [
        f"{tmp_path / 'out' / 'deployment.zip'}: {name} is missing" for name in ("pillow", "pillow_heif")
    ]
    assert "function index_stored_photo: python3.13" in findings


def _package_check():
    """scripts/check_lambda_package.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("check_lambda_package", REPO / "scripts" / "check_lambda_package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
