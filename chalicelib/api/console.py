"""The web console: one page at `GET /` and its static files at
`GET /console/{name}`, shipped in chalicelib/api/console/. The page speaks only
the public HTTP API, so it works the same against `chalice local` and a
deployed stage."""

import html
from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.api import context
from chalicelib.api.replies import error_reply
from chalicelib.core.config import Settings
from chalicelib.core.errors import NotFound

console = Blueprint(__name__)

FILES_DIR = Path(__file__).with_name("console")
# Text types only: the API's binary_types stay as app.py sets them.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything the page loads comes from this origin; photos are blob: URLs
# made from authenticated fetches. On AWS those fetches follow the API's 307
# to a presigned link to the stage's own bucket, which connect-src must
# allow, or the browser blocks the redirect: that bucket only (photo_origins).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def content_security_policy(settings: Settings) -> str:
    connect = " ".join(["'self'", *photo_origins(settings)])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        f"connect-src {connect}; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
    )


def photo_origins(settings: Settings) -> list[str]:
    """Where a presigned link to the stage's bucket leads: virtual-hosted, at
    S3's global and regional names (botocore picks one by region); a bucket
    name with dots is addressed by path instead."""
    if settings.engine != "rekognition" or not settings.bucket:
        return []
    region = settings.region or "us-east-1"
    if "." in settings.bucket:
        return ["https://s3.amazonaws.com", f"https://s3.{region}.amazonaws.com"]
    return [f"https://{settings.bucket}.s3.amazonaws.com", f"https://{settings.bucket}.s3.{region}.amazonaws.com"]


@console.route("/", methods=["GET"])
def page():
    """The page, with <base href> set to the path it was asked for, so its
    relative URLs reach the API under a stage prefix (/api/) too."""
    base = console.current_request.context.get("path") or "/"
    if not base.endswith("/"):
        base += "/"
    text = (FILES_DIR / "index.html").read_text(encoding="utf-8")
    return _reply(text.replace("{{base}}", html.escape(base, quote=True)), ".html")


@console.route("/console/{name}", methods=["GET"])
def static_file(name):
    path = _served_file(name)
    if path is None:
        return error_reply(NotFound(f"The console has no file named {name!r}."))
    return _reply(path.read_text(encoding="utf-8"), path.suffix)


def _served_file(name: str) -> Path | None:
    """Only a file listed in the console folder, by its exact name: no
    path, no `..`, no other folder is reachable."""
    if Path(name).suffix not in CONTENT_TYPES or name == "index.html":
        return None
    for path in FILES_DIR.iterdir():
        if path.name == name and path.is_file():
            return path
    return None


def _reply(text: str, suffix: str) -> Response:
    headers = {"Content-Security-Policy": content_security_policy(context.settings()), **SECURITY_HEADERS}
    return Response(body=text, status_code=200, headers={"Content-Type": CONTENT_TYPES[suffix], **headers})
