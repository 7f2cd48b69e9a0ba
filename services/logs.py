"""Logging, configured once per process, the same way by every entry point.

``LOG_FORMAT=json`` (the default): one JSON object per line on stderr, with ``time`` (ISO 8601
in Asia/Ho_Chi_Minh, milliseconds), ``level``, ``logger``, ``message`` and every field passed
as ``extra=`` (``event_id``, ``form_id``, ``event_ids``, ``table``, ``rows`` …). ``text``: one
readable line, the extra fields appended as ``key=value``. A submission's ``instanceID`` is its
``event_id`` from the intake to the store, so ``grep`` for it follows one submission through
the intake, the processor that folds it and the batch that writes it.

No secret reaches a line: the values of secret-looking query parameters (``?key=…``,
``token``, ``password`` …, e.g. in uvicorn's access log) and credentials written as headers
(``Bearer …``) are replaced by ``[redacted]`` in whatever is written, whoever logged it.

The standard library's ``logging`` does the work; only the formatter is ours, because the
two JSON formatters on PyPI (python-json-logger, structlog) would add a dependency for ~30
lines and neither writes local-time ISO stamps without the same amount of configuration.

    from services import logs
    logs.configure(settings)             # entry points, once, before anything logs
    logs.dict_config(settings)           # the same as a dictConfig (faust's worker takes one)
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
from datetime import datetime
from typing import IO, Any

from services.config import TIMEZONE, Settings

FORMATS = ("json", "text")
# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}
_HANDLER_MARK = "_thuvien_handler"
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")  # the access log must pass the redaction too
_SECRETS = re.compile(
    r"(?i)(?P<param>[?&;#](?:key|api_key|apikey|api-key|token|access_token|password|passwd|secret)=)[^&\s\"'#]+"
    r"|(?P<header>\bbearer\s+|x-api-key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._~+/=-]{8,}")


def redact(text: str) -> str:
    """``text`` with secret query parameter values (``?key=…``) and credentials in header form
    (``Bearer …``, ``X-API-Key: …``) replaced by ``[redacted]``."""
    return _SECRETS.sub(lambda m: f"{m.group('param') or m.group('header')}[redacted]", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _local_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, TIMEZONE).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _local_time(record), "level": record.levelname, "logger": record.name,
                                "message": record.getMessage()}
        line.update(_extras(record))
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value …`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in _extras(record).items())
        text = f"{_local_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        text = f"{text} {extras}" if extras else text
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return redact(text)


def formatter(log_format: str) -> logging.Formatter:
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(settings: Settings | None = None, *, level: str | None = None, log_format: str | None = None,
              stream: IO[str] | None = None) -> logging.Handler:
    """Point the root logger at one handler of ours (replacing any earlier one); return it.

    Called again (tests, a CLI that re-configures), it replaces the handler instead of adding
    a second one. Libraries' own loggers (uvicorn, faust, aiokafka, httpx) propagate to it.
    """
    level = (level or (settings.log_level if settings else "INFO")).upper()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format or (settings.log_format if settings else "json")))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False) or type(h) is logging.StreamHandler]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _SERVER_LOGGERS:  # whatever configured them before (uvicorn's own dictConfig): through ours
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.setLevel(logging.NOTSET)
        server_logger.propagate = True
    logging.captureWarnings(True)
    return handler


def dict_config(settings: Settings) -> dict[str, Any]:
    """The same configuration as a ``logging.config.dictConfig`` dict (for faust's worker)."""
    fmt = settings.log_format
    formatter(fmt)  # refuse an unknown format here too
    cls = JsonFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,  # module loggers exist before the worker configures logging
        "formatters": {"thuvien": {"()": f"{cls.__module__}.{cls.__qualname__}"}},
        "handlers": {"thuvien": {"class": "logging.StreamHandler", "formatter": "thuvien",
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": settings.log_level.upper(), "handlers": ["thuvien"]},
    }
