"""Image keys (the filename a client chose, or an S3 object key) and the
Rekognition ExternalImageId each key maps to."""

import base64
import binascii
import hashlib

from chalicelib.core.errors import BadRequest
from chalicelib.core.limits import EXTERNAL_IMAGE_ID, MAX_KEY_BYTES
from chalicelib.core.text import hidden_characters

ENCODED_PREFIX = "b64:"
_HASHED_PREFIX = "sha256:"


def validate_key(key: str) -> str:
    """A key the API accepts: 1-255 bytes of UTF-8, no control or format
    characters (core/text.py), no backslash; `/` separates folders (as in S3), but no segment may be
    empty, `.` or `..`."""
    if not key:
        raise BadRequest("The filename must not be empty.")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequest(f"The filename must be at most {MAX_KEY_BYTES} bytes in UTF-8.")
    hidden = hidden_characters(key)
    if hidden:
        raise BadRequest(
            "The filename must not contain control or invisible formatting characters "
            f"(bidi overrides, zero-width spaces); it has {', '.join(hidden[:5])}."
        )
    if "\\" in key or any(segment in ("", ".", "..") for segment in key.split("/")):
        raise BadRequest(
            "The filename must be a plain name or a folder path: no '\\', and no empty, '.' or '..' "
            "part between slashes."
        )
    return key


def encode_key(key: str) -> str:
    """`b64:` and the key in unpadded base64url: a form of any key that is
    safe in one URL path segment (no `/`, nothing to percent-encode)."""
    return ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def decode_key(encoded: str) -> str:
    """The key behind encode_key's form; BadRequest when it is not one."""
    data = encoded[len(ENCODED_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"{encoded[:40]!r} is not a key in the b64: form (unpadded base64url of its UTF-8).") from e


def external_image_id(key: str) -> str:
    """A valid ExternalImageId for any key: the key itself when Rekognition
    accepts it, else its b64: form, else (too long) its SHA-256."""
    if EXTERNAL_IMAGE_ID.fullmatch(key) and not key.startswith(ENCODED_PREFIX):
        return key
    encoded = encode_key(key)
    if len(encoded) <= 255:
        return encoded
    return _HASHED_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_from_external_image_id(external_id: str) -> str | None:
    """The key behind an ExternalImageId, or None when only its hash is kept
    (the face record then names the key)."""
    if external_id.startswith(_HASHED_PREFIX):
        return None
    if external_id.startswith(ENCODED_PREFIX):
        return decode_key(external_id)
    return external_id
