"""CORS for the configured origins only (Chalice http middleware)."""

from chalicelib.api import context


def allow_origins(event, get_response):
    """Access-Control-Allow-Origin for the origins in FACEPRINT_CORS_ORIGINS;
    none when it is unset. (Preflight OPTIONS requests never reach the app
    offline: see docs/security.md.)"""
    response = get_response(event)
    origin = (event.headers.get("origin") or "").rstrip("/")
    if origin and origin in context.settings().cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response
