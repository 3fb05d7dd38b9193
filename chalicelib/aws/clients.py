"""boto3 clients, created on first use, and the one table that turns
botocore error codes into the project's exceptions.

Errors are matched by their code string, never by exception class:
botocore's modelled exception classes belong to one client's session, so a
table of classes built elsewhere silently never matches."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as CallConnectionError

from chalicelib.core import errors
from chalicelib.core.config import AWS_CALL_ATTEMPTS, AWS_CONNECT_TIMEOUT, AWS_READ_TIMEOUT

# botocore retries throttling and 5xx itself first (standard mode, with
# exponential backoff and jitter): MAX_ATTEMPTS attempts in all, the first
# included. (botocore's `max_attempts` counts retries: 4 there would make 5
# attempts; `total_max_attempts` counts attempts.) Only then does a throttle
# reach an API client as 503 + Retry-After, or an indexing worker as
# back-pressure (core/index_queue.py). Each client also has botocore's retry
# quota (500 tokens, 5 a throttled retry): under sustained throttling it
# empties and calls fail on their first attempt.
# botocore retries a call that timed out or could not connect too; when the
# last attempt does, the call is a ServiceUnavailable as a 5xx is. The
# numbers live in core/config.py: the indexing workers keep the worst case
# of one call in reserve (config.worst_call_seconds).
MAX_ATTEMPTS = AWS_CALL_ATTEMPTS
_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=AWS_CONNECT_TIMEOUT,
    read_timeout=AWS_READ_TIMEOUT,
)
# The calls a shared schedule paces (core/pacing.py: IndexFaces, DeleteFaces,
# SearchFacesByImage) are retried by the pacing itself, each attempt on a
# turn of its own (a retry of botocore's would come at any moment, and take
# the turn of another call): their client makes one attempt a call.
_PACED_CONFIG = _CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))
# Download links are signed with SigV4 (the only signature newer regions
# and KMS-encrypted objects accept).
_S3_CONFIG = Config(signature_version="s3v4")

_lock = threading.Lock()
_clients: dict[tuple[str, str | None, bool], object] = {}

THROTTLED = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",  # SQS
        # S3's SlowDown to a HEAD request (HeadObject): a reply to HEAD has no
        # body, so botocore's error code is its bare HTTP status.
        "503",
    }
)
MISSING_OR_FORBIDDEN = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "AccessDenied",
        "NoSuchBucket",
        "UnrecognizedClientException",
        "AWS.SimpleQueueService.NonExistentQueue",  # SQS's JSON protocol; QueueDoesNotExist in the query one
        "QueueDoesNotExist",
    }
)
# A service's own failure (HTTP 5xx that is not a throttle), still there
# after botocore's retries: transient, so a 503 to an API client and a
# failed attempt, with this reason, to indexing. Any other 5xx status counts
# too (a reply to HEAD has no body, so no code).
SERVER_FAILURES = frozenset(
    {"InternalServerError", "InternalFailure", "InternalError", "ServiceUnavailable", "ServiceUnavailableException"}
)
_REJECTED_IMAGES = {
    # The photo was a JPEG or PNG when the API took it (or it was copied
    # into the bucket): Rekognition could not read it, as the embedded
    # engine cannot read a corrupt photo.
    "InvalidImageFormatException": (
        errors.InvalidImage,
        "Rekognition could not read the image: send a complete JPEG or PNG.",
    ),
    "ImageTooLargeException": (
        errors.PayloadTooLarge,
        "The image is larger than Rekognition accepts (5 MB of bytes, 15 MB in S3).",
    ),
    "InvalidS3ObjectException": (
        errors.InvalidImage,
        "Rekognition could not read the stored photo from S3.",
    ),
    "InvalidParameterException": (
        errors.InvalidImage,
        "Rekognition refused the image",
    ),
}


def client(service: str, region: str | None = None, paced: bool = False):
    """One boto3 client per service and region per process (clients are
    thread-safe); boto3 itself is imported only when the first one is made.
    `paced`: the client of the calls a shared schedule paces."""
    key = (service, region, paced)
    with _lock:
        if key not in _clients:
            import boto3

            config = config_for(service, paced)
            _clients[key] = boto3.session.Session().client(service, region_name=region, config=config)
        return _clients[key]


def config_for(service: str, paced: bool = False) -> Config:
    """The botocore configuration every client of `service` gets (`paced`:
    one attempt a call, the pacing retries)."""
    if paced:
        return _PACED_CONFIG
    return _CONFIG.merge(_S3_CONFIG) if service == "s3" else _CONFIG


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def translate(error: ClientError, resource: str, stage: str) -> Exception:
    """The project's exception for a botocore error; the ClientError itself
    when its code means a bug rather than a state the caller can act on."""
    code = error_code(error)
    detail = error.response.get("Error", {}).get("Message", "")
    if code in THROTTLED:
        return errors.Throttled(f"The service is busy ({code}); retry after a pause.")
    if code in SERVER_FAILURES or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
        return errors.ServiceUnavailable(f"{error.operation_name} failed on AWS's side ({code}); retry after a pause.")
    if code in MISSING_OR_FORBIDDEN:
        return errors.ConfigurationError(
            f"{code} on {resource} in stage {stage!r}: create it with `make aws-setup STAGE={stage}` "
            f"and check the stage's policy file grants access ({detail})."
        )
    if code in _REJECTED_IMAGES:
        kind, message = _REJECTED_IMAGES[code]
        return kind(f"{message} ({detail})." if detail else f"{message}.")
    return error


@contextmanager
def translated(resource: str, stage: str) -> Iterator[None]:
    """Run AWS calls on `resource`, raising the project's exceptions."""
    try:
        yield
    except ClientError as e:
        mapped = translate(e, resource, stage)
        if mapped is e:
            raise
        raise mapped from e
    except (HTTPClientError, CallConnectionError) as e:
        # No answer after botocore's attempts (a read timeout, a connection
        # that failed or was closed): the service's failure, as a 5xx is.
        raise errors.ServiceUnavailable(f"{resource} did not answer ({type(e).__name__}); retry after a pause.") from e
