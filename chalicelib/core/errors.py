"""The project's exceptions. Each carries its HTTP status and error code;
app.py turns them into JSON replies in exactly one place."""


class FaceprintError(Exception):
    """Base class: an error the client can act on."""

    status = 400
    code = "BadRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(FaceprintError):
    status, code = 400, "BadRequest"


class Forbidden(FaceprintError):
    status, code = 403, "Forbidden"


class NotFound(FaceprintError):
    status, code = 404, "NotFound"


class MisdirectedRequest(FaceprintError):
    """A request for a host name the server does not answer to (a web page
    whose name was re-pointed at this machine: DNS rebinding)."""

    status, code = 421, "MisdirectedRequest"


class ImageRejected(FaceprintError):
    """The photo itself is unusable. On upload it is refused; a stored photo
    that an engine rejects is recorded with status `failed`."""


class InvalidImage(ImageRejected):
    status, code = 400, "InvalidImage"


class PayloadTooLarge(ImageRejected):
    status, code = 413, "PayloadTooLarge"


class UnsupportedMediaType(ImageRejected):
    status, code = 415, "UnsupportedMediaType"


class ImageTooComplex(ImageRejected):
    """Decoding and detection ran past the per-photo time limit."""

    status, code = 422, "ImageTooComplex"


class ServiceUnavailable(FaceprintError):
    """A backend asked us to slow down; the client may retry after a pause."""

    status, code = 503, "ServiceUnavailable"
    retry_after_seconds = 1


class Throttled(ServiceUnavailable):
    """A service refused a call for its rate quota (after botocore's own
    retries). To an API client it is a 503 like any ServiceUnavailable; to
    indexing it is back-pressure, never a failed attempt."""


class TooManyRequests(FaceprintError):
    """Over a budget the stage keeps itself (its searches' quota): the
    client may retry after `retry_after_seconds`."""

    status, code = 429, "TooManyRequests"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class CollectionFull(ImageRejected):
    """The face collection holds as many faces as the engine allows: new
    photos are refused (and recorded `failed` with this reason) until faces
    are deleted or the limit raised (docs/deploy.md, "A full collection")."""

    status, code = 507, "CollectionFull"


COLLECTION_FULL = (
    "The face collection holds as many faces as it may ({limit}): new photos are refused until faces are "
    "deleted or the limit is raised (docs/deploy.md, 'A full collection')."
)


class ConfigurationError(Exception):
    """The deployment is misconfigured: an operator must fix a setting.
    Never shown to clients in detail (it becomes a 500)."""
