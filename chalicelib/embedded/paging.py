"""Opaque pagination tokens: clients pass back what they were given."""

import base64
import binascii
import json

from chalicelib.core.errors import BadRequest


def encode_token(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_token(token: str | None):
    if token is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as e:
        raise BadRequest("The 'next' token is not one this API gave out: start again without it.") from e
