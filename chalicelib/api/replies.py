"""The one place where errors become HTTP replies: {"error", "message"}
with the error's status. app.py's views, the console blueprint and the
middleware all answer through it."""

import logging

from chalice import Response

from chalicelib.core.errors import ConfigurationError, FaceprintError

log = logging.getLogger("faceprint")

MISCONFIGURED = "The server is misconfigured; its log says what to set."


def error_reply(error: FaceprintError | ConfigurationError) -> Response:
    if isinstance(error, ConfigurationError):
        log.error("configuration error: %s", error)
        return _json_error(500, "InternalServerError", MISCONFIGURED)
    headers = {"Retry-After": str(error.retry_after_seconds)} if hasattr(error, "retry_after_seconds") else {}
    return _json_error(error.status, error.code, error.message, headers)


def _json_error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(body={"error": code, "message": message}, status_code=status, headers=headers or {})
