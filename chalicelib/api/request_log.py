"""One JSON line per request on stderr (Chalice http middleware), and one in
the audit log.

The request's line names its route template (`/people/{person_id}`), never
the path itself, its query string, a photo key, a person id, a name or any
metadata: those logs go wherever the operator's logs go, for as long as
they are kept. FACEPRINT_DEBUG adds the request's headers (never the API
key, cookies or the `x-amz-meta-*` metadata) and its query's parameter names.

The audit log (core/ports.py AuditLog: its own file or log group, with its
own retention) says who asked (the API key's id on AWS; "local", or the
local key's fingerprint, offline), which route, the ids in the path, and
the ids that came back: face ids, person ids and image keys. The local
server's own access log (`chalice local` prints a line per request) is
made to print the route template too (quiet_access_log)."""

import hashlib
import time
import uuid
from http import HTTPStatus

from chalicelib.api import context
from chalicelib.core import logs
from chalicelib.core.records import now

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "cookie", "referer"})
METADATA_PREFIX = "x-amz-meta-"
# Not audited: the console's page and files, the API's description.
UNAUDITED = frozenset({"/", "/console/{name}", "/openapi.json"})
# The reply fields whose values are ids worth auditing, by kind.
_ID_FIELDS = {"FaceId": "faces", "personId": "people", "UserId": "people", "imageKey": "images", "key": "images"}
MAX_IDS = 100  # per kind and line; `more` counts the rest


def log_requests(event, get_response):
    """The request's line once its reply is known; indexing runs started by
    the request name it (logs.request_id)."""
    started = time.perf_counter()
    request_id = event.context.get("requestId") or str(uuid.uuid4())
    token = logs.request_id.set(request_id)
    status: int | None = 500
    response = None
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
            "route": event.path,
            "status": status,
            "durationMs": logs.ms_since(started),
        }
        if context.settings().debug:
            line["headers"] = {
                k: v
                for k, v in event.headers.items()
                if k.lower() not in SECRET_HEADERS and not k.lower().startswith(METADATA_PREFIX)
            }
            line["query"] = sorted(event.query_params or {})
        logs.write(line)
        if event.path not in UNAUDITED and status is not None:
            _audit(event, request_id, status, response)


def _audit(event, request_id: str, status: int, response) -> None:
    try:
        audit = context.services().audit
    except Exception:  # services that cannot be built answered the request with a 500: nothing was read
        return
    if audit is None:
        return
    line = {
        "at": now(),
        "who": _who(event),
        "method": event.method,
        "route": event.path,
        "asked": dict(event.uri_params or {}),
        "status": status,
        "requestId": request_id,
        "returned": returned_ids(response.body if response is not None else None),
    }
    audit.write(line)


def _who(event) -> str:
    """The API key's id (API Gateway's), else "local" or the local key's fingerprint."""
    key_id = (event.context.get("identity") or {}).get("apiKeyId")
    if key_id:
        return key_id
    key = context.settings().api_key
    return f"local-key:{hashlib.sha256(key.encode()).hexdigest()[:12]}" if key else "local"


def returned_ids(body) -> dict[str, list[str]]:
    """The ids a reply body holds, by kind (faces, people, images)."""
    found: dict[str, dict[str, None]] = {"faces": {}, "people": {}, "images": {}}
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for name, item in value.items():
                if name in _ID_FIELDS and isinstance(item, str):
                    found[_ID_FIELDS[name]][item] = None
                elif isinstance(item, dict | list):
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(reversed(value))
    ids = {}
    for kind, seen in found.items():
        if seen:
            ids[kind] = list(seen)[:MAX_IDS]
            if len(seen) > MAX_IDS:
                ids[f"{kind}More"] = len(seen) - MAX_IDS
    return ids


def quiet_access_log(handler_class) -> None:
    """Make `chalice local`'s request handler print, for each request, its
    route template and status instead of the request line (which holds the
    path and the query string: photo keys, person ids, `?person=`)."""
    from chalice.local import RouteMatcher

    def template(handler) -> str:
        app = handler.local_gateway._app_object  # the app `chalice local` serves
        matcher = app.__dict__.get("_faceprint_routes") or RouteMatcher(list(app.routes))
        app.__dict__["_faceprint_routes"] = matcher
        try:
            return matcher.match_route(getattr(handler, "path", "").split("?", 1)[0]).route
        except ValueError:
            return "(no route)"

    def log_request(self, code="-", size="-") -> None:
        code = code.value if isinstance(code, HTTPStatus) else code
        self.log_message('"%s %s" %s', getattr(self, "command", "-"), template(self), code)

    def log_error(self, format, *args) -> None:
        code = args[0] if args and isinstance(args[0], int) else "-"
        self.log_message("refused a request: %s", code)  # its request line may hold a path: never printed

    handler_class.log_request = log_request
    handler_class.log_error = log_error
