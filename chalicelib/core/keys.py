"""Image keys (the filename a client chose), their labels, and the
Rekognition ExternalImageId each key maps to."""

import base64
import hashlib
import unicodedata
from urllib.parse import unquote

from chalicelib.core.errors import BadRequest
from chalicelib.core.limits import EXTERNAL_IMAGE_ID, MAX_KEY_BYTES

_ENCODED_PREFIX = "b64:"
_HASHED_PREFIX = "sha256:"


def key_from_path(raw: str) -> str:
    """Decode a key taken from a URL path (API Gateway and chalice local
    both pass path parameters still percent-encoded) and validate it."""
    try:
        key = unquote(raw, errors="strict")
    except UnicodeDecodeError as e:
        raise BadRequest("The filename is not valid UTF-8 once percent-decoded.") from e
    return validate_key(key)


def validate_key(key: str) -> str:
    if not key:
        raise BadRequest("The filename must not be empty.")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequest(f"The filename must be at most {MAX_KEY_BYTES} bytes in UTF-8.")
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise BadRequest("The filename must not contain control characters.")
    if "/" in key or "\\" in key or key in (".", ".."):
        raise BadRequest("The filename must be a plain name: no '/', '\\', '.' or '..'.")
    return key


def label_for(key: str, metadata: dict[str, str]) -> str:
    """The name a match is shown under: the `name` metadata, or the old
    project's label derived from the filename."""
    if metadata.get("name"):
        return metadata["name"]
    stem = key.rsplit(".", 1)[0] if "." in key.lstrip(".") else key
    return stem.replace("-", " ").replace("_", " ").capitalize()


def external_image_id(key: str) -> str:
    """A valid ExternalImageId for any key: the key itself when Rekognition
    accepts it, else its base64url form, else (too long) its SHA-256."""
    if EXTERNAL_IMAGE_ID.fullmatch(key) and not key.startswith(_ENCODED_PREFIX):
        return key
    encoded = _ENCODED_PREFIX + base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")
    if len(encoded) <= 255:
        return encoded
    return _HASHED_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_from_external_image_id(external_id: str) -> str | None:
    """The key behind an ExternalImageId, or None when only its hash is kept
    (the face record then names the key)."""
    if external_id.startswith(_HASHED_PREFIX):
        return None
    if external_id.startswith(_ENCODED_PREFIX):
        data = external_id[len(_ENCODED_PREFIX) :]
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8")
    return external_id
