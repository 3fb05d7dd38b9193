"""`make aws-setup` as a new user first runs it: without credentials, without
a region, with credentials AWS refuses. Each ends in one line that says what
to do, exit status 2, and never a traceback."""

import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from tests.support.aws_env import own_chalice_dir, without_aws
from tests.support.fake_rekognition import load_setup_script
from tests.support.photos import REPO


@pytest.fixture
def no_aws(monkeypatch):
    without_aws(monkeypatch)


@pytest.fixture
def own_stage(tmp_path):
    return own_chalice_dir(tmp_path)


def test_setup_without_a_region_says_how_to_set_one(no_aws, own_stage, capsys):
    setup = load_setup_script()
    assert setup.main(["create", "--stage", "dev"], chalice_dir=own_stage) == 2
    err = capsys.readouterr().err
    assert "No AWS region is set" in err and "AWS_DEFAULT_REGION" in err and "aws configure" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_setup_without_credentials_says_how_to_give_them(no_aws, own_stage, monkeypatch, capsys):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    setup = load_setup_script()
    assert setup.main(["create", "--stage", "dev"], chalice_dir=own_stage) == 2
    err = capsys.readouterr().err
    assert "No AWS credentials were found" in err
    assert "aws configure" in err and "AWS_PROFILE" in err and "AWS_ACCESS_KEY_ID" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_setup_with_a_profile_that_does_not_exist_names_it(no_aws, own_stage, monkeypatch, capsys):
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    setup = load_setup_script()
    assert setup.main(["create", "--stage", "dev"], chalice_dir=own_stage) == 2
    err = capsys.readouterr().err
    assert "nobody" in err and "aws configure --profile" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("code", "says"),
    [("InvalidClientTokenId", "refused the credentials"), ("AccessDenied", "Prerequisites")],
)
def test_credentials_aws_refuses_are_explained(own_stage, capsys, code, says):
    def refusing(name):
        class Client:
            def __getattr__(self, operation):
                def call(**kwargs):
                    raise ClientError({"Error": {"Code": code, "Message": "no"}}, operation)

                return call

        return Client()

    setup = load_setup_script()
    assert setup.main(["create", "--stage", "dev"], clients=lambda: ("eu-west-1", refusing), chalice_dir=own_stage) == 2
    err = capsys.readouterr().err
    assert says in err and code in err and "Traceback" not in err


def test_the_script_explains_itself():
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.ops.aws_setup", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0
    for hint in ("aws configure", "AWS_PROFILE", "AWS_DEFAULT_REGION", "make doctor", "exit status"):
        assert hint in done.stdout
