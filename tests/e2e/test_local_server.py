"""The local server `make run` starts (chalicelib/ops/serve.py), attacked
as a web page and a careless client would: a re-pointed host name (DNS
rebinding), bodies larger than it will read, sent with and without a
length, and connections left idle. It refuses each without reading what it
was sent, and stays up."""

import json
import socket
import threading
import time

import pytest

from chalicelib.core.limits import MAX_REQUEST_BYTES
from chalicelib.ops import serve
from tests.support.live_server import live_server
from tests.support.photos import photo

JPEG = {"Content-Type": "image/jpeg"}
HALF_A_GIGABYTE = 512 * 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("edge") / "data") as running:
        status, _, _ = running.request("PUT", "/index/k.jpg", photo("Keanu-Reeves.jpg"), JPEG)
        assert status == 201
        yield running


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("keyed") / "data", env={"FACEPRINT_API_KEY": "s3cret"}) as running:
        yield running


def _port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _exchange(port: int, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send a raw request (`head` without its blank line), read until the
    server closes or the reply is whole: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(head.encode() + b"\r\n" + body)
        return _reply(conn)


def _reply(conn: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a reply: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(rest) < int(headers.get("content-length", 0)):
        rest += conn.recv(65536)
    return int(lines[0].split()[1]), headers, rest


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_rebound_host_name_gets_421_and_reads_nothing(server):
    """A page at attacker.example, whose name now resolves to 127.0.0.1."""
    port = _port(server)
    for path in ("/images", "/images/k.jpg", "/images/k.jpg/file", "/people", "/faces", "/info", "/"):
        status, headers, body = _exchange(port, f"GET {path} HTTP/1.1\r\nHost: attacker.example:{port}\r\n")
        assert status == 421, path
        assert json.loads(body)["error"] == "MisdirectedRequest" and b"k.jpg" not in body
    status, _, body = _exchange(
        port,
        f"PUT /index/k.jpg HTTP/1.1\r\nHost: attacker.example:{port}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {len(photo('Jim-Carrey.jpg'))}\r\n",
    )  # answered before the body is sent
    assert status == 421
    status, body, _ = server.request("GET", "/images/k.jpg")
    assert status == 200 and body["image"]["faceCount"] == 1


def test_a_body_over_the_limit_is_refused_from_its_length_unread(server):
    port = _port(server)
    rss = _rss_kb(server.process.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"PUT /index/big.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {HALF_A_GIGABYTE}\r\n\r\n".encode()
        )
        conn.sendall(b"\xff\xd8\xff" + bytes(4 * 2**20))  # the first megabytes of it
        status, headers, body = _reply(conn)
    assert status == 413 and json.loads(body)["error"] == "PayloadTooLarge" and headers["connection"] == "close"
    assert str(MAX_REQUEST_BYTES) in json.loads(body)["message"]
    assert _rss_kb(server.process.pid) - rss < 64 * 1024
    assert server.request("GET", "/info")[0] == 200


def test_a_client_that_asks_first_learns_the_body_would_be_refused(server):
    """Expect: 100-continue (curl sends it for a large body): the refusal, no 100."""
    port = _port(server)
    status, _, _ = _exchange(
        port,
        f"PUT /index/big.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {HALF_A_GIGABYTE}\r\nExpect: 100-continue\r\n",
    )
    assert status == 413


def test_a_chunked_body_is_read_and_bounded_as_it_comes(server):
    port = _port(server)
    data = photo("Jim-Carrey.jpg")
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + 50_000]), data[i : i + 50_000]) for i in range(0, len(data), 50_000)
    )
    status, _, body = _exchange(
        port,
        f"PUT /index/chunked.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
        "Transfer-Encoding: chunked\r\n",
        chunks + b"0\r\n\r\n",
    )
    assert status == 201 and json.loads(body)["image"]["faceCount"] == 1
    status, _, body = _exchange(
        port,
        f"PUT /index/big.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
        "Transfer-Encoding: chunked\r\n",
        b"%x\r\n" % (MAX_REQUEST_BYTES + 1),
    )
    assert status == 413 and json.loads(body)["error"] == "PayloadTooLarge"


def test_a_body_without_the_key_is_refused_before_it_is_read(keyed_server):
    port = _port(keyed_server)
    rss = _rss_kb(keyed_server.process.pid)
    status, _, body = _exchange(
        port,
        f"PUT /index/big.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {MAX_REQUEST_BYTES}\r\n",
        bytes(2**20),
    )
    assert status == 403 and json.loads(body)["error"] == "Forbidden"
    assert _rss_kb(keyed_server.process.pid) - rss < 32 * 1024


def test_a_malformed_length_is_a_json_400(server):
    port = _port(server)
    status, _, body = _exchange(
        port, f"PUT /index/x.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: lots\r\n"
    )
    assert status == 400 and json.loads(body)["error"] == "BadRequest"


@pytest.fixture
def small_server(tmp_path, monkeypatch):
    """Our server in this process, with a 1 s read timeout and room for 8 connections."""
    from chalice import local
    from chalice.config import Config

    from app import app

    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(serve, "READ_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(serve, "MAX_CONNECTIONS", 8)
    config = Config.create(chalice_stage="local", app_name="faceprint", chalice_app=app)
    running = local.LocalDevServer(
        app, config, "127.0.0.1", 0, handler_cls=serve._handler_class(), server_cls=serve._server_class()
    )
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running.server.server_address[1]
    running.shutdown()
    running.server.server_close()
    thread.join(10)


def _info(port: int) -> int:
    return _exchange(port, f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n")[0]


def test_idle_connections_are_closed_and_never_hold_the_server(small_server):
    port = small_server
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(14)]
    try:
        time.sleep(0.3)
        # Beyond the 8 it serves at once, connections are answered 503 at once, and closed.
        assert [_reply(conn)[0] for conn in idle[8:]] == [503] * 6
        assert _info(port) == 503
        # The 8 it serves are closed once idle for the timeout; then it answers again.
        for conn in idle[:8]:
            assert conn.recv(1) == b""
        assert _info(port) == 200
    finally:
        for conn in idle:
            conn.close()


def test_a_flood_of_connections_leaves_the_server_up(small_server):
    port = small_server
    flood = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
    for conn in flood:
        conn.close()
    deadline = time.monotonic() + 10
    while _status_or_none(port) != 200:
        assert time.monotonic() < deadline, "the server did not recover from the flood"
        time.sleep(0.2)


def _status_or_none(port: int) -> int | None:
    try:
        return _info(port)
    except OSError:  # closed at once: a flood's connections still hold every slot
        return None


def test_a_client_that_stops_sending_its_body_is_let_go(small_server):
    port = small_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"PUT /index/slow.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\n"
            "Content-Length: 1000\r\n\r\n".encode()
            + b"\xff\xd8\xff"
        )
        started = time.monotonic()
        assert conn.recv(1) == b""
        assert time.monotonic() - started < 5
    assert _info(port) == 200
