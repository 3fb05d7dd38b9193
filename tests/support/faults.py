"""Faults injected into the real adapters, as the services and the
processes that call them fail: a service's error reply (throttling past
botocore's retries) on a boto3 client over moto, a crash (a Lambda killed,
a server stopped) at a chosen call of a port or of a boto3 client. The
in-memory fakes have their own: chalicelib/ops/memory.py's `fail_next`."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from botocore.parsers import create_parser

from chalicelib.core.services import Services


class Crash(BaseException):
    """The process died here: no `except Exception` of the code under test
    sees it, so nothing it would clean up after an error is cleaned up."""


@dataclass
class _Reply:
    """What botocore's client needs of an HTTP reply that never went out."""

    status_code: int
    headers: dict = field(default_factory=dict)
    content: bytes = b""


@contextmanager
def service_error(client, operation: str, status: int, code: str, message: str = "") -> Iterator[None]:
    """Inside the block, the client's next call of `operation` ("GetItem",
    "HeadObject") gets the error reply the service sends: the raw HTTP reply
    (a JSON body, an XML one, or none at all for a HEAD request), parsed by
    botocore's own parser for the client's protocol. It stands for the
    reply after botocore's retries, which it skips: moto never sees the
    call, so it takes no effect. The hook is gone after the block."""
    model = client.meta.service_model
    protocol = model.protocol
    if protocol == "json":
        headers = {"x-amzn-requestid": "faceprint-test", "content-type": "application/x-amz-json-1.0"}
        body = json.dumps({"__type": code, "message": message or code}).encode()
    elif protocol == "rest-xml":
        headers = {"x-amz-request-id": "faceprint-test"}
        operation_model = model.operation_model(operation)
        body = (
            b""  # a reply to HEAD has no body: the error is its status alone
            if operation_model.http["method"] == "HEAD"
            else f"<Error><Code>{code}</Code><Message>{message or code}</Message></Error>".encode()
        )
    else:
        raise ValueError(f"no error replies for the {protocol} protocol here")
    fired = []

    def reply(model, **_):
        if fired:
            return None
        fired.append(model.name)
        raw = {"status_code": status, "headers": headers, "body": body}
        parsed = create_parser(protocol).parse(raw, model.output_shape)
        return _Reply(status, headers, body), parsed

    with _hooked(client, "before-call", operation, reply):
        yield
    assert fired, f"no {operation} call met the injected {code}"


@contextmanager
def crash_at(client, operation: str, when: Callable[[dict], bool] = lambda params: True) -> Iterator[None]:
    """Inside the block, the process dies as the client is about to make
    the first call of `operation` whose parameters satisfy `when`: the call
    never reaches the service."""
    fired = []

    def crash(params, **_):
        if not fired and when(params):
            fired.append(operation)
            raise Crash(f"crashed before {operation}")

    with _hooked(client, "provide-client-params", operation, crash):
        yield
    assert fired, f"no {operation} call met the crash"


@contextmanager
def _hooked(client, event: str, operation: str, handler: Callable) -> Iterator[None]:
    """`handler` on the client's `event` for `operation`, first of all, for the block."""
    name = f"{event}.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register_first(name, handler)
    try:
        yield
    finally:
        client.meta.events.unregister(name, handler)


class _CrashBefore:
    """A port whose `method` crashes the process on its first call, before
    it takes effect; every other call goes through."""

    def __init__(self, target, method: str) -> None:
        self._target, self._method, self.crashed = target, method, False

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if name != self._method:
            return attr

        def crash(*args, **kwargs):
            if not self.crashed:
                self.crashed = True
                raise Crash(f"crashed before {name}")
            return attr(*args, **kwargs)

        return crash


def crashing_before(svc: Services, call: str) -> Services:
    """The services with a crash before the first `call` ("records.create_person")."""
    port, method = call.split(".")
    return replace(svc, **{port: _CrashBefore(getattr(svc, port), method)})
