"""`make doctor`: one line per thing a stage needs, ok or FIX with what to
do; with and without AWS credentials; never a traceback."""

import os
import subprocess

import boto3
import pytest
from moto import mock_aws

from tests.support.aws_env import AWS_VARIABLES, NO_AWS, own_chalice_dir, without_aws
from tests.support.fake_rekognition import AWS_ENV, REGION, FakeRekognition, load_setup_script
from tests.support.photos import REPO


def _doctor():
    import importlib.util

    spec = importlib.util.spec_from_file_location("doctor", REPO / "chalicelib" / "ops" / "doctor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lines(out: str) -> dict[str, str]:
    """what -> its status (ok or FIX)."""
    found = {}
    for line in out.splitlines()[1:-1]:
        status, rest = line.split(None, 1)
        found[rest.split(":", 1)[0]] = status
    return found


@pytest.fixture
def own_stage(tmp_path):
    return own_chalice_dir(tmp_path)


def test_the_local_stage_in_order_but_for_the_browser(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    assert _doctor().main(["--stage", "local", "--chromium", str(tmp_path / "no-chromium")]) == 1
    out = capsys.readouterr().out
    assert _lines(out) == {
        "Python": "ok",
        "packages": "ok",
        "the engine's models": "ok",
        "data folder": "ok",
        "test photos": "ok",
        "browser": "FIX",
    }
    assert "apt-get install -y chromium" in out and "no archive yet" in out
    assert out.splitlines()[-1].startswith("5 in order, 1 to fix.")


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_a_data_folder_that_is_a_file_is_a_fix_in_the_sentence_the_commands_say(tmp_path, monkeypatch, capsys, under):
    (tmp_path / "data").write_text("not a folder")
    where = tmp_path / "data" / "faceprint" if under else tmp_path / "data"
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(where))
    assert _doctor().main(["--stage", "local", "--chromium", "/bin/sh"]) == 1
    out = capsys.readouterr().out
    assert _lines(out)["data folder"] == "FIX"
    assert f"FACEPRINT_DATA_DIR={where}, is {'under a file' if under else 'a file'}" in out
    assert (tmp_path / "data").read_text() == "not a folder"  # nothing made or touched


def test_an_aws_stage_without_credentials_says_what_to_do(tmp_path, monkeypatch, capsys):
    without_aws(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert _doctor().main(["--stage", "dev"]) == 1
    out = capsys.readouterr().out
    assert _lines(out)["stage names"] == "FIX" and "Bucket names are global" in out  # the placeholder
    assert _lines(out)["credentials"] == "FIX" and "aws configure" in out and "AWS_PROFILE" in out
    assert "Traceback" not in out


def test_an_aws_stage_set_up_and_deployed_is_in_order(own_stage, tmp_path, monkeypatch, capsys):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    setup = load_setup_script()
    with mock_aws():
        names = ("s3", "dynamodb", "sts", "apigateway", "sqs", "cloudwatch")
        clients = {name: boto3.client(name, region_name=REGION) for name in names}
        clients["rekognition"] = FakeRekognition(clients["s3"])
        doctor = _doctor()
        run = ["--stage", "dev", "--chromium", "/bin/sh"]
        assert doctor.main(run, clients=lambda: (REGION, clients.__getitem__), chalice_dir=own_stage) == 1
        before = _lines(capsys.readouterr().out)
        assert before["bucket"] == before["collection"] == before["API key"] == "FIX"
        settings = setup.stage_settings(setup.stage_environment("dev", own_stage))
        setup.create_stage(
            settings,
            *(clients[name] for name in ("s3", "dynamodb", "rekognition")),
            log=lambda _: None,
            **{name: clients[name] for name in ("sqs", "cloudwatch", "apigateway")},
        )
        clients["apigateway"].create_api_key(name="faceprint-dev-key", enabled=True)
        assert doctor.main(run, clients=lambda: (REGION, clients.__getitem__), chalice_dir=own_stage) == 0
        after = capsys.readouterr().out
        assert set(_lines(after).values()) == {"ok"}
        for what in ("credentials", "region", "bucket", "collection", "API key", f"table {settings.images_table}"):
            assert what in _lines(after)


def test_make_doctor_without_aws_credentials_never_shows_a_traceback(tmp_path):
    env = {name: value for name, value in os.environ.items() if name not in AWS_VARIABLES}
    done = subprocess.run(
        ["make", "--no-print-directory", "doctor", "STAGE=dev"],
        cwd=REPO,
        env={**env, **NO_AWS, "FACEPRINT_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    assert "FIX  region: none is set. Set one: AWS_DEFAULT_REGION=" in done.stdout
