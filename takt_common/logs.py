"""Structured logs: one JSON object per line on stderr, the same shape in every service.

``{"ts": "...Z", "level": "INFO", "logger": ..., "msg": ..., <extra fields>, "exc": ...}``:
log shippers parse one format, and the ``extra={...}`` of a call becomes fields
rather than text to grep.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with UTC millisecond time and the call's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, quiet: Iterable[str] = ()) -> None:
    """Send every log record to stderr as JSON at ``level``; ``quiet`` loggers at WARNING+."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in quiet:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
