"""Admission reviews only from the API server: its client certificate on ``/validate``.

The gate is stateful: a review it admits is history, and history starts restrictions. Without
this, any caller that reaches the port can post reviews (truthful history keeps forged ones from
counting; this keeps them out). With ``validateClientCA`` set the listener asks every client for a
certificate (``CERT_OPTIONAL``: probes, ``/metrics`` and the REST API still connect without one),
verifies any presented against that CA during the handshake, and ``/validate`` refuses a request
whose connection presented none — before the gate sees it, so nothing is recorded.

uvicorn puts no TLS details in the ASGI scope, so the HTTP protocol is wrapped to add one per
connection: ``scope["extensions"]["tls"]["client_certificate"]``, the verified peer certificate.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

GUARDED_PATHS = frozenset({"/validate"})


def with_peer_certificate(protocol: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's HTTP protocol that hands each request the connection's client certificate."""

    class PeerCertificateProtocol(protocol):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            super().connection_made(transport)  # type: ignore[arg-type]
            ssl_object = transport.get_extra_info("ssl_object")
            certificate = ssl_object.getpeercert() if ssl_object is not None else None
            inner = self.app  # type: ignore[has-type]

            async def app(scope: Scope, receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})["tls"] = {"client_certificate": certificate or None}
                await inner(scope, receive, send)

            self.app = app

    PeerCertificateProtocol.__name__ = f"PeerCertificate{protocol.__name__}"
    return PeerCertificateProtocol


class RequireClientCertificate:
    """ASGI middleware: a guarded path without a verified client certificate gets 403, never the gate."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str] = GUARDED_PATHS) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") in self.paths:
            tls = (scope.get("extensions") or {}).get("tls") or {}
            if not tls.get("client_certificate"):
                body = json.dumps({"error": "forbidden: /validate takes admission reviews only from the API "
                                            "server, which must present its client certificate"}).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
