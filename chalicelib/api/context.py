"""The stage's settings, read once per request (the outermost middleware),
and the services built for them. Chalice's test client sets a stage's
environment only while a request runs, so nothing reads it at import."""

import threading

from chalicelib import wiring
from chalicelib.api.replies import error_reply
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.services import Services

_current = threading.local()  # chalice local serves each request on its own thread


def read_settings(event, get_response):
    """Chalice http middleware, registered first: every other middleware
    and view of this request sees the same settings."""
    try:
        _current.settings = Settings.from_env()
    except ConfigurationError as e:
        return error_reply(e)
    try:
        return get_response(event)
    finally:
        _current.settings = None


def settings() -> Settings:
    """The settings of the request being served."""
    current = getattr(_current, "settings", None)
    return current if current is not None else Settings.from_env()


def services() -> Services:
    return wiring.services(settings())
