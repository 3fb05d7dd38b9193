"""The photo in an upload (PUT/POST /index/{filename}, POST /search, POST
/search/people), however a client sends it:

- the photo's bytes with their type, or application/octet-stream;
- its base64 text as text/plain (the old clients; a data: URL too);
- a multipart form, as `curl -F file=@photo.jpg`, Postman's form-data and
  most face APIs' clients send it: the part named `file` or `image`, else
  the first part that is a file;
- no Content-Type at all (`curl -T photo.jpg`), or
  application/x-www-form-urlencoded, which is what `curl --data-binary
  @photo.jpg` sends without `-H`: the bytes tell what they are (a photo, or
  base64 text), as for application/octet-stream; a form whose `file` or
  `image` field holds the base64 text is read too.

Every one of these types is a binary type to API Gateway (app.py), so it
passes their bytes unchanged. A body with no Content-Type it passes as text,
which breaks a photo's bytes: on AWS, send one. Another site's web page
cannot post a form here: the edge guard (api/guard.py) refuses it on the
embedded stage, the API key on AWS."""

from email.parser import BytesHeaderParser
from urllib.parse import parse_qs

from chalice.app import CaseInsensitiveMapping

from chalicelib.api.requests import body_bytes
from chalicelib.core.errors import BadRequest

MULTIPART = "multipart/form-data"
FORM = "application/x-www-form-urlencoded"
UNTYPED = "application/octet-stream"  # what a body without a Content-Type is taken for
FILE_FIELDS = ("file", "image")  # the names a form's photo goes by, in this order
MAX_PARTS = 32
MAX_PART_HEAD_BYTES = 8192


def uploaded_photo(request) -> bytes:
    """The photo's bytes in a Chalice request's body."""
    return photo_bytes(request.raw_body, request.headers.get("content-type"))


def photo_bytes(body: bytes | None, content_type: str | None) -> bytes:
    """The photo's bytes in an upload's body sent as `content_type`."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == MULTIPART and body:
        return body_bytes(_form_file(body, content_type or ""))
    if media == FORM and body:
        return body_bytes(_form_field(body) or body)
    return body_bytes(body)


def take_untyped_uploads(app, image_types: list[str]):
    """Chalice http middleware for `app`: an upload with no Content-Type,
    which Chalice would take for JSON and refuse (415), is taken as
    application/octet-stream on the routes that take `image_types`."""

    def untyped(event, get_response):
        route = app.routes.get(event.path, {}).get(event.method)
        if route is not None and route.content_types == image_types and "content-type" not in event.headers:
            event.headers = CaseInsensitiveMapping({**event.headers, "content-type": UNTYPED})
        return get_response(event)

    return untyped


def _form_file(body: bytes, content_type: str) -> bytes:
    """The photo part of a multipart/form-data body."""
    parts = _parts(body, _boundary(content_type))
    named = {name: content for name, _, content in parts if name}
    chosen = next((named[field] for field in FILE_FIELDS if field in named), None)
    if chosen is None:
        chosen = next((content for _, filename, content in parts if filename is not None), None)
    if chosen is None:
        raise BadRequest(
            "The form has no file: send the photo as a part named 'file' or 'image' (curl -F file=@photo.jpg)."
        )
    return chosen


def _boundary(content_type: str) -> bytes:
    head = BytesHeaderParser().parsebytes(b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n")
    boundary = head.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 70:
        raise BadRequest("The multipart/form-data Content-Type names no boundary (a form's parts cannot be found).")
    return boundary.encode("latin-1", "replace")


def _parts(body: bytes, boundary: bytes) -> list[tuple[str | None, str | None, bytes]]:
    """(name, filename, content) of each part of a multipart body (RFC 7578),
    at most MAX_PARTS, found by searching the bytes: a photo is not copied
    line by line, as the email parser would."""
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2 : start] != b"\r\n"):
        raise BadRequest("The multipart form's parts do not begin with its boundary.")
    parts, at = [], start + len(delimiter)
    while not body.startswith(b"--", at):  # the closing delimiter ends the form
        head_start = body.find(b"\r\n", at) + 2
        end = body.find(b"\r\n" + delimiter, head_start)
        head_end = body.find(b"\r\n\r\n", head_start - 2, end)
        if head_start < 2 or end < 0 or head_end < 0 or head_end - head_start > MAX_PART_HEAD_BYTES:
            raise BadRequest("The multipart form is cut short or malformed.")
        if len(parts) == MAX_PARTS:
            raise BadRequest(f"The multipart form has over {MAX_PARTS} parts.")
        head = BytesHeaderParser().parsebytes(body[head_start:head_end] + b"\r\n\r\n")
        name = head.get_param("name", header="content-disposition")
        filename = head.get_param("filename", header="content-disposition")
        parts.append((_text(name), _text(filename), body[head_end + 4 : end]))
        at = end + 2 + len(delimiter)
    return parts


def _text(param) -> str | None:
    """A Content-Disposition parameter as text (an RFC 2231 one is a tuple)."""
    if param is None:
        return None
    return param[2] if isinstance(param, tuple) else str(param)


def _form_field(body: bytes) -> bytes | None:
    """The `file` or `image` field of a form-encoded body that is a form
    (its base64 text); None for a body that is the photo itself."""
    if b"=" not in body[:16]:
        return None
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=MAX_PARTS, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None  # not a form: the bytes themselves (base64 text that ends in '=' is one)
    # A `+` of the base64 text sent unencoded reads as a space, which base64 never holds.
    return next((_ascii(fields[name][0].replace(" ", "+")) for name in FILE_FIELDS if fields.get(name)), None)


def _ascii(text: str) -> bytes:
    """A form field's text as bytes; what is not ASCII cannot be base64, and
    the image checks say so."""
    return text.encode("ascii", errors="replace")
