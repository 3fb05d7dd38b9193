"""Image metadata from `x-amz-meta-<name>` headers, under S3's user-metadata rules."""

from collections.abc import Mapping

from chalicelib.core.errors import BadRequest
from chalicelib.core.limits import MAX_METADATA_BYTES, RESERVED_METADATA

PREFIX = "x-amz-meta-"


def metadata_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    metadata = {}
    for header, value in headers.items():
        name = header.lower()
        if not name.startswith(PREFIX):
            continue
        name = name[len(PREFIX) :]
        if not name:
            raise BadRequest(f"A metadata header needs a name after '{PREFIX}'.")
        if name == RESERVED_METADATA:
            raise BadRequest(
                f"Metadata '{name}' is the API's own (a converted photo's original type): use another name."
            )
        if not (name.isascii() and value.isascii()):
            raise BadRequest(f"Metadata '{name}' must be ASCII (S3 user-metadata rules).")
        metadata[name] = value.strip()
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise BadRequest(f"Metadata totals {size} bytes; at most {MAX_METADATA_BYTES} are allowed.")
    return metadata
