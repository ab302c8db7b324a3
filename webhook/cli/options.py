"""The options several commands share, declared once: each is a ``Settings`` field of the same
name (flags win over ``SAFETY_GATE_*`` variables, which win over the defaults), so a command lists
``postgres_dsn: options.PostgresDsn = None`` and passes what was given to ``common.settings``.
"""

from __future__ import annotations

import pathlib
from typing import Annotated, Optional

import typer

from webhook.settings import LogFormat

PostgresDsn = Annotated[Optional[str], typer.Option(help="PostgreSQL DSN; embedded server if absent.")]
RedisUrl = Annotated[Optional[str], typer.Option(help="Redis URL; embedded server if absent.")]
DataDir = Annotated[Optional[pathlib.Path], typer.Option(
    help="Data dir of the embedded stores (and of local certificates).")]
ClusterId = Annotated[Optional[str], typer.Option(help="Cluster id stored with every row of the history.")]
Policy = Annotated[Optional[pathlib.Path], typer.Option(help="OscillationPattern YAML documents.")]
Kubeconfig = Annotated[Optional[pathlib.Path], typer.Option(help="Kubeconfig of the cluster (optional).")]
LogLevel = Annotated[Optional[str], typer.Option(help="Log level (logs go to stderr).")]
LogFormatOption = Annotated[Optional[LogFormat], typer.Option(
    help="Log lines: json, text, or auto (text on a terminal, else JSON).")]
Workers = Annotated[Optional[int], typer.Option(
    min=1, max=64, help="Serving processes sharing the port (1). With 2 or more, a parent process owns the "
                        "embedded stores, TLS files and signals; in-flight limits apply per process.")]
