"""The offline stage's API key, as Chalice http middleware.

`chalice local` ignores `api_key_required`, so with FACEPRINT_API_KEY set the
embedded stage checks the `x-api-key` header itself. On the AWS stages API
Gateway checks keys before Lambda runs, and this middleware stays out of the
way. The console page, its static files and the OpenAPI document stay open:
the page must load before it can ask for the key.
"""

import hmac

from chalicelib.api import context
from chalicelib.api.replies import error_reply
from chalicelib.core.errors import Forbidden

OPEN_ROUTES = frozenset({"/", "/console/{name}", "/openapi.json"})


def require_api_key(event, get_response):
    """403 unless the request carries the offline stage's key (when one is set)."""
    settings = context.settings()
    if settings.engine != "local" or not settings.api_key or event.path in OPEN_ROUTES:
        return get_response(event)
    sent = event.headers.get("x-api-key") or ""
    if not hmac.compare_digest(sent.encode(), settings.api_key.encode()):
        return error_reply(Forbidden("Send the API key in the x-api-key header (FACEPRINT_API_KEY)."))
    return get_response(event)
