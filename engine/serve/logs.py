"""Structured logs of the model server: one JSON object per line on stderr.

Every record carries ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and
``event``; the server's own events add their fields (model, protocol, code,
ms, ...). Records of other libraries (uvicorn, grpc) go through the same
formatter, their message as ``event``. ``--log-format text`` gives plain
lines instead, for a terminal.
"""
import datetime
import json
import logging
import sys

log = logging.getLogger("tilerun.serve")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line."""

    def format(self, record):
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        line = {"ts": ts.isoformat(timespec="milliseconds"), "level": record.levelname.lower(),
                "logger": record.name, "event": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """A log record as ``level event key=value ...``."""

    def format(self, record):
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        text = f"tilerun serve: {record.levelname.lower()} {record.getMessage()} {fields}".rstrip()
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def setup(level=logging.INFO, fmt="json", stream=None):
    """Send the server's and its libraries' logs to ``stream`` (stderr) in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("tilerun", "uvicorn", "uvicorn.error", "grpc"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level)


def event(name, level=logging.INFO, exc_info=None, **fields):
    """Log the event ``name`` with ``fields`` as its structured fields."""
    log.log(level, name, extra={"fields": fields}, exc_info=exc_info)
