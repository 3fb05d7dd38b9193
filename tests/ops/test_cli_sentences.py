"""Every maintenance command run on a mistake ends in one sentence that
says what to do, and a non-zero status: never a traceback, never a
progress bar first. The mistakes a newcomer makes: an AWS stage with no
region or no credentials, a data folder that is a file or cannot be
written."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.photos import REPO, photo_path

MAKE_LINE = re.compile(r"make(\[\d+\])?: \*\*\*")  # make's own line after a failed recipe (make[1] under make test)


def _no_aws(**extra: str) -> dict[str, str]:
    """The environment of a machine where AWS was never set up."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {
        **env,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata to wait for
        **extra,
    }


def _make(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def _said(done: subprocess.CompletedProcess) -> list[str]:
    """What the command itself said on stderr (make's own line left out)."""
    return [line for line in done.stderr.splitlines() if line.strip() and not MAKE_LINE.match(line)]


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "Pictures").mkdir()
    (tmp_path / "Pictures" / "obama.jpg").write_bytes(photo_path("obama.jpg").read_bytes())
    return tmp_path / "Pictures"


COMMANDS = [
    ["import", "DIR={folder}"],
    ["reindex"],
    ["check-consistency"],
    ["check-consistency", "REPAIR=1"],
    ["seed", "FACES=10"],
    ["unseed"],
    ["erase", "PERSON=someone"],
    ["check-erasure", "PERSON=someone"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_an_aws_command_without_a_region_says_so_in_a_sentence(command, folder, tmp_path):
    args = [arg.format(folder=folder) for arg in command]
    done = _make(*args, "STAGE=dev", env=_no_aws(FACEPRINT_DATA_DIR=str(tmp_path / "data")))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = _said(done)  # and no progress line before it
    assert line.startswith("Stage 'dev' is on AWS: No AWS region is set.") and "AWS_DEFAULT_REGION=" in line


@pytest.mark.parametrize("command", COMMANDS[:3], ids=lambda c: " ".join(c))
def test_an_aws_command_without_credentials_says_so_in_a_sentence(command, folder, tmp_path):
    args = [arg.format(folder=folder) for arg in command]
    env = _no_aws(AWS_DEFAULT_REGION="eu-west-1", FACEPRINT_DATA_DIR=str(tmp_path / "data"))
    done = _make(*args, "STAGE=dev", env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = _said(done)
    assert line.startswith("Stage 'dev' is on AWS: No AWS credentials were found") and "aws configure" in line


def test_backup_of_an_aws_stage_says_where_its_backups_are_before_asking_for_credentials(tmp_path):
    done = _make("backup", "STAGE=dev", env=_no_aws(FACEPRINT_DATA_DIR=str(tmp_path / "data")))
    assert done.returncode == 2
    (line,) = _said(done)
    assert line.startswith("make backup is for the embedded stage") and "point-in-time recovery" in line


def test_doctor_of_an_aws_stage_without_a_region_says_what_to_fix(tmp_path):
    done = _make("doctor", "STAGE=dev", env=_no_aws(FACEPRINT_DATA_DIR=str(tmp_path / "data")))
    assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
    assert "FIX  region: none is set." in done.stdout


@pytest.mark.parametrize("command", [["import", "DIR={folder}"], ["reindex"], ["check-consistency"], ["backup"]])
@pytest.mark.parametrize("data", ["a file", "under a file"])
def test_a_data_folder_that_is_a_file_is_refused_in_a_sentence(command, data, folder, tmp_path):
    (tmp_path / "data").write_text("not a folder")
    where = tmp_path / "data" if data == "a file" else tmp_path / "data" / "faceprint"
    args = [arg.format(folder=folder) for arg in command]
    done = _make(*args, env={**os.environ, "FACEPRINT_DATA_DIR": str(where), "TO": str(tmp_path / "backup")})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = _said(done)
    assert line.startswith(f"The data folder, FACEPRINT_DATA_DIR={where}, is ") and "name a folder" in line
