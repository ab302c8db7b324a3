"""List, then watch from the list's resourceVersion; relist when the watch expires or fails.

The policy watcher and the approval sync both need the same loop, the one every Kubernetes
controller runs: a full list is the truth (``on_sync`` gets every object), then watch events
(``on_event``) keep it current. A watch that ends normally (its ``timeoutSeconds``) resumes from
the last resourceVersion seen (bookmarks keep it fresh); ``410 Gone`` means the version is too
old and only a relist can recover; anything else (API server down, RBAC) retries with backoff.

The watch itself blocks, so it runs in its own daemon thread that hands events to the loop;
``stop()`` shuts its socket so the thread ends at once instead of at the watch timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import kubernetes.watch

from webhook.kube.client import Backoff, KubeClient, is_status

logger = logging.getLogger(__name__)

OnSync = Callable[[list[dict[str, Any]]], Awaitable[None]]
OnEvent = Callable[[str, dict[str, Any]], Awaitable[None]]

_END = object()


class WatchExpired(Exception):
    """The watch's resourceVersion is gone (410): relist."""


class Informer:
    def __init__(self, client: KubeClient, *, name: str, list_fn: Callable[..., Any], on_sync: OnSync,
                 on_event: OnEvent, watch_seconds: int = 300) -> None:
        self.client = client
        self.name = name
        self.list_fn = list_fn             # a list call that also accepts watch=True (e.g. list_cluster_custom_object)
        self.on_sync = on_sync
        self.on_event = on_event
        self.watch_seconds = watch_seconds
        self.synced = asyncio.Event()      # set after the first successful list
        self._task: asyncio.Task[None] | None = None
        self._watch: kubernetes.watch.Watch | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"informer:{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.stop()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        backoff = Backoff()
        while not self._stopping:
            try:
                listing = await self.client.call(self.list_fn)
                version = listing["metadata"]["resourceVersion"]
                await self.on_sync(list(listing.get("items") or []))
                self.synced.set()
                backoff.reset()
                while not self._stopping:
                    version = await self._watch_from(version)
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                logger.info("%s: watch expired, relisting", self.name)
            except Exception as exc:  # noqa: BLE001 - the API server, RBAC, the network: retry
                delay = backoff.next()
                logger.warning("%s: list/watch failed (%s); retrying in %.1fs", self.name, _short(exc), delay)
                await asyncio.sleep(delay)

    async def _watch_from(self, version: str) -> str:
        """One watch session; returns the resourceVersion to resume from when it ends normally."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        watch = kubernetes.watch.Watch()
        self._watch = watch

        def deliver(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: the process is shutting down
                watch.stop()

        def pump() -> None:
            try:
                for event in watch.stream(self.list_fn, resource_version=version, allow_watch_bookmarks=True,
                                          timeout_seconds=self.watch_seconds,
                                          _request_timeout=(self.client.timeout, self.watch_seconds + 30)):
                    deliver(event)
                deliver(_END)
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
                deliver(exc)

        threading.Thread(target=pump, name=f"watch:{self.name}", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return version
                if isinstance(item, BaseException):
                    if is_status(item, 410):
                        raise WatchExpired() from item
                    if self._stopping:
                        return version
                    raise item
                kind = item.get("type")
                obj = item.get("raw_object") or item.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired()
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                try:
                    await self.on_event(kind, obj)
                except Exception:  # noqa: BLE001 - one bad object must not end the watch
                    logger.exception("%s: handling %s of %s failed", self.name, kind, _name(obj))
        finally:
            watch.stop()
            self._watch = None


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return "/".join(part for part in (meta.get("namespace"), meta.get("name")) if part) or "?"


def _short(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None:
        return f"{status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
