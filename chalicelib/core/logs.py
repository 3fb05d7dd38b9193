"""One JSON line per event worth following, on stderr (CloudWatch on
Lambda): each request (chalicelib.api.request_log), each indexing run, each
batch of the indexing queue and each re-drive; and the metrics CloudWatch
reads from such a line (its embedded metric format). No line holds a photo
key, a person id, a name or metadata (docs/privacy.md): who asked for what
is the audit log's (core/ports.py AuditLog), kept apart."""

import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

# The request (or Lambda invocation) being served, so an indexing run's line
# names the request that caused it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class _JsonLines(logging.Handler):
    """The message alone, one line, to the stream lines are sent to
    (send_to), else to whatever sys.stderr is at the time."""

    stream: TextIO | None = None

    def emit(self, record: logging.LogRecord) -> None:
        stream = self.stream or sys.stderr
        try:
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except (OSError, ValueError):
            self.handleError(record)


_lines = _JsonLines()
_log = logging.getLogger("faceprint.lines")
_log.setLevel(logging.INFO)
_log.propagate = False
_log.addHandler(_lines)


def send_to(stream: TextIO | None) -> TextIO | None:
    """Write the lines to `stream` from now on (None: back to stderr); the
    stream they went to before. The command line sends them to a log file
    while it draws a progress bar at a terminal."""
    previous, _lines.stream = _lines.stream, stream
    return previous


def write(line: dict) -> None:
    _log.info(json.dumps(line, ensure_ascii=False, separators=(",", ":")))


# The namespace of the stage's own CloudWatch metrics (make aws-setup's alarms read them).
METRICS_NAMESPACE = "Faceprint"


def write_metrics(stage: str, metrics: dict[str, float]) -> None:
    """A line in CloudWatch's embedded metric format: in a Lambda function's
    log, CloudWatch turns it into one value of each metric (a count), with
    the dimension Stage. Needs no permission beyond writing the log."""
    write(
        {
            "_aws": {
                "Timestamp": int(datetime.now(UTC).timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [["Stage"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                    }
                ],
            },
            "Stage": stage,
            **metrics,
        }
    )


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def log_indexed(key: str, image: dict | None, started: float, outcome: str) -> None:
    """The line of one indexing run. `outcome`: indexed (this run's version
    is on record), lost (another run's record stands), stale (a version the
    bucket no longer holds), retry (failed; it will be retried), failed (the
    queue gave up on its event), gone (the photo was deleted). Never the
    photo's key, nor the error's text (which names it): the image record
    keeps both; the request's line, and the audit log, the request id."""
    line = {
        "event": "indexed",
        "outcome": outcome,
        "status": image["status"] if image else "gone",
        "faces": image["faceCount"] if image else 0,
        "durationMs": ms_since(started),
    }
    if request_id.get():
        line["requestId"] = request_id.get()
    if image and image.get("error"):
        line["failed"] = True
    write(line)


def error_kind(error: BaseException) -> str:
    """An error as a log may name it: its code or type, never its message
    (messages name photos and people, for the client who asked)."""
    return getattr(error, "code", None) or type(error).__name__
