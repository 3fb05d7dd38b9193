"""A local server that only the user's own pages reach (Chalice http
middleware; ops/serve.py asks the same questions before it reads a body).

A keyless `make run` listens on loopback, but loopback does not keep
browsers out: a web page whose name is re-pointed at 127.0.0.1 (DNS
rebinding) sends its requests with its own name in `Host`, and any page may
post a form or a no-cors `fetch` to http://127.0.0.1:8000. So, on the
embedded stage:

- `Host` must be a loopback name (localhost, *.localhost), an IP address
  (no page can rebind those: a page at http://127.0.0.1/ is the server's own),
  or a name listed in FACEPRINT_ALLOWED_HOSTS; else 421 MisdirectedRequest.
- A request a browser marks as coming from another site is refused with
  403: an `Origin` other than the server's own or a FACEPRINT_CORS_ORIGINS
  one, or `Sec-Fetch-Site: cross-site`/`same-site` without such an Origin.
  Requests with neither header (curl, scripts, Postman) pass. The console's
  page and files, and the API document, may still be opened from a link.

On every stage, a JSON route takes only `Content-Type: application/json`
(415 otherwise): a type no HTML form can send, and which makes a browser
ask first (a CORS preflight) before a cross-origin page may send it.
"""

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from chalicelib.api import context
from chalicelib.api.api_key import OPEN_ROUTES
from chalicelib.api.replies import JSON_BODY_MESSAGE, error_reply
from chalicelib.core.config import Settings
from chalicelib.core.errors import FaceprintError, Forbidden, MisdirectedRequest, UnsupportedMediaType

OTHER_SITES = ("cross-site", "same-site")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def refuse_other_sites(event, get_response):
    """421 for a host name the server does not answer to, 403 for a request
    from another site's page; only on the embedded stage (on AWS, API
    Gateway's name and the key that no page holds do this)."""
    settings = context.settings()
    open_page = event.method in ("GET", "HEAD") and event.path in OPEN_ROUTES
    refused = refusal(event.headers, settings, open_page)
    return error_reply(refused) if refused else get_response(event)


def refusal(headers: Mapping[str, str], settings: Settings, open_page: bool = False) -> FaceprintError | None:
    """Why the embedded stage refuses a request with these headers, or None.
    `open_page`: a GET of the console or the API document, which another
    site may link to."""
    if settings.engine != "local":
        return None
    host = headers.get("host")
    if host is not None and not host_allowed(host, settings):
        return MisdirectedRequest(
            f"This server does not answer to the host name {host[:100]!r}: open it as http://localhost:<port>/ "
            "or by its IP address, or list the name in FACEPRINT_ALLOWED_HOSTS."
        )
    origin = headers.get("origin")
    if origin is not None:
        if origin_allowed(origin, host, settings):
            return None
        return Forbidden(
            f"Requests from the web page at {origin[:100]!r} are refused: only this server's own pages, "
            "and the origins in FACEPRINT_CORS_ORIGINS, may call it."
        )
    if headers.get("sec-fetch-site", "").lower() in OTHER_SITES and not open_page:
        return Forbidden(
            "Requests from another site's web page are refused: only this server's own pages, "
            "and the origins in FACEPRINT_CORS_ORIGINS, may call it."
        )
    return None


def host_allowed(host: str, settings: Settings) -> bool:
    """Whether `host` (a Host header: name or address, and a port) names this server."""
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
        name = parts.hostname
    except ValueError:
        return False
    if not name or parts.username is not None or parts.path:
        return False
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name in settings.allowed_hosts:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_allowed(origin: str, host: str | None, settings: Settings) -> bool:
    """The server's own origin (the page came from this Host), or a configured one."""
    origin = origin.strip().rstrip("/")
    if origin in settings.cors_origins:
        return True
    try:
        page, server = urlsplit(origin), urlsplit("//" + (host or ""))
        page_port, server_port = page.port, server.port
    except ValueError:
        return False
    if page.scheme not in _DEFAULT_PORTS or not page.hostname or page.hostname != server.hostname:
        return False
    default = _DEFAULT_PORTS[page.scheme]
    return (page_port or default) == (server_port or default)


def require_json_bodies(app):
    """Chalice http middleware for `app`: a route that takes JSON only
    refuses a body sent as anything else, or with no Content-Type (which
    Chalice would take for JSON). (A route that takes no body, a GET, has
    Chalice's default content type, JSON, too: a request without a body
    is left alone.)"""

    def require_json(event, get_response):
        route = app.routes.get(event.path, {}).get(event.method)
        if route is None or list(route.content_types) != ["application/json"] or not event.raw_body:
            return get_response(event)
        sent = event.headers.get("content-type") or ""
        if sent.split(";", 1)[0].strip().lower() != "application/json":
            return error_reply(
                UnsupportedMediaType(f"Unsupported media type: {sent[:100] or 'none'}. {JSON_BODY_MESSAGE}")
            )
        return get_response(event)

    return require_json
