"""Who may use ``/api/v1/*`` (``/validate``, ``/healthz``, ``/readyz``, ``/metrics`` and
``/api/v1/openapi.json`` are open). Every request carries ``Authorization: Bearer <token>``.

* **Static tokens** (``--api-token-file`` / ``SAFETY_GATE_API_TOKEN_FILE``): one token per line,
  ``token[,username]``; blank lines and ``#`` comments are ignored. The file is re-read when it
  changes, so tokens rotate without a restart. A listed token may read and write.
* **Kubernetes** (the gate has a cluster: ``--kubeconfig`` or in-cluster): the token goes to a
  TokenReview; the user it names must pass a SubjectAccessReview for ``oscillationalerts`` in
  ``ai.prometheus-alerts-slm.io`` (cluster-wide) with verb ``get`` for reads and ``create`` for
  writes — the people who may see and raise alerts may read history and record assessments.
  Answers are cached for 30s per token and verb (``webhook.kube.tokenreview``), so a busy client
  costs the API server two reviews per half minute, and a revoked token lingers at most that long.
* With both configured, the token file is checked first.
* With neither, every request is refused with 401 and a message saying how to configure one.

Missing or unknown token: 401 with ``WWW-Authenticate: Bearer``. Known but not allowed: 403.

This is a starlette ``AuthenticationBackend``: ``AuthenticationMiddleware`` runs it before every
protected route and puts the user in ``request.user``; a refusal becomes the JSON error here.
"""

from __future__ import annotations

import hmac
import logging
import pathlib

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from webhook.kube.tokenreview import SAR_GROUP, SAR_RESOURCE, ReviewUnavailable, TokenReviewer
from webhook.settings import Settings

logger = logging.getLogger(__name__)

REALM = 'Bearer realm="safety-gate"'
SCOPE = "api"
# Reads need ``get`` on oscillationalerts, writes ``create``.
VERBS = {"GET": "get", "HEAD": "get", "POST": "create"}
HOW_TO = ("configure API authentication: start the gate with --api-token-file FILE "
          "(or SAFETY_GATE_API_TOKEN_FILE; one 'token[,username]' per line), or give it a cluster "
          "(--kubeconfig or in-cluster) to check bearer tokens with TokenReview")


class ApiUser(BaseUser):
    def __init__(self, *, username: str, source: str) -> None:
        self.username = username
        self.source = source  # "token-file" | "kubernetes"

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.username


class Refused(AuthenticationError):
    """Why a request may not use the API, with the status it is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unauthenticated(message: str) -> Refused:
    return Refused(401, message)


def refused(conn: HTTPConnection, exc: Exception) -> JSONResponse:
    """``AuthenticationMiddleware``'s ``on_error``: the API's JSON error shape."""
    status = exc.status if isinstance(exc, Refused) else 401
    headers = {"WWW-Authenticate": REALM} if status == 401 else {"Retry-After": "5"} if status == 503 else {}
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def bearer_token(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class StaticTokens:
    """Tokens from a file, re-read when its modification time or size changes."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._tokens: list[tuple[bytes, str]] = []

    def _load(self) -> list[tuple[bytes, str]]:
        try:
            stat = self.path.stat()
        except OSError as exc:
            logger.warning("api token file %s unreadable: %s", self.path, exc)
            self._stamp, self._tokens = None, []
            return []
        stamp = (stat.st_mtime, stat.st_size)
        if stamp != self._stamp:
            tokens = []
            for number, line in enumerate(self.path.read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                token, _, username = line.partition(",")
                token = token.strip()
                if token:
                    tokens.append((token.encode(), username.strip() or f"token-file:line-{number}"))
            self._stamp, self._tokens = stamp, tokens
        return self._tokens

    def username_of(self, token: str) -> str | None:
        given = token.encode()
        found = None
        for known, username in self._load():   # compare against all: no early exit, no timing hint
            if hmac.compare_digest(known, given) and found is None:
                found = username
        return found


class BearerBackend(AuthenticationBackend):
    """The token file first, then (with a cluster) TokenReview + SubjectAccessReview."""

    def __init__(self, *, tokens: StaticTokens | None = None, reviewer: TokenReviewer | None = None) -> None:
        self.tokens = tokens
        self.reviewer = reviewer

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        if self.tokens is None and self.reviewer is None:
            raise unauthenticated(f"the API has no authentication configured; {HOW_TO}")
        token = bearer_token(conn)
        if self.tokens is not None and (username := self.tokens.username_of(token)) is not None:
            return AuthCredentials([SCOPE]), ApiUser(username=username, source="token-file")
        if self.reviewer is not None:
            verb = VERBS.get(conn.scope.get("method", "GET"), "get")
            try:
                review = await self.reviewer.review(token, verb=verb)
            except ReviewUnavailable as exc:
                raise Refused(503, f"cannot check the token with the Kubernetes API ({exc}); try again") from None
            if review.username is not None:
                if not review.allowed:
                    raise Refused(403, f"{review.username} may not {verb} {SAR_RESOURCE}.{SAR_GROUP}, "
                                       "which this API requires")
                return AuthCredentials([SCOPE]), ApiUser(username=review.username, source="kubernetes")
        raise unauthenticated("invalid bearer token")


def backend_for(settings: Settings) -> BearerBackend:
    tokens = StaticTokens(settings.server.api_token_file) if settings.server.api_token_file is not None else None
    reviewer = TokenReviewer(settings) if settings.kube.configured else None
    return BearerBackend(tokens=tokens, reviewer=reviewer)
