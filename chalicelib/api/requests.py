"""Request bodies: the photo's bytes, sent raw or as base64 text, and
JSON objects with their fields."""

import base64
import binascii
import json

from chalicelib.core.errors import BadRequest, InvalidImage
from chalicelib.core.images import sniff
from chalicelib.core.limits import MAX_IMAGE_BYTES

_DATA_URL_MARK = b";base64,"


def body_bytes(body: bytes | None) -> bytes:
    """The image bytes of a request body: the raw photo, or its base64 text
    (as the old clients send it, optionally as a data: URL)."""
    if not body:
        raise InvalidImage("The request body is empty: send the image bytes or their base64 text.")
    if sniff(body) or len(body) > MAX_IMAGE_BYTES * 4 // 3 + 1024:
        return body
    text = body.strip()
    if text.startswith(b"data:") and _DATA_URL_MARK in text[:100]:
        text = text.split(_DATA_URL_MARK, 1)[1]
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return body  # not base64: the image checks say what is wrong with it


def json_object(body: bytes | None, example: str) -> dict:
    """The request body as a JSON object; BadRequest (showing `example`) otherwise."""
    try:
        value = json.loads(body or b"")
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        value = None
    if not isinstance(value, dict):
        raise BadRequest(f"Send a JSON object, e.g. {example}.")
    return value


def json_number(body: dict, name: str, default: float, low: float, high: float) -> float:
    """Field `name` of a JSON body: a number from `low` to `high`."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{name!r} must be a number from {low:g} to {high:g}.")
    return float(value)


def json_image(body: dict, name: str) -> bytes:
    """Field `name` of a JSON body: a photo's base64 text (a data: URL is fine)."""
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name!r} must be the photo's base64 text.")
    if not value:
        raise InvalidImage(f"The {name} image is empty: send the photo's base64 text.")
    return body_bytes(value.encode("ascii", errors="replace"))
