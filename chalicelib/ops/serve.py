"""`make run`: `chalice local` with the given options, on a server that
holds up on one machine, stopped in one line.

    python -m chalicelib.ops.serve --host 127.0.0.1 --port 8000 ...   (chalice local's options)

Chalice's own local server reads every body whole before the app runs,
waits forever on an idle connection, and starts a thread for every one. Ours
(GuardedHandler, BoundedServer), before it reads a body, refuses a request
for another host name (421), from another site's page or without the key
(403: api/guard.py, api/api_key.py), or larger than MAX_REQUEST_BYTES (413,
from its Content-Length; a chunked body is counted as it is read); closes a
connection idle for READ_TIMEOUT_SECONDS; and serves at most
MAX_CONNECTIONS at once (503 to the next).

Without FACEPRINT_API_KEY it listens on loopback only: anyone on the
network could otherwise use the API.

Ctrl-C (and SIGTERM, which app.py makes a Ctrl-C) ends `chalice local`
through click, which prints "Aborted!" and exits 1, so make adds an error of
its own. Here a stop is what it is: one line, and the status of a clean end.
"""

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time

from chalicelib.core.limits import MAX_REQUEST_BYTES

READ_TIMEOUT_SECONDS = 30  # for each read of a request (or write of its reply), and between requests
MAX_CONNECTIONS = 64  # served at once; a browser opens at most 6 to one server
LOOPBACK_HOSTS = ("localhost", "::1")


def main(argv: list[str]) -> int:
    said, refused = how_it_listens(_option(argv, "--host", "127.0.0.1"), os.environ)
    print(said)
    if refused:
        return 2
    # Imported here: the maintenance CLI takes interrupted_status() from this module without them.
    import click
    from chalice import local
    from chalice.cli import cli

    from chalicelib.api.request_log import quiet_access_log
    from chalicelib.embedded.private import UMASK

    os.umask(UMASK)  # what the server writes is its owner's alone (docs/privacy.md)
    quiet_access_log(local.ChaliceRequestHandler)  # its access log (ours inherits it): route templates only
    local.create_local_server = _create_local_server
    sys.argv = ["chalice", "local", *argv]  # what app.py looks for: `chalice local` (wiring.stop_on_signals)
    try:
        cli.main(["local", *argv], prog_name="chalice", obj={}, standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("Stopped: the server and its analysis workers have ended.", file=sys.stderr)
        return interrupted_status()
    except click.exceptions.ClickException as e:
        e.show()
        return e.exit_code
    return 0


def how_it_listens(host: str, environ) -> tuple[str, bool]:
    """What the server says as it starts on `host`, and whether it refuses
    to: without a key, anything but loopback would open the API to the
    network."""
    if environ.get("FACEPRINT_API_KEY", "").strip():
        return "The API asks for the x-api-key header (FACEPRINT_API_KEY).", False
    if not (host.startswith("127.") or host in LOOPBACK_HOSTS):
        return f"--host {host} would open the API to the network without a key: set FACEPRINT_API_KEY too.", True
    return f"FACEPRINT_API_KEY is not set: the API is open to programs on this machine (listening on {host}).", False


def interrupted_status() -> int:
    """130, as a shell reports Ctrl-C, when run by hand. Under make, 0: make
    got the same Ctrl-C and ends with it (so its caller still sees the
    interruption); a status of ours would only add make's `Error 130` line."""
    return 0 if os.environ.get("MAKELEVEL") else 130


def _option(argv: list[str], name: str, default: str) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(name, default=default)
    return getattr(parser.parse_known_args(argv)[0], name.lstrip("-"))


def _create_local_server(app_obj, config, host: str, port: int):
    """chalice.local.create_local_server, with our handler and server."""
    from chalice import local

    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(app_obj, config, host, port, handler_cls=_handler_class(), server_cls=_server_class())


class Refused(Exception):
    """A request answered before its body is read."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def refusal_before_body(headers) -> Refused | None:
    """Why a request with a body is refused before the body is read: for
    its size, or as the app would refuse it (its host, its site, its key).
    A request without a body is left to the app."""
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    try:
        length = 0 if chunked else int(headers.get("content-length") or 0)
    except ValueError:
        length = -1
    if length < 0:
        return Refused(400, "BadRequest", "The Content-Length header is not a number of bytes.")
    if not chunked and length == 0:
        return None
    error = _app_refusal(headers)
    if error is not None:
        return error
    return too_large(length) if length > MAX_REQUEST_BYTES else None


def _app_refusal(headers) -> Refused | None:
    from chalicelib.api import api_key, guard
    from chalicelib.core.config import Settings
    from chalicelib.core.errors import ConfigurationError

    try:
        settings = Settings.from_env()
    except ConfigurationError:
        return None  # the app says so, with a 500, once the request reaches it
    error = guard.refusal(headers, settings) or api_key.refusal(headers, settings)
    return Refused(error.status, error.code, error.message) if error else None


def too_large(length: int | None) -> Refused:
    size = f"{length} bytes" if length is not None else f"over {MAX_REQUEST_BYTES} bytes"
    return Refused(
        413,
        "PayloadTooLarge",
        f"The request body is {size}; this server reads at most {MAX_REQUEST_BYTES} bytes "
        f"(a photo is at most 15 MB, {MAX_REQUEST_BYTES // 2**20} MB as base64 in JSON).",
    )


def _handler_class():
    from chalice.local import ChaliceRequestHandler

    from chalicelib.core import logs

    class GuardedHandler(ChaliceRequestHandler):
        timeout = READ_TIMEOUT_SECONDS  # socketserver sets it on the connection

        def handle_expect_100(self) -> bool:
            """A client that asks before it sends its body (curl does, for a
            large one) learns at once that it would be refused."""
            refused = refusal_before_body(self.headers)
            if refused is not None:
                self._refuse(refused)
                return False
            return super().handle_expect_100()

        def _checked_handle(self) -> None:
            try:
                refused = refusal_before_body(self.headers)
                if refused is not None:
                    raise refused
                self._body = self._read_body()
            except Refused as refused:
                self._refuse(refused)
                return
            if self._body is _INCOMPLETE:
                self.close_connection = True  # the client went away mid-body: nothing to answer
                return
            super()._generic_handle()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _checked_handle

        def _parse_payload(self):
            return dict(self.headers), self._body

        def _read_body(self):
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                return self._read_chunked()
            length = int(self.headers.get("content-length") or 0)
            if length == 0:
                return None
            body = self.rfile.read(length)
            return body if len(body) == length else _INCOMPLETE

        def _read_chunked(self):
            body = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    return _INCOMPLETE
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise Refused(400, "BadRequest", "The chunked request body is malformed.") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers: ignored
                    return bytes(body) or None
                if len(body) + size > MAX_REQUEST_BYTES:
                    raise too_large(None)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    return _INCOMPLETE
                body += chunk
                self.rfile.readline(3)  # the chunk's CRLF

        def _refuse(self, refused: Refused) -> None:
            """The JSON reply, then the connection closes: its body, if any,
            was not read. What the client still sends for a while is read
            and dropped (a lingering close), so that a client still sending
            reads the reply instead of a connection reset."""
            logs.write({"event": "refused", "method": self.command, "status": refused.status, "error": refused.code})
            body = json.dumps({"error": refused.code, "message": refused.message}).encode()
            self.close_connection = True
            self._send_http_response(refused.status, {"Content-Type": "application/json", "Connection": "close"}, body)
            self.wfile.flush()
            _linger(self.connection)

    return GuardedHandler


_INCOMPLETE = object()  # a body cut short by the client
LINGER_SECONDS = 2.0


def _linger(connection: socket.socket) -> None:
    """After the reply: read and drop what the client sends for up to
    LINGER_SECONDS, or until it stops (as nginx's lingering_close). Closed
    with data unread, a connection is reset, and the client may never read
    the reply."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(min(left, 0.5))
            if not connection.recv(65536):
                return


def _server_class():
    from chalice.local import ThreadedHTTPServer

    class BoundedServer(ThreadedHTTPServer):
        """At most MAX_CONNECTIONS connections served at once, each on its
        own thread; the next are answered 503 (on a short-lived thread of
        their own, at most MAX_CONNECTIONS of those too) and closed."""

        request_queue_size = 128  # connections the kernel holds until accepted (socketserver's default: 5)

        def __init__(self, *args, **kwargs) -> None:
            self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
            self._busy_slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
            super().__init__(*args, **kwargs)

        def process_request(self, request, client_address) -> None:
            if self._slots.acquire(blocking=False):
                try:
                    super().process_request(request, client_address)
                except BaseException:
                    self._slots.release()
                    raise
            elif self._busy_slots.acquire(blocking=False):
                threading.Thread(target=self._answer_busy, args=(request,), daemon=True).start()
            else:
                self.shutdown_request(request)

        def process_request_thread(self, request, client_address) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self._slots.release()

        def _answer_busy(self, request) -> None:
            try:
                reply = _busy_reply()
                with contextlib.suppress(OSError):  # the client is gone: nothing to tell
                    request.settimeout(1)
                    request.sendall(reply)
                    _linger(request)
                self.shutdown_request(request)
            finally:
                self._busy_slots.release()

    return BoundedServer


def _busy_reply() -> bytes:
    body = json.dumps(
        {
            "error": "ServiceUnavailable",
            "message": f"The server is serving {MAX_CONNECTIONS} connections, its limit: retry in a moment.",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
