"""The offline stage's API key and CORS, as Chalice http middleware.

`chalice local` ignores `api_key_required`, so with FACEPRINT_API_KEY set the
embedded stage checks the `x-api-key` header itself. On the AWS stages API
Gateway checks keys before Lambda runs, and this middleware stays out of the
way. The console page, its static files and the OpenAPI document stay open:
the page must load before it can ask for the key.
"""

import hmac

from chalicelib.api.replies import error_reply
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError, Forbidden

OPEN_ROUTES = frozenset({"/", "/console/{name}", "/openapi.json"})


def require_api_key(event, get_response):
    """403 unless the request carries the offline stage's key (when one is set)."""
    try:
        settings = Settings.from_env()
    except ConfigurationError as e:
        return error_reply(e)
    if settings.engine != "local" or not settings.api_key or event.path in OPEN_ROUTES:
        return get_response(event)
    sent = event.headers.get("x-api-key") or ""
    if not hmac.compare_digest(sent.encode(), settings.api_key.encode()):
        return error_reply(Forbidden("Send the API key in the x-api-key header (FACEPRINT_API_KEY)."))
    return get_response(event)


def allow_origins(event, get_response):
    """Access-Control-Allow-Origin for the configured origins only; none
    when FACEPRINT_CORS_ORIGINS is unset. (Preflight OPTIONS requests never
    reach the app: see README, "Security and limits".)"""
    response = get_response(event)
    origin = (event.headers.get("origin") or "").rstrip("/")
    try:
        allowed = Settings.from_env().cors_origins
    except ConfigurationError:
        return response  # require_api_key has logged it and answered 500
    if origin and origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response
