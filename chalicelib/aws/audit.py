"""An AWS stage's audit log: its own CloudWatch log group
(Settings.audit_log_group, made by `make aws-setup` with its own retention),
one log stream per Lambda container."""

import json
import logging
import threading
import time
import uuid

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import clients as aws
from chalicelib.core.ports import AuditLog

log = logging.getLogger("faceprint")


class CloudWatchAuditLog(AuditLog):
    def __init__(self, client, group: str) -> None:
        self._client = client
        self._group = group
        self._stream: str | None = None
        self._lock = threading.Lock()

    def write(self, line: dict) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": json.dumps(line, separators=(",", ":"))}
        try:
            with self._lock:
                if self._stream is None:
                    stream = f"{time.strftime('%Y/%m/%d')}/{uuid.uuid4().hex}"
                    self._client.create_log_stream(logGroupName=self._group, logStreamName=stream)
                    self._stream = stream
                self._client.put_log_events(logGroupName=self._group, logStreamName=self._stream, logEvents=[event])
        except ClientError as e:
            log.warning(
                "the audit log %s could not be written (%s): run make aws-setup", self._group, aws.error_code(e)
            )
        except BotoCoreError as e:
            log.warning("the audit log %s could not be written (%s)", self._group, type(e).__name__)
