"""The embedded stage's audit log: a file a day in `<data dir>/audit/`
(`YYYY-MM-DD.jsonl`, the owner's alone), the days older than the retention
deleted as a new day begins."""

import json
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chalicelib.core.ports import AuditLog
from chalicelib.embedded import private

log = logging.getLogger("faceprint")


class FileAuditLog(AuditLog):
    def __init__(self, folder: Path, retention_days: int) -> None:
        self._folder = folder
        self._retention = timedelta(days=retention_days)
        self._lock = threading.Lock()
        self._day: str | None = None

    def write(self, line: dict) -> None:
        today = datetime.now(UTC)
        day = today.strftime("%Y-%m-%d")
        try:
            with self._lock:
                if day != self._day:
                    private.folder(self._folder)
                    self._prune(today)
                    self._day = day
                path = self._folder / f"{day}.jsonl"
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, private.FILE)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        except OSError as e:
            log.warning("the audit log could not be written (%s): %s", self._folder, e.strerror)

    def _prune(self, today: datetime) -> None:
        oldest = (today - self._retention).strftime("%Y-%m-%d")
        for path in self._folder.glob("*.jsonl"):
            if path.stem < oldest:
                path.unlink(missing_ok=True)
