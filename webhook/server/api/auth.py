"""Who may use ``/api/v1/*`` (``/validate``, ``/healthz``, ``/readyz``, ``/metrics`` and
``/api/v1/openapi.json`` are open). Every request carries ``Authorization: Bearer <token>``.

* **Static tokens** (``--api-token-file`` / ``SAFETY_GATE_API_TOKEN_FILE``): one token per line,
  ``token[,username]``; blank lines and ``#`` comments are ignored. The file is re-read when it
  changes, so tokens rotate without a restart. A listed token may read and write.
* **Kubernetes** (the gate has a cluster: ``--kubeconfig`` or in-cluster): the token goes to a
  TokenReview; the user it names must pass a SubjectAccessReview for ``oscillationalerts`` in
  ``ai.prometheus-alerts-slm.io`` (cluster-wide) with verb ``get`` for reads and ``create`` for
  writes — the people who may see and raise alerts may read history and record assessments.
  Answers are cached for :data:`CACHE_SECONDS` (30s) per token and verb, so a busy client costs
  the API server two reviews per half minute, and a revoked token lingers at most that long.
* With both configured, the token file is checked first.
* With neither, every request is refused with 401 and a message saying how to configure one.

Missing or unknown token: 401 with ``WWW-Authenticate: Bearer``. Known but not allowed: 403.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import pathlib
import time
from typing import Any, Protocol

from starlette.requests import Request

from webhook.server.api.errors import ApiError
from webhook.settings import Settings

logger = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
REALM = 'Bearer realm="safety-gate"'
SAR_GROUP = "ai.prometheus-alerts-slm.io"
SAR_RESOURCE = "oscillationalerts"
HOW_TO = ("configure API authentication: start the gate with --api-token-file FILE "
          "(or SAFETY_GATE_API_TOKEN_FILE; one 'token[,username]' per line), or give it a cluster "
          "(--kubeconfig or in-cluster) to check bearer tokens with TokenReview")


@dataclasses.dataclass(frozen=True)
class Principal:
    username: str
    source: str  # "token-file" | "kubernetes"


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": REALM})


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class Check(Protocol):
    async def check(self, token: str, *, verb: str) -> Principal | None: ...


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

    async def check(self, token: str, *, verb: str) -> Principal | None:
        given = token.encode()
        found = None
        for known, username in self._load():   # compare against all: no early exit, no timing hint
            if hmac.compare_digest(known, given) and found is None:
                found = Principal(username=username, source="token-file")
        return found


class KubernetesReviews:
    """TokenReview + SubjectAccessReview through the synchronous client, in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._api: Any = None
        self._cache: dict[tuple[str, str], tuple[float, Principal | None, bool]] = {}

    def _client(self) -> Any:
        if self._api is None:
            from webhook.kube.client import load_api_client

            self._api = load_api_client(self.settings)
        return self._api

    def _review(self, token: str, verb: str) -> tuple[Principal | None, bool]:
        from kubernetes import client

        api = self._client()
        review = client.AuthenticationV1Api(api).create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
        status = review.status
        if not status or not status.authenticated or not status.user:
            return None, False
        user = status.user
        access = client.AuthorizationV1Api(api).create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user.username, groups=user.groups, uid=user.uid, extra=user.extra,
                resource_attributes=client.V1ResourceAttributes(group=SAR_GROUP, resource=SAR_RESOURCE, verb=verb),
            )))
        allowed = bool(access.status and access.status.allowed)
        return Principal(username=user.username or "", source="kubernetes"), allowed

    async def check(self, token: str, *, verb: str) -> Principal | None:
        key = (hashlib.sha256(token.encode()).hexdigest(), verb)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is None or cached[0] <= now:
            try:
                principal, allowed = await asyncio.to_thread(self._review, token, verb)
            except Exception as exc:  # noqa: BLE001 - any failure to check is a 503, logged
                logger.warning("TokenReview/SubjectAccessReview failed: %s", exc)
                raise ApiError(503, f"cannot check the token with the Kubernetes API ({type(exc).__name__}); "
                                    "try again") from None
            if len(self._cache) > 10_000:
                self._cache.clear()
            cached = (now + CACHE_SECONDS, principal, allowed)
            self._cache[key] = cached
        _, principal, allowed = cached
        if principal is not None and not allowed:
            raise ApiError(403, f"{principal.username} may not {verb} {SAR_RESOURCE}.{SAR_GROUP}, "
                                f"which this API requires")
        return principal


class Authenticator:
    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks

    async def authenticate(self, request: Request, *, verb: str) -> Principal:
        if not self.checks:
            raise unauthenticated(f"the API has no authentication configured; {HOW_TO}")
        token = bearer_token(request)
        for check in self.checks:
            principal = await check.check(token, verb=verb)
            if principal is not None:
                return principal
        raise unauthenticated("invalid bearer token")


def authenticator_for(settings: Settings) -> Authenticator:
    checks: list[Check] = []
    if settings.api_token_file is not None:
        checks.append(StaticTokens(settings.api_token_file))
    if settings.kubeconfig is not None or settings.in_cluster:
        checks.append(KubernetesReviews(settings))
    return Authenticator(checks)
