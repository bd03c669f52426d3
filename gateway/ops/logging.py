"""Structured logs: one JSON object per line on stderr.

``log_config(settings)`` is the ``logging.config.dictConfig`` that ``gateway
serve`` hands to uvicorn, which applies it in every worker process. Each line
carries ``ts``, ``level``, ``logger``, ``msg`` (the formatted message), the
fields passed as ``extra={"fields": {...}}`` (the access line of
``gateway.ops.hooks``), ``pid`` and, for errors, ``exc``. Nothing here adds
request data: what a line holds is what its caller put in it, and callers
log ids, never prompts or credentials.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.settings import Settings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def log_config(settings: Settings) -> dict[str, Any]:
    level = settings.log_level.upper()
    formatter: dict[str, Any] = (
        {"()": "gateway.ops.logging.JsonFormatter"}
        if settings.log_json
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level},
        "loggers": {
            # uvicorn's own loggers go through the same handler, not their own.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            # Client libraries' debug output may echo request headers: keep it out.
            "aiohttp": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            "asyncpg": {"level": "WARNING"},
            "sqlalchemy": {"level": "WARNING"},
        },
    }
