"""Chalice keeps the request being served in `app.current_request`, one
attribute shared by every thread. `chalice local` serves each request on its
own thread, so under concurrent clients a view could read another request's
body. Here the attribute lives per thread; on Lambda (one request per
process at a time) nothing changes."""

import threading

from chalice import Chalice


class ThreadSafeChalice(Chalice):
    _per_thread = threading.local()

    @property
    def current_request(self):
        return getattr(self._per_thread, "request", None)

    @current_request.setter
    def current_request(self, request) -> None:
        self._per_thread.request = request

    @property
    def lambda_context(self):
        return getattr(self._per_thread, "lambda_context", None)

    @lambda_context.setter
    def lambda_context(self, context) -> None:
        self._per_thread.lambda_context = context
