"""One JSON line per request and per indexed photo, on stderr (CloudWatch on
Lambda). FACEPRINT_DEBUG adds the request's headers and query, never its
body, never the API key."""

import json
import logging
import sys
import time
import uuid

from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "cookie"})
INDEX_ROUTE = "/index/{filename}"


class _JsonLines(logging.Handler):
    """The message alone, one line, to whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(record.getMessage() + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            self.handleError(record)


log = logging.getLogger("faceprint.lines")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(_JsonLines())


def log_requests(event, get_response):
    """Chalice http middleware: the request's line once its reply is known."""
    started = time.perf_counter()
    status = 500
    response = None
    try:
        response = get_response(event)
        status = response.status_code
        return response
    finally:
        line = {
            "event": "request",
            "requestId": event.context.get("requestId") or str(uuid.uuid4()),
            "method": event.method,
            "path": event.context.get("path") or event.path,
            "route": event.path,
            "status": status,
            "durationMs": _ms_since(started),
        }
        if _debug():
            line["headers"] = {k: v for k, v in event.headers.items() if k.lower() not in SECRET_HEADERS}
            line["query"] = dict(event.query_params or {})
        _write(line)
        if event.path == INDEX_ROUTE and response is not None and isinstance(response.body, dict):
            image = response.body.get("image")
            # Offline the photo is indexed before the reply; on AWS it is still
            # pending here, and the S3 handler logs its line.
            if image and image.get("status") != "pending":
                log_indexed(image["key"], image, started, line["requestId"])


def log_indexed(key: str, image: dict | None, started: float, request_id: str | None = None) -> None:
    """The line of one indexed photo; `image` is None when it was gone."""
    line = {
        "event": "indexed",
        "key": key,
        "status": image["status"] if image else "gone",
        "faces": image["faceCount"] if image else 0,
        "durationMs": _ms_since(started),
    }
    if request_id:
        line["requestId"] = request_id
    if image and image.get("error"):
        line["error"] = image["error"]
    _write(line)


def _write(line: dict) -> None:
    log.info(json.dumps(line, ensure_ascii=False, separators=(",", ":")))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _debug() -> bool:
    try:
        return Settings.from_env().debug
    except ConfigurationError:
        return False
