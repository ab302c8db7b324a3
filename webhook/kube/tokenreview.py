"""Who holds a bearer token, and may they use the REST API: a TokenReview, then a
SubjectAccessReview for ``oscillationalerts`` in ``ai.prometheus-alerts-slm.io`` (cluster-wide)
with verb ``get`` for reads and ``create`` for writes.

Answers are cached for :data:`CACHE_SECONDS` per token and verb, so a busy client costs the API
server two reviews per half minute, and a revoked token lingers at most that long. The reviews
run through the synchronous client in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from typing import Any

from webhook.settings import Settings

logger = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
MAX_CACHED = 10_000
SAR_GROUP = "ai.prometheus-alerts-slm.io"
SAR_RESOURCE = "oscillationalerts"


class ReviewUnavailable(Exception):
    """The API server could not answer the reviews (the caller should try again)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Review:
    """The answer for one token and verb: ``username`` None when the token is not authenticated."""

    username: str | None
    allowed: bool


class TokenReviewer:
    def __init__(self, settings: Settings, *, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._api: Any = None
        self._cache: dict[tuple[str, str], tuple[float, Review]] = {}

    def _client(self) -> Any:
        if self._api is None:
            from webhook.kube.client import load_api_client

            self._api = load_api_client(self.settings)
        return self._api

    def _review(self, token: str, verb: str) -> Review:
        from kubernetes import client

        api = self._client()
        review = client.AuthenticationV1Api(api).create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
        status = review.status
        if not status or not status.authenticated or not status.user:
            return Review(username=None, allowed=False)
        user = status.user
        access = client.AuthorizationV1Api(api).create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user.username, groups=user.groups, uid=user.uid, extra=user.extra,
                resource_attributes=client.V1ResourceAttributes(group=SAR_GROUP, resource=SAR_RESOURCE, verb=verb),
            )))
        return Review(username=user.username or "", allowed=bool(access.status and access.status.allowed))

    async def review(self, token: str, *, verb: str) -> Review:
        """The (cached) answer for ``token`` and ``verb``; ``ReviewUnavailable`` when the API server fails."""
        key = (hashlib.sha256(token.encode()).hexdigest(), verb)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            answer = await asyncio.to_thread(self._review, token, verb)
        except Exception as exc:
            logger.warning("TokenReview/SubjectAccessReview failed: %s", exc)
            raise ReviewUnavailable(type(exc).__name__) from exc
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (now + CACHE_SECONDS, answer)
        return answer
