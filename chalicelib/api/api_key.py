"""The offline stage's API key, as Chalice http middleware.

`chalice local` ignores `api_key_required`, so with FACEPRINT_API_KEY set the
embedded stage checks the `x-api-key` header itself. On the AWS stages API
Gateway checks keys before Lambda runs, and this middleware stays out of the
way. The console page, its static files and the OpenAPI document stay open:
the page must load before it can ask for the key.
"""

import hmac
from collections.abc import Mapping

from chalicelib.api import context
from chalicelib.api.replies import error_reply
from chalicelib.core.config import Settings
from chalicelib.core.errors import Forbidden

OPEN_ROUTES = frozenset({"/", "/console/{name}", "/openapi.json"})


def require_api_key(event, get_response):
    """403 unless the request carries the offline stage's key (when one is set)."""
    refused = None if event.path in OPEN_ROUTES else refusal(event.headers, context.settings())
    return error_reply(refused) if refused else get_response(event)


def refusal(headers: Mapping[str, str], settings: Settings) -> Forbidden | None:
    """Why a request with these headers is refused for its key, or None.
    ops/serve.py asks too, before it reads a request's body."""
    if settings.engine != "local" or not settings.api_key:
        return None
    sent = headers.get("x-api-key") or ""
    if not hmac.compare_digest(sent.encode(), settings.api_key.encode()):
        return Forbidden("Send the API key in the x-api-key header (FACEPRINT_API_KEY).")
    return None
