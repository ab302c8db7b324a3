"""Serve TLS with certificates that can be renewed without restarting the server.

Usage (e.g. with uvicorn, which accepts a ready ``ssl.SSLContext`` only through its
config object)::

    tls = ReloadingServerContext(cert_file=cert, key_file=key)
    config = uvicorn.Config(app, host=..., port=...)
    config.load()
    config.ssl = tls.context      # every new connection starts from this context

How: the context handed to the server has an SNI callback, which OpenSSL runs at the
start of *every* TLS handshake (with or without SNI from the client). At most every
``check_interval`` seconds the callback compares the files' identity (inode, size,
mtime — a rename or Kubernetes' symlink swap of a Secret volume changes it); when
they changed it builds a fresh context from the files and from then on switches each
new handshake to it (``ssl_object.context = fresh``, the standard SNI mechanism).
Established connections keep the certificate they were made with.

Building a new context rather than calling ``load_cert_chain`` again on the one the
server holds avoids mutating an ``SSL_CTX`` while other handshakes may be reading
it, and lets the very handshake that noticed the change use the new certificate.
If the files are mid-rotation (new key, old certificate) loading fails; the current
certificate stays in use and the next check tries again.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_Signature = tuple[tuple[int, int, int, int], ...]


def serving_context(*, cert_file: Path, key_file: Path, client_ca_file: Path | None = None,
                    client_verify: ssl.VerifyMode = ssl.CERT_REQUIRED) -> ssl.SSLContext:
    """A server-side context: TLS 1.2+, the given certificate chain and key.

    With ``client_ca_file`` clients must present a certificate signed by it (mTLS); with
    ``client_verify=CERT_OPTIONAL`` a client may present none, and a route decides (``/validate``).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    if client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(client_ca_file))
        ctx.verify_mode = client_verify
    return ctx


class ReloadingServerContext:
    """An ``ssl.SSLContext`` (:attr:`context`) whose certificate follows the files on disk."""

    def __init__(
        self,
        *,
        cert_file: Path,
        key_file: Path,
        client_ca_file: Path | None = None,
        client_verify: ssl.VerifyMode = ssl.CERT_REQUIRED,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.client_ca_file = Path(client_ca_file) if client_ca_file is not None else None
        self.client_verify = client_verify
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = self._stat()
        self.context = self._build()
        self.context.sni_callback = self._on_handshake
        self._current = self.context
        self._next_check = self._clock() + check_interval

    def _files(self) -> list[Path]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]

    def _stat(self) -> _Signature | None:
        try:
            stats = [os.stat(p) for p in self._files()]
        except OSError:
            return None
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_dev) for s in stats)

    def _build(self) -> ssl.SSLContext:
        return serving_context(cert_file=self.cert_file, key_file=self.key_file, client_ca_file=self.client_ca_file,
                               client_verify=self.client_verify)

    @property
    def current(self) -> ssl.SSLContext:
        """The context new handshakes are switched to (``context`` until the first reload)."""
        return self._current

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Reload if the files changed (checked at most every ``check_interval`` s unless ``force``).

        Returns whether a new certificate was loaded. Safe to call from any thread,
        e.g. a periodic task that wants renewals noticed even without traffic.
        """
        now = self._clock()
        with self._lock:
            if not force and now < self._next_check:
                return False
            self._next_check = now + self.check_interval
            signature = self._stat()
            if signature is None or signature == self._signature:
                return False
            try:
                fresh = self._build()
            except (OSError, ssl.SSLError) as exc:
                log.warning("keeping the current TLS certificate: cannot load %s: %s", self.cert_file, exc)
                return False
            self._current, self._signature = fresh, signature
        log.info("loaded a renewed TLS certificate from %s", self.cert_file)
        return True

    def _on_handshake(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, initial: ssl.SSLContext) -> None:
        try:
            self.maybe_reload()
        except Exception:  # never fail a handshake because of the reload check
            log.exception("TLS certificate reload check failed")
        current = self._current
        if current is not initial:
            ssl_object.context = current
