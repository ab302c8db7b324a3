"""One Kubernetes API client for the process, and the rule for using it: never on the event loop.

The official ``kubernetes`` client is synchronous. Every call goes through :meth:`KubeClient.call`,
which runs it on a small private thread pool (so a slow API server cannot starve the loop's
default executor, which DNS lookups share) with a timeout on the request *and* on the wait.
Long-running watches get their own threads (see ``webhook.kube.informer``).

Without ``--kubeconfig`` and outside a cluster there is no client at all: :func:`load_api_client`
returns None and the gate runs without any Kubernetes component (DESIGN §6).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from webhook.policy.model import API_GROUP
from webhook.settings import Settings

logger = logging.getLogger(__name__)

GROUP = API_GROUP
VERSION = "v1"
ALERTS = "oscillationalerts"
PATTERNS = "oscillationpatterns"
ALERT_KIND = "OscillationAlert"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_TIMEOUT = 5.0

T = TypeVar("T")

__all__ = [
    "ALERTS",
    "ALERT_KIND",
    "API_VERSION",
    "GROUP",
    "PATTERNS",
    "VERSION",
    "ApiException",
    "Backoff",
    "KubeClient",
    "KubeConfigError",
    "is_status",
    "load_api_client",
]


class KubeConfigError(RuntimeError):
    """The cluster configuration cannot be loaded (a bad kubeconfig, or no service-account token)."""


def load_api_client(settings: Settings) -> kubernetes.client.ApiClient | None:
    """An API client from ``settings.kubeconfig``, else in-cluster config when ``settings.in_cluster``; else None."""
    try:
        if settings.kubeconfig is not None:
            return kubernetes.config.new_client_from_config(config_file=str(settings.kubeconfig))
        if settings.in_cluster:
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return kubernetes.client.ApiClient(configuration)
    except (kubernetes.config.ConfigException, OSError) as exc:
        source = settings.kubeconfig or "in-cluster service account"
        raise KubeConfigError(f"cannot load the cluster configuration from {source}: {exc}") from exc
    return None


def is_status(exc: BaseException, *codes: int) -> bool:
    """Whether ``exc`` is an API error with one of these HTTP status codes."""
    return isinstance(exc, ApiException) and exc.status in codes


class KubeClient:
    """The typed APIs over one ``ApiClient``, with :meth:`call` to use them from async code."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, timeout: float = DEFAULT_TIMEOUT,
                 workers: int = 4) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.autoscaling = kubernetes.client.AutoscalingV2Api(api_client)
        self.admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")

    @classmethod
    def from_settings(cls, settings: Settings) -> KubeClient | None:
        api_client = load_api_client(settings)
        if api_client is None:
            return None
        return cls(api_client, timeout=settings.kube_timeout_seconds)

    async def call(self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        """Run one blocking API call in the pool; the request and the wait are both bounded."""
        budget = timeout or self.timeout
        kwargs.setdefault("_request_timeout", budget)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        return await asyncio.wait_for(future, budget + 1.0)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        try:
            self.api_client.close()
        except Exception:  # noqa: BLE001 - closing a pool at shutdown must not fail the shutdown
            logger.debug("closing the Kubernetes API client failed", exc_info=True)


@dataclasses.dataclass
class Backoff:
    """Exponential backoff with a cap: 0.5s, 1s, 2s, ... 30s; ``reset()`` after a success."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
