"""Request bodies: the photo's bytes, sent raw or as base64 text."""

import base64
import binascii

from chalicelib.core.errors import InvalidImage
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
