"""Swagger UI at `GET /docs`: the API's OpenAPI document to read and try,
served by the app itself from the swagger-ui-bundle package (Swagger UI
4.15.5, Apache-2.0), so the page needs no CDN and works offline. Open like
the console and /openapi.json: the page loads before any key, and asks for
it (Authorize) before trying a route.

Swagger UI 4 reads OpenAPI 3.0 only, and /openapi.json is 3.1: the page
reads the same document in 3.0 terms (`openapi_30`), where 3.1's
`"type": [T, "null"]` is `"type": T, "nullable": true`."""

import copy
import json
from functools import cache

from chalice import Blueprint, Response
from swagger_ui_bundle import swagger_ui_path

from chalicelib.api.openapi import document
from chalicelib.api.replies import error_reply
from chalicelib.core.errors import NotFound

docs = Blueprint(__name__)

CSS, JS = "text/css; charset=utf-8", "text/javascript; charset=utf-8"
VENDOR_FILES = {"swagger-ui.css": CSS, "swagger-ui-bundle.js": JS}
START = "start.js"
DOCUMENT_30 = "openapi-3.0.json"
# Swagger UI's own icons are data: URLs in its stylesheet; nothing else leaves this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)
# Relative URLs: under a stage prefix (/api/docs) they stay below it.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Faceprint API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"""
START_SCRIPT = f"""window.ui = SwaggerUIBundle({{
  url: "docs/{DOCUMENT_30}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
}});
"""


@docs.route("/docs", methods=["GET"])
def docs_page():
    return _reply(PAGE, "text/html; charset=utf-8")


@docs.route("/docs/{name}", methods=["GET"])
def docs_file(name):
    if name in VENDOR_FILES:
        return _reply(_vendor_file(name), VENDOR_FILES[name])
    if name == START:
        return _reply(START_SCRIPT, JS)
    if name == DOCUMENT_30:
        return _reply(json.dumps(openapi_30()), "application/json")
    return error_reply(NotFound(f"The API's documentation page has no file named {name!r}."))


@cache
def _vendor_file(name: str) -> str:
    return (swagger_ui_path / name).read_text(encoding="utf-8")


@cache
def openapi_30() -> dict:
    """/openapi.json in OpenAPI 3.0's terms, with its server below the page's
    own path (the page's document is at docs/, the API one level up)."""
    view = copy.deepcopy(document())
    view["openapi"] = "3.0.3"
    view["servers"] = [{"url": ".."}]
    _nullable(view)
    return view


def _nullable(node) -> None:
    if isinstance(node, dict):
        kinds = node.get("type")
        if isinstance(kinds, list):
            named = [kind for kind in kinds if kind != "null"]
            node["type"] = named[0] if len(named) == 1 else named
            if "null" in kinds:
                node["nullable"] = True
        for value in node.values():
            _nullable(value)
    elif isinstance(node, list):
        for value in node:
            _nullable(value)


def _reply(body: str, content_type: str) -> Response:
    headers = {"Content-Type": content_type, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return Response(body=body, status_code=200, headers={**headers, "X-Content-Type-Options": "nosniff"})
