"""The scope of an API Gateway key (api/scopes.py): its `faceprint:scope`
tag, read with GetApiKey and remembered for a few minutes, so a request pays
for the lookup only once in a while, and a key's new scope (or its
deletion) counts within CACHE_SECONDS."""

import threading
import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from chalicelib.aws.clients import error_code, translated

CACHE_SECONDS = 300.0


class ApiKeyScopes:
    def __init__(
        self, client, tag: str, scopes: tuple[str, ...], stage: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._tag, self._scopes, self._stage = tag, scopes, stage
        self._clock = clock
        self._known: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def scope_of(self, key_id: str) -> str | None:
        """The key's scope, or None when its tag names none."""
        with self._lock:
            known = self._known.get(key_id)
        if known is not None and self._clock() - known[0] < CACHE_SECONDS:
            return known[1]
        try:
            with translated(f"API key {key_id}", self._stage):
                key = self._client.get_api_key(apiKey=key_id)
        except ClientError as e:
            if error_code(e) != "NotFoundException":
                raise
            key = {}  # deleted since API Gateway let the request in: no scope
        scope = key.get("tags", {}).get(self._tag)
        scope = scope if scope in self._scopes else None
        with self._lock:
            self._known[key_id] = (self._clock(), scope)
        return scope
