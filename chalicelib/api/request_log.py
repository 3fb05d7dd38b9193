"""One JSON line per request on stderr (Chalice http middleware).
FACEPRINT_DEBUG adds the request's headers and query, never its body,
never the API key."""

import time
import uuid

from chalicelib.api import context
from chalicelib.core import logs

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "cookie"})


def log_requests(event, get_response):
    """The request's line once its reply is known; indexing runs started by
    the request name it (logs.request_id)."""
    started = time.perf_counter()
    request_id = event.context.get("requestId") or str(uuid.uuid4())
    token = logs.request_id.set(request_id)
    status: int | None = 500
    try:
        response = get_response(event)
        status = response.status_code
        return response
    except SystemExit:  # the server is stopping: the request is abandoned, no reply is sent
        status = None
        raise
    finally:
        logs.request_id.reset(token)
        line = {
            "event": "request",
            "requestId": request_id,
            "method": event.method,
            "path": event.context.get("path") or event.path,
            "route": event.path,
            "status": status,
            "durationMs": logs.ms_since(started),
        }
        if context.settings().debug:
            line["headers"] = {k: v for k, v in event.headers.items() if k.lower() not in SECRET_HEADERS}
            line["query"] = dict(event.query_params or {})
        logs.write(line)
