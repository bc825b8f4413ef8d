"""Structured logging: one line per event, as JSON or text, with the context it happened in.

Every line carries the fields of the Kafka request being served when it was logged (client
id, peer, API, correlation id), taken from a context variable that the connection sets for the
duration of each request, so existing `logger.warning(...)` calls gain that context without
changing. Fields passed as `extra={...}` (use `fields(topic=..., partition=..., ...)`) are
added too. The level can be changed at run time, for the whole broker or one logger.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
from contextvars import ContextVar

LOG_FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")


RequestFields = tuple[str, int, int, str | None, str]
"""Who asked for what: API name, API version, correlation id, client id and peer address of
the request being served; a plain tuple, as one is built for every request."""
REQUEST_FIELD_NAMES = ("api", "api_version", "correlation_id", "client_id", "peer")

current_request: ContextVar[RequestFields | None] = ContextVar("goqueue_request", default=None)

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def fields(**values: object) -> dict[str, object]:
    """`extra=` for a log call: context fields (topic, partition, error_code, ...) that the
    JSON format emits as keys and the text format appends as key=value."""
    return {
        key: value.name if isinstance(value, enum.Enum) else value for key, value in values.items()
    }


def _context(record: logging.LogRecord) -> dict[str, object]:
    """The request fields and extra fields of a record, without empty values."""
    context: dict[str, object] = {}
    request = current_request.get()
    if request is not None:
        context.update(
            (key, value)
            for key, value in zip(REQUEST_FIELD_NAMES, request, strict=True)
            if value is not None
        )
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
            context[key] = value
    return context


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context fields,
    and the traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The human-readable format: `time LEVEL logger: message key=value ...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        context = _context(record)
        if not context:
            return text
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in context.items())
        return f"{text} {pairs}"


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


def setup_logging(level: str, log_format: str) -> None:
    """Send every logger's lines to stderr in `log_format` at `level`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str, logger_name: str = "") -> None:
    """Change a logger's level (the root logger's by default) while the broker runs."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    logging.getLogger(logger_name or None).setLevel(level.upper())


def levels() -> dict[str, str]:
    """The root level (key "") and every logger whose level was set explicitly."""
    result = {"": logging.getLevelName(logging.getLogger().level).lower()}
    for name, logger in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            result[name] = logging.getLevelName(logger.level).lower()
    return result
