"""structlog set-up: JSON lines with a fixed message and snake_case fields.

Libraries log through the standard `logging` module (httpx writes `HTTP Request: POST <url>` at
INFO for every request, urllib3 and web3 the same at DEBUG, Celery its broker at start-up). Every
such record is redacted as it is created (`redacting_record_factory`), so a provider's key in
`HYBRIDEX_RPC_URL` or a password in a broker URL never reaches a handler, whoever installed it
(Celery replaces the root logger's handlers; the record factory is process-wide).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from backend.redact import redact_text


def redact_urls(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Last line of defence: a URL inside any string field (an exception's text, say) loses its
    credentials even where the caller did not redact it."""
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = redact_text(value)
    return event


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite `record`'s message (and its exception text) with every URL redacted."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: leave it to the handler to report
        return
    if "://" in message:
        record.msg = redact_text(message)
        record.args = None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if "://" in text:
            record.exc_text = redact_text(text)
    elif record.exc_text and "://" in record.exc_text:
        record.exc_text = redact_text(record.exc_text)


def redacting_record_factory(
    base: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redact_record(record)
        return record

    make.redacts = True  # type: ignore[attr-defined]
    return make


def install_record_redaction() -> None:
    """Redact every standard-library log record of this process (idempotent)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacts", False):
        logging.setLogRecordFactory(redacting_record_factory(current))


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    install_record_redaction()
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_urls,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
