"""Structured JSON logs: one line per record, one line per decision."""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

# Secrets that reach messages through DSNs, URLs, headers and exception texts: the userinfo
# password of any URL (postgresql://user:pass@, redis://:pass@), key=value secrets (libpq
# keyword DSNs, query strings) and bearer tokens.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)")
_KEY_VALUE = re.compile(r"(?i)\b(?P<head>password|passwd|pwd|token|secret|api[_-]?key)(?P<sep>\s*[=:]\s*)"
                        r"(?P<quote>['\"]?)[^\s'\"&;,]+")
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)[A-Za-z0-9._~+/-]+=*")
REDACTED = "***"


def redact(text: str) -> str:
    """``text`` with every password and token it carries replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: m.group("head") + m.group("sep") + m.group("quote") + REDACTED, text)
    return _BEARER.sub(lambda m: m.group("head") + REDACTED, text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = _redacted(value)
        if record.exc_info:
            body["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(body, default=str)


def level_number(level: str | int) -> int:
    """``debug``/``INFO``/``20`` → a logging level; anything else is a ``ValueError`` naming the choices."""
    if isinstance(level, int) or str(level).strip().isdigit():
        return int(level)
    number = logging.getLevelName(str(level).strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning, error or critical")
    return number


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_number(level))
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
