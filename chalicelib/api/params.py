"""Path and query parameters: image keys, numbers in a range, page requests."""

from urllib.parse import unquote

from chalicelib.core import limits
from chalicelib.core.errors import BadRequest
from chalicelib.core.keys import ENCODED_PREFIX, decode_key, validate_key


def key_from_path(raw: str, stored: bool = True) -> str:
    """The key in a URL path segment. API Gateway and chalice local both
    pass path parameters still percent-encoded: decode once. A key may
    also come in its b64: form (unpadded base64url), which needs no
    encoding at all: the way to name keys with `/` through API Gateway,
    which does not route an encoded slash reliably. In that form a
    `stored` key (read, delete) may be any key the bucket can hold, even
    one the API would not accept for a new photo (copied in by other means)."""
    try:
        key = unquote(raw, errors="strict")
    except UnicodeDecodeError as e:
        raise BadRequest("The filename is not valid UTF-8 once percent-decoded.") from e
    return key_from_query(key, stored)


def key_from_query(key: str, stored: bool = True) -> str:
    """A key in a query parameter (already decoded), plain or in b64: form."""
    if not key.startswith(ENCODED_PREFIX):
        return validate_key(key)
    key = decode_key(key)
    if not stored:
        return validate_key(key)
    if not key or len(key.encode("utf-8")) > limits.MAX_STORED_KEY_BYTES:
        raise BadRequest(f"A stored key is 1 to {limits.MAX_STORED_KEY_BYTES} bytes of UTF-8.")
    return key


def person_from_path(raw: str) -> str:
    """A personId in a URL path segment, percent-decoded once."""
    return unquote(raw)


def number(params: dict | None, name: str, kind: type, default, low, high):
    """Query parameter `name` as an int or float from `low` to `high`."""
    params = params or {}
    if name not in params:
        return default
    try:
        value = kind(params[name])
    except ValueError:
        raise BadRequest(f"Query parameter {name!r} must be a number from {low} to {high}.") from None
    if not low <= value <= high:
        raise BadRequest(f"Query parameter {name!r} must be from {low} to {high}.")
    return value


def page(params: dict | None) -> tuple[int, str | None]:
    """`limit` and `next` of a listing."""
    params = params or {}
    return number(params, "limit", int, limits.DEFAULT_PAGE_SIZE, 1, limits.MAX_PAGE_SIZE), params.get("next")


# ?photos= of an erasure: what each spelling means (core/erasure.py PHOTO_CHOICES).
_PHOTOS = {"false": "none", "0": "none", "none": "none", "true": "own", "1": "own", "own": "own", "all": "all"}


def photos_to_erase(params: dict | None) -> str:
    """?photos= of an erasure: false (the default), true (their own photos) or all."""
    raw = (params or {}).get("photos", "false")
    if raw.lower() not in _PHOTOS:
        raise BadRequest(
            "Query parameter 'photos' must be false (keep them), true (the photos only they are in) or all."
        )
    return _PHOTOS[raw.lower()]


def flag(params: dict | None, name: str) -> bool:
    """A true/false query parameter (absent: false)."""
    raw = (params or {}).get(name, "false").lower()
    if raw not in ("true", "1", "false", "0"):
        raise BadRequest(f"Query parameter {name!r} must be true or false.")
    return raw in ("true", "1")
