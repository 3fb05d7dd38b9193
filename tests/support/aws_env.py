"""An AWS environment as a new user may have it: none at all (no
credentials, no region, no configuration files), or a stage whose names
they have made their own (docs/deploy.md, step 1)."""

import shutil
from pathlib import Path

from tests.support.photos import REPO

NO_AWS = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata service to ask either
}
AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def without_aws(monkeypatch) -> None:
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in NO_AWS.items():
        monkeypatch.setenv(name, value)


def own_chalice_dir(tmp_path: Path) -> Path:
    """A copy of .chalice whose dev bucket is named, as step 1 of the guide has the user do."""
    chalice_dir = tmp_path / ".chalice"
    shutil.copytree(REPO / ".chalice", chalice_dir, ignore=shutil.ignore_patterns("deployments"))
    for name in ("config.json", *(p.name for p in chalice_dir.glob("policy-dev*.json"))):
        path = chalice_dir / name
        path.write_text(path.read_text().replace("photos-change-me", "photos-mine"))
    return chalice_dir
