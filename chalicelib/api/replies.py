"""The one place where errors become HTTP replies: {"error", "message"}
with the error's status. The views (through `json_errors`), Chalice's own
errors (through `reshape_chalice_errors`), the console and the middleware
all answer through it."""

import functools
import logging

from chalice import Response

from chalicelib.core.errors import ConfigurationError, FaceprintError
from chalicelib.core.images import UNSUPPORTED_TYPE_MESSAGE

log = logging.getLogger("faceprint")

MISCONFIGURED = "The server is misconfigured; its log says what to set."
JSON_BODY_MESSAGE = "This route takes a JSON body: send it with Content-Type: application/json."
# What a request for no route gets, from `make run` (ops/serve.py) and from
# API Gateway (api/gateway.py): the commonest cause is a key's `/` unencoded.
NO_ROUTE = (
    "NotFound",
    "No route takes this method and path (GET /openapi.json lists them). A key with a / in it goes in a path "
    "percent-encoded (/images/album%2Fkeanu.jpg) or in its b64: form, the base64url of the key "
    "(/images/b64:YWxidW0va2VhbnUuanBn), which works on AWS too.",
)


def error_reply(error: FaceprintError | ConfigurationError) -> Response:
    if isinstance(error, ConfigurationError):
        log.error("configuration error: %s", error)
        return _json_error(500, "InternalServerError", MISCONFIGURED)
    headers = {"Retry-After": str(error.retry_after_seconds)} if hasattr(error, "retry_after_seconds") else {}
    return _json_error(error.status, error.code, error.message, headers)


def json_errors(view):
    """A view whose project errors become JSON replies."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except (FaceprintError, ConfigurationError) as e:
            return error_reply(e)

    return guarded


def reshape_chalice_errors(app):
    """Chalice http middleware for `app`: Chalice's own errors (415 content
    type, 405 method, 500) use {"Code", "Message"}; give them the API's
    shape. A 415 says what the route takes: JSON, or a photo."""

    def reshape(event, get_response):
        response = get_response(event)
        if response.status_code >= 400 and isinstance(response.body, dict) and "Code" in response.body:
            body = {"error": response.body["Code"], "message": response.body.get("Message", "")}
            if response.status_code == 415:
                body["message"] += ". " + (JSON_BODY_MESSAGE if _takes_json(app, event) else UNSUPPORTED_TYPE_MESSAGE)
            response.body = body
        return response

    return reshape


def _takes_json(app, event) -> bool:
    routes = app.routes.get((getattr(event, "context", None) or {}).get("resourcePath", ""), {})
    route = routes.get(event.method)
    return route is not None and list(route.content_types) == ["application/json"]


def _json_error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(body={"error": code, "message": message}, status_code=status, headers=headers or {})
