"""What an API key may do on an AWS stage (Chalice http middleware): every
key has a scope, read, write or admin, and each includes the one before.

- read: every GET, and the searches and comparisons (nothing changes);
- write: also uploads, deletes of photos and faces, naming people and
  grouping their faces;
- admin: everything, deleting a person included, and any route not listed
  here (a new route is admin's until it is given a scope).

API Gateway checks that a key is valid before Lambda runs, and tells which
(`requestContext.identity.apiKeyId`); the key's scope is its
`faceprint:scope` tag, which `make aws-setup` sets on the stage's keys
(faceprint-<stage>-read, -write, -admin). A key without one is refused.
Offline there is one key (FACEPRINT_API_KEY), and this stays out of the way.
"""

from chalicelib import wiring
from chalicelib.api import context
from chalicelib.api.replies import error_reply
from chalicelib.core.errors import ConfigurationError, FaceprintError, Forbidden

SCOPES = ("read", "write", "admin")
SCOPE_TAG = "faceprint:scope"
SCOPE_HELP = {
    "read": "reads and searches",
    "write": "also uploads, deletes photos and faces, names people",
    "admin": "everything, deleting people included",
}
READ = frozenset(
    {
        ("GET", "/images"),
        ("GET", "/images/{key}"),
        ("GET", "/images/{key}/file"),
        ("GET", "/faces"),
        ("GET", "/faces/{face_id}"),
        ("GET", "/faces/{face_id}/matches"),
        ("GET", "/people"),
        ("GET", "/people/{person_id}"),
        ("GET", "/people/suggestions"),
        ("GET", "/info"),
        ("POST", "/search"),
        ("PUT", "/search"),
        ("POST", "/search/people"),
        ("PUT", "/search/people"),
        ("POST", "/compare"),
    }
)
WRITE = frozenset(
    {
        ("PUT", "/index/{filename}"),
        ("POST", "/index/{filename}"),
        ("DELETE", "/images/{key}"),
        ("DELETE", "/faces/{face_id}"),
        ("PUT", "/people/{person_id}"),
        ("POST", "/people/{person_id}/faces"),
        ("DELETE", "/people/{person_id}/faces/{face_id}"),
        ("POST", "/people/suggestions"),
    }
)


def scope_needed(method: str, route: str) -> str:
    if (method, route) in READ:
        return "read"
    return "write" if (method, route) in WRITE else "admin"


def require_scope(event, get_response):
    """403 when the request's API key may not call its route."""
    key_id = ((getattr(event, "context", None) or {}).get("identity") or {}).get("apiKeyId")
    settings = context.settings()
    if settings.engine == "local" or not key_id:
        return get_response(event)  # offline, or a route without a key (the console, the API document)
    needed = scope_needed(event.method, event.path)
    try:
        scope = wiring.key_scopes(settings).scope_of(key_id)
    except (FaceprintError, ConfigurationError) as e:
        return error_reply(e)
    if scope is None:
        return error_reply(
            Forbidden(
                f"This API key has no scope: tag it {SCOPE_TAG}=read, write or admin "
                "(`make aws-setup` makes the stage's keys, one of each)."
            )
        )
    if SCOPES.index(scope) < SCOPES.index(needed):
        return error_reply(
            Forbidden(
                f"This API key may {SCOPE_HELP[scope]}; {event.method} {event.path} "
                f"needs a{'n' if needed == 'admin' else ''} {needed} key."
            )
        )
    return get_response(event)
