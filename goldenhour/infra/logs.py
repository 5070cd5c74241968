"""structlog as JSON lines, one configuration for every process."""

from __future__ import annotations

import logging
import sys

import structlog


def quiet_faust() -> None:
    """faust warns at every first rebalance that its monitor has no state yet: noise, not news.
    Called once faust has set up its own logging."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: "Missing sensor state" not in record.getMessage())


def configure(level: str = "info") -> None:
    """Render every log line as JSON with a timestamp; bound ids travel with the logger."""
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for noisy in ("aiokafka", "faust", "mode", "uvicorn.access", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO: a webhook URL's path or query may hold the
    # receiver's token. Our own lines name the host only.
    for quoting_urls in ("httpx", "httpcore"):
        logging.getLogger(quoting_urls).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
