"""An HTTPS stand-in for S3 behind presigned download links, for the console
in Chromium. On AWS, `GET /images/{key}/file` answers 307 to
https://<bucket>.s3.<region>.amazonaws.com/<key>?X-Amz-...; the browser is
told to resolve *.amazonaws.com to this server and to accept its self-signed
certificate. Like the bucket's CORS rule (chalicelib/ops/aws_setup.py: any origin,
any header, GET and HEAD) it answers the preflight that the console's
x-api-key header causes, then serves each key's bytes."""

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BUCKET_URL = "https://faceprint-photos.s3.eu-west-1.amazonaws.com"


def chromium_args(port: int) -> list[str]:
    """Send the browser's *.amazonaws.com requests to the stand-in."""
    return [f"--host-resolver-rules=MAP *.amazonaws.com 127.0.0.1:{port}", "--ignore-certificate-errors"]


@contextmanager
def serving(photo: Callable[[str], bytes], directory: Path) -> Iterator["Downloads"]:
    """Serve `photo(key)` at BUCKET_URL/<key> until the block ends."""
    downloads = Downloads(photo)
    server = ThreadingHTTPServer(("127.0.0.1", 0), downloads.handler())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(directory))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    downloads.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield downloads
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class Downloads:
    """The stand-in's state: the keys it served, with their x-api-key headers."""

    def __init__(self, photo: Callable[[str], bytes]) -> None:
        self.photo = photo
        self.port = 0
        self.served: list[tuple[str, str | None]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        downloads = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
                self.send_response(200)
                self._cors()
                self.send_header("Access-Control-Allow-Methods", "GET, HEAD")
                self.send_header("Access-Control-Allow-Headers", self.headers.get("Access-Control-Request-Headers", ""))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                key = unquote(urlsplit(self.path).path.lstrip("/"))
                body = downloads.photo(key)
                downloads.served.append((key, self.headers.get("x-api-key")))
                self.send_response(200)
                self._cors()
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")

        return Handler


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.s3.eu-west-1.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "s3.pem", directory / "s3.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file
