"""Reaching AWS from a command (make import, reindex, check-consistency,
aws-setup, doctor, ...): whether a region and credentials are there before
any work starts, and what went wrong, in a sentence or two that says what
to do, never a traceback."""

import boto3
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from chalicelib.aws.clients import error_code

CREDENTIALS_HELP = (
    "Give it credentials: `aws configure` (an access key; it asks for a region too), or "
    "`aws sso login --profile NAME` and then AWS_PROFILE=NAME, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY in the environment."
)
REGION_HELP = (
    "Set one: AWS_DEFAULT_REGION=us-east-1 (or another region where Rekognition is offered, e.g. eu-west-1), "
    "`aws configure`, or `region = ...` in your AWS_PROFILE's section of ~/.aws/config."
)
# Codes with which AWS refuses the caller itself, whatever the call.
_REFUSED_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def check_access(region: str | None) -> None:
    """Raise NoRegionError or NoCredentialsError now, before a command
    starts its work, if boto3's usual chain (the environment, AWS_PROFILE,
    ~/.aws) gives no region (unless `region` names one) or no credentials.
    Whether the credentials are accepted is known at the first call."""
    session = boto3.session.Session(region_name=region)
    if not session.region_name:
        raise NoRegionError()
    if session.get_credentials() is None:
        raise NoCredentialsError()


def aws_problem(error: Exception, region: str | None) -> str:
    """What went wrong talking to AWS, and what to do, in a sentence or two:
    never a traceback (no credentials, no region, no network)."""
    if isinstance(error, NoRegionError):
        return f"No AWS region is set. {REGION_HELP}"
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return f"No AWS credentials were found (or only part of them). {CREDENTIALS_HELP}"
    if isinstance(error, ProfileNotFound):
        return f"{error}: create it with `aws configure --profile NAME`, or unset AWS_PROFILE to use the default."
    if isinstance(error, EndpointConnectionError):
        return f"Could not reach AWS ({error}): check the network, and that {region!r} is a real region."
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "")
        operation = getattr(error, "operation_name", "a call")
        if code in _REFUSED_CREDENTIALS:
            return f"AWS refused the credentials ({code}: {message}). {CREDENTIALS_HELP}"
        if code in _DENIED:
            return (
                f"AWS denied {operation} ({code}: {message}): the credentials in use may not create what the stage "
                "needs; see docs/deploy.md, Prerequisites, for the permissions (an administrator profile is simplest)."
            )
        return f"AWS answered {operation} with {code}: {message}"
    return f"{type(error).__name__}: {error}"
