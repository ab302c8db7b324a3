"""Logs: JSON lines for collectors, readable lines for people; one line per record, one per decision.

``--log-format auto`` (the default) writes readable lines when the output is a terminal and JSON
lines otherwise (a pod's log, a pipe, a file), so a person trying the gate sees text and a log
collector still gets one JSON object per line. Secrets are redacted in both.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import IO, Any

from webhook.settings import LogFormat

# uvicorn adds "color_message" (the message with ANSI escapes) to its records: noise in either format.
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}

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


class TextFormatter(logging.Formatter):
    """``07:31:02.118 WARNING webhook.store.history: postgres unavailable ... key=value``: for people."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created).astimezone()
        parts = [f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}", f"{record.levelname:<7}",
                 f"{record.name}:", redact(record.getMessage())]
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                parts.append(f"{key}={_redacted(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing ``log_format``; ``auto`` looks at the stream it writes to *now*
    (a stream swapped later, by a test or a redirect, is judged afresh)."""

    def __init__(self, *, log_format: LogFormat, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self.log_format = LogFormat(log_format)
        self._json = JsonFormatter()
        self._text = TextFormatter()

    def effective_format(self) -> LogFormat:
        if self.log_format is not LogFormat.AUTO:
            return self.log_format
        isatty = getattr(self.stream, "isatty", None)
        try:
            return LogFormat.TEXT if isatty is not None and isatty() else LogFormat.JSON
        except (ValueError, OSError):  # a closed stream
            return LogFormat.JSON

    def format(self, record: logging.LogRecord) -> str:
        formatter = self._text if self.effective_format() is LogFormat.TEXT else self._json
        return formatter.format(record)


def level_number(level: str | int) -> int:
    """``debug``/``INFO``/``20`` → a logging level; anything else is a ``ValueError`` naming the choices."""
    if isinstance(level, int) or str(level).strip().isdigit():
        return int(level)
    number = logging.getLevelName(str(level).strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning, error or critical")
    return number


def configure(level: str, *, log_format: LogFormat = LogFormat.AUTO) -> None:
    handler = ConsoleHandler(log_format=log_format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_number(level))
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
