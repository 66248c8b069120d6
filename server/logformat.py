"""A log formatter that writes one JSON object per record, for log collectors."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with time, level, logger, process and message.

    `process_name`, such as "worker-0", distinguishes the workers from the
    front process. The traceback of an exception, if any, goes into "exception".
    """

    def __init__(self, process_name: str = "") -> None:
        super().__init__()
        self.process_name = process_name or "main"

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=timezone.utc)
        entry = {
            "time": moment.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": self.process_name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
