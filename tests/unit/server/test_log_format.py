"""``--log-format``: readable lines on a terminal, JSON lines otherwise or when asked for.

The terminal is a real pseudo-terminal (``os.openpty``), so ``isatty()`` answers as it does for a
person's shell.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from webhook.server import logs
from webhook.settings import LogFormat, Settings


@contextlib.contextmanager
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A writable stream on the slave side of a pty, and the master fd to read what was written."""
    master, slave = os.openpty()
    stream = open(slave, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def read_terminal(master: int) -> str:
    return os.read(master, 65536).decode("utf-8").replace("\r\n", "\n")


def emit(handler: logging.Handler, message: str, **extra: object) -> None:
    log = logging.getLogger("safety_gate.format")
    log.handlers[:] = [handler]
    log.propagate = False
    try:
        log.warning(message, extra=extra)
    finally:
        log.handlers[:] = []
        log.propagate = True


def test_auto_writes_readable_text_on_a_terminal() -> None:
    with terminal() as (stream, master):
        assert stream.isatty()
        handler = logs.ConsoleHandler(log_format=LogFormat.AUTO, stream=stream)
        assert handler.effective_format() is LogFormat.TEXT
        emit(handler, "postgres unavailable: postgresql://gate:pw@db/x", store="postgres")
        line = read_terminal(master).strip()
    assert not line.startswith("{")
    assert "WARNING" in line and "safety_gate.format:" in line
    assert "postgres unavailable: postgresql://gate:***@db/x" in line and "pw@" not in line
    assert line.endswith("store=postgres")


def test_auto_writes_json_lines_when_not_a_terminal() -> None:
    buffer = io.StringIO()
    handler = logs.ConsoleHandler(log_format=LogFormat.AUTO, stream=buffer)
    assert handler.effective_format() is LogFormat.JSON
    emit(handler, "hello", uid="u-1")
    record = json.loads(buffer.getvalue())
    assert record["msg"] == "hello" and record["uid"] == "u-1" and record["level"] == "warning"


@pytest.mark.parametrize("chosen, json_expected", [(LogFormat.JSON, True), (LogFormat.TEXT, False)])
def test_an_explicit_format_wins_over_the_terminal(chosen: LogFormat, json_expected: bool) -> None:
    with terminal() as (stream, master):
        emit(logs.ConsoleHandler(log_format=chosen, stream=stream), "decided", decision="deny")
        text = read_terminal(master).strip()
    if json_expected:
        assert json.loads(text)["decision"] == "deny"
    else:
        assert text.endswith("decided decision=deny")


def test_text_keeps_tracebacks_and_redacts_them() -> None:
    buffer = io.StringIO()
    handler = logs.ConsoleHandler(log_format=LogFormat.TEXT, stream=buffer)
    log = logging.getLogger("safety_gate.format.exc")
    log.handlers[:] = [handler]
    log.propagate = False
    try:
        raise ConnectionError("redis://:s3cret@cache:6379/0 refused")
    except ConnectionError:
        log.exception("cache down")
    finally:
        log.handlers[:] = []
        log.propagate = True
    text = buffer.getvalue()
    assert "cache down" in text and "Traceback" in text and "ConnectionError" in text
    assert "s3cret" not in text


def test_the_environment_chooses_the_format_and_a_bad_value_names_the_choices(monkeypatch) -> None:
    monkeypatch.setenv("SAFETY_GATE_LOG_FORMAT", "text")
    assert Settings().log_format is LogFormat.TEXT
    monkeypatch.setenv("SAFETY_GATE_LOG_FORMAT", "yaml")
    result = subprocess.run([sys.executable, "-m", "webhook", "serve", "--port", "0"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "SAFETY_GATE_LOG_FORMAT": "yaml"})
    assert result.returncode == 2
    assert "log_format" in result.stderr and "auto" in result.stderr and "json" in result.stderr


def test_a_bad_flag_value_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "webhook", "serve", "--log-format", "xml"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--log-format" in result.stderr


def test_configure_installs_the_console_handler_with_the_format() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logs.configure("info", log_format=LogFormat.TEXT)
        (handler,) = root.handlers
        assert isinstance(handler, logs.ConsoleHandler) and handler.effective_format() is LogFormat.TEXT
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
