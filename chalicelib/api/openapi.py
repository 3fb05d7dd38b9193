"""The API's OpenAPI 3 document, kept beside the code as openapi.json (so
`chalice package` ships it) and served at `GET /openapi.json`, open like
the console so that tools and the page can read it before any key."""

import json
from functools import cache
from pathlib import Path

from chalice import Blueprint, Response

openapi = Blueprint(__name__)

DOCUMENT = Path(__file__).with_name("openapi.json")


@cache
def document() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


@openapi.route("/openapi.json", methods=["GET"])
def openapi_document():
    return Response(
        body=document(), status_code=200, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"}
    )
