"""Self-managed certificates: every replica keeps the shared Secret, the caBundle and its own files in step.

The rotation states, grace periods and the Secret's layout are in :mod:`webhook.tls.rotation`;
this module is the I/O around that pure plan. One :meth:`CertificateRotator.sync` pass:

1. **The Secret** (the only place replicas agree through): read it, :func:`~webhook.tls.rotation.plan`
   the next step, write it — ``create`` when absent (409 AlreadyExists: another replica won the
   race, read theirs), else ``replace`` carrying the ``resourceVersion`` that was read (409
   Conflict: someone wrote in between, read and plan again). Writers therefore form one
   resourceVersion chain; a loser never overwrites a winner, it adopts the winner's pair.
2. **The caBundle** of every webhook in ``webhook_config``: read the configuration, *then*
   read the Secret again, and patch with a JSON-patch ``test`` of the configuration's
   resourceVersion. A replica holding a stale view of the Secret can then never put back an
   older bundle after a newer one (its patch fails the test and it retries from fresh reads),
   so the bundle only moves forward: ``old`` → ``new + old`` → ``new``.
3. **The local files** ``<data-dir>/tls/{tls.key,tls.crt,ca.crt}`` (``ca.crt`` is the bundle),
   each replaced atomically. Only once the caBundle trusts the pair's CA and, after a CA
   rotation, ``propagation`` has passed (:func:`~webhook.tls.rotation.may_serve`). The server's
   :class:`~webhook.tls.reloading.ReloadingServerContext` picks the files up for new handshakes;
   established connections keep theirs.

The pass is blocking (the ``kubernetes`` client is synchronous); :meth:`run` repeats it every
``interval`` seconds on a private thread, with backoff while the API server is unreachable.
Errors never stop the loop: the certificates on disk stay valid for ``renew_before``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import datetime
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from webhook.kube.client import Backoff, load_api_client
from webhook.settings import Settings
from webhook.tls.rotation import (
    CA_CERT,
    ROTATED_AT,
    TLS_CERT,
    TLS_KEY,
    Plan,
    RotationPolicy,
    ca_bundle,
    format_time,
    may_serve,
    parse_time,
    plan,
    service_hosts,
)
from webhook.tls.selfsigned import _write_atomically

logger = logging.getLogger(__name__)

#: Secret annotations for people and tests: which replica wrote the last step, and which step.
WRITTEN_BY = "safety-gate.ai.prometheus-alerts-slm.io/written-by"
LAST_ACTION = "safety-gate.ai.prometheus-alerts-slm.io/last-action"
#: How many read-plan-write rounds one pass may take (each lost race costs one).
MAX_ROUNDS = 8


class RotationError(RuntimeError):
    """A pass could not finish (API errors, or replicas that never stop racing)."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class SecretView:
    """What a read of the Secret returned (``data`` None: no Secret)."""

    data: dict[str, bytes] | None
    rotated_at: datetime.datetime | None = None
    resource_version: str | None = None
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SyncResult:
    """One pass: the steps this replica wrote, the bundle in force, whether its files changed."""

    written: list[str] = dataclasses.field(default_factory=list)
    lost_races: int = 0
    bundle: bytes = b""
    bundle_patched: bool = False
    installed: bool = False
    config_missing: bool = False  # no webhook configuration: nobody to trust the pair yet, serve it anyway
    waiting: str | None = None  # why the Secret's pair is not served yet


def _decode(obj: Mapping[str, Any]) -> SecretView:
    meta = obj.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    data = {key: base64.b64decode(value) for key, value in (obj.get("data") or {}).items()}
    return SecretView(data=data, rotated_at=parse_time(annotations.get(ROTATED_AT)),
                      resource_version=meta.get("resourceVersion"), annotations=annotations,
                      labels=dict(meta.get("labels") or {}))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _raw(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


class CertificateRotator:
    """Keeps one Secret, one webhook configuration's caBundle and one directory of files current."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *, namespace: str, secret_name: str,
                 webhook_config: str | None, hosts: Sequence[str], policy: RotationPolicy, tls_dir: Path,
                 identity: str | None = None, timeout: float = 5.0,
                 clock: Callable[[], datetime.datetime] = utcnow) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
        self.namespace = namespace
        self.secret_name = secret_name
        self.webhook_config = webhook_config
        self.hosts = tuple(hosts)
        self.policy = policy
        self.tls_dir = Path(tls_dir)
        self.identity = identity or f"{socket.gethostname()}/{os.getpid()}"
        self.timeout = timeout
        self.clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="certificates")
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, api_client: kubernetes.client.ApiClient) -> CertificateRotator:
        assert settings.cert_secret, "self-managed certificates need cert_secret"
        policy = RotationPolicy(ca_validity=settings.ca_validity, cert_validity=settings.cert_validity,
                                renew_before=settings.cert_renew_before, propagation=settings.cert_propagation,
                                overlap=settings.cert_overlap)
        return cls(api_client, namespace=settings.namespace, secret_name=settings.cert_secret,
                   webhook_config=settings.webhook_config, policy=policy, tls_dir=settings.data_dir / "tls",
                   hosts=service_hosts(service=settings.service_name, namespace=settings.namespace),
                   identity=settings.pod_name, timeout=settings.kube_timeout_seconds)

    @property
    def cert_file(self) -> Path:
        return self.tls_dir / TLS_CERT

    @property
    def key_file(self) -> Path:
        return self.tls_dir / TLS_KEY

    # -- the Secret --------------------------------------------------------

    def read_secret(self) -> SecretView:
        try:
            obj = _raw(self.core.read_namespaced_secret(self.secret_name, self.namespace, _preload_content=False,
                                                        _request_timeout=self.timeout))
        except ApiException as exc:
            if exc.status == 404:
                return SecretView(data=None)
            raise
        return _decode(obj)

    def _body(self, current: SecretView, step: Plan) -> dict[str, Any]:
        assert step.data is not None
        annotations = {k: v for k, v in current.annotations.items() if k != ROTATED_AT}
        annotations.update({WRITTEN_BY: self.identity, LAST_ACTION: step.action})
        if step.rotated_at is not None:
            annotations[ROTATED_AT] = format_time(step.rotated_at)
        metadata: dict[str, Any] = {"name": self.secret_name, "namespace": self.namespace,
                                    "annotations": annotations,
                                    "labels": current.labels or {"app.kubernetes.io/managed-by": "safety-gate"}}
        if current.resource_version is not None:
            metadata["resourceVersion"] = current.resource_version  # optimistic concurrency: 409 if stale
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": {key: _b64(value) for key, value in sorted(step.data.items())}}

    def converge_secret(self, result: SyncResult) -> SecretView:
        """Write plan steps until the plan says ``none``; return the Secret as it then is."""
        for _ in range(MAX_ROUNDS):
            current = self.read_secret()
            step = plan(now=self.clock(), data=current.data, rotated_at=current.rotated_at, hosts=self.hosts,
                        policy=self.policy)
            if not step.changes:
                return current
            body = self._body(current, step)
            try:
                if current.data is None:
                    self.core.create_namespaced_secret(self.namespace, body, _request_timeout=self.timeout)
                else:
                    self.core.replace_namespaced_secret(self.secret_name, self.namespace, body,
                                                        _request_timeout=self.timeout)
            except ApiException as exc:
                if exc.status == 409:  # another replica wrote first: use theirs
                    result.lost_races += 1
                    logger.info("certificate Secret %s/%s changed under us (%s); rereading",
                                self.namespace, self.secret_name, step.action)
                    continue
                raise
            result.written.append(step.action)
            logger.info("certificate Secret %s/%s: %s (%s)", self.namespace, self.secret_name, step.action,
                        step.reason)
        raise RotationError(f"the certificate Secret did not settle in {MAX_ROUNDS} rounds")

    # -- the webhook configuration ----------------------------------------

    def converge_bundle(self, result: SyncResult) -> SecretView:
        """Make every webhook's caBundle the Secret's bundle; return the Secret the bundle came from.

        Configuration first, Secret second, patch guarded by the configuration's
        resourceVersion: the bundle written always comes from a Secret read after the
        configuration was, so a stale replica cannot undo a newer bundle.
        """
        if not self.webhook_config:
            current = self.read_secret()
            result.bundle = ca_bundle(current.data or {})
            return current
        for _ in range(MAX_ROUNDS):
            try:
                config = _raw(self.admission.read_validating_webhook_configuration(
                    self.webhook_config, _preload_content=False, _request_timeout=self.timeout))
            except ApiException as exc:
                if exc.status == 404:
                    logger.warning("ValidatingWebhookConfiguration %s not found: no caBundle to keep",
                                   self.webhook_config)
                    current = self.read_secret()
                    result.bundle, result.config_missing = ca_bundle(current.data or {}), True
                    return current
                raise
            current = self.read_secret()
            wanted = ca_bundle(current.data or {})
            if not wanted:
                raise RotationError("the certificate Secret has no CA")
            encoded = _b64(wanted)
            webhooks = config.get("webhooks") or []
            operations: list[dict[str, Any]] = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": config["metadata"]["resourceVersion"]}]
            for index, webhook in enumerate(webhooks):
                if (webhook.get("clientConfig") or {}).get("caBundle") != encoded:
                    operations.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]})
                    operations.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle",
                                       "value": encoded})
            if len(operations) == 1:
                result.bundle = wanted
                return current
            try:
                self.admission.patch_validating_webhook_configuration(self.webhook_config, operations,
                                                                      _request_timeout=self.timeout)
            except ApiException as exc:
                if exc.status in (409, 422):  # changed since we read it (a failed test is 422)
                    result.lost_races += 1
                    continue
                raise
            result.bundle, result.bundle_patched = wanted, True
            logger.info("caBundle of %s: %d CA(s)", self.webhook_config, wanted.count(b"BEGIN CERTIFICATE"))
            return current
        raise RotationError(f"the caBundle of {self.webhook_config} did not settle in {MAX_ROUNDS} rounds")

    # -- the local files ---------------------------------------------------

    def install(self, view: SecretView, *, bundle_pem: bytes, result: SyncResult) -> None:
        """Write the Secret's pair (key first) and the bundle to ``tls_dir`` when allowed and changed."""
        data = view.data or {}
        if not data.get(TLS_CERT) or not data.get(TLS_KEY):
            result.waiting = "the Secret has no serving pair"
            return
        trusted = bundle_pem if self.webhook_config and not result.config_missing else ca_bundle(data)
        if not may_serve(data, rotated_at=view.rotated_at, trusted_bundle=trusted, now=self.clock(),
                         policy=self.policy):
            result.waiting = "the new CA is not trusted long enough yet"
            return
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        files = [(TLS_KEY, data[TLS_KEY], 0o600), (TLS_CERT, data[TLS_CERT], 0o644),
                 (CA_CERT, ca_bundle(data), 0o644)]
        for name, content, mode in files:
            path = self.tls_dir / name
            try:
                if path.read_bytes() == content:
                    continue
            except FileNotFoundError:
                pass
            _write_atomically(path, content, mode=mode)
            result.installed = True
        if result.installed:
            logger.info("serving certificate from Secret %s/%s written to %s", self.namespace, self.secret_name,
                        self.tls_dir)

    def serving_pair_installed(self) -> bool:
        return self.cert_file.is_file() and self.key_file.is_file()

    # -- one pass and the loop -------------------------------------------

    def sync(self) -> SyncResult:
        """One blocking pass: Secret, caBundle, files (see the module docstring)."""
        result = SyncResult()
        self.converge_secret(result)
        view = self.converge_bundle(result)
        self.install(view, bundle_pem=result.bundle, result=result)
        return result

    def bootstrap(self, *, deadline: float) -> bool:
        """Sync until this replica has a pair on disk or ``deadline`` (monotonic) passes; whether it has one.

        ``serve`` calls this before it listens, so the first handshake already uses the
        cluster's pair; it waits out ``propagation`` when it starts in the middle of a CA rotation.
        """
        import time

        backoff = Backoff(base=0.5, cap=5.0)
        while True:
            try:
                result = self.sync()
                if self.serving_pair_installed() and result.waiting is None:
                    return True
                delay = 0.5
            except (ApiException, RotationError, OSError, ValueError) as exc:
                logger.warning("cannot set up certificates from Secret %s/%s yet: %s", self.namespace,
                               self.secret_name, exc)
                delay = backoff.next()
            if time.monotonic() + delay >= deadline:
                return self.serving_pair_installed()
            time.sleep(delay)

    async def sync_async(self) -> SyncResult:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.sync)

    async def run(self, *, interval: float) -> None:
        backoff = Backoff(base=0.5, cap=min(30.0, max(interval, 1.0)))
        while True:
            try:
                await self.sync_async()
                backoff.reset()
                delay = interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any API error
                delay = backoff.next()
                logger.warning("certificate rotation pass failed (retrying in %.1fs): %s", delay, exc)
            await asyncio.sleep(delay)

    def start(self, *, interval: float) -> None:
        self._task = asyncio.create_task(self.run(interval=interval), name="certificate-rotation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._executor.shutdown(wait=False, cancel_futures=True)


def bootstrap_serving_files(settings: Settings, *, timeout: float = 60.0) -> tuple[Path, Path] | None:
    """Before ``serve`` listens: the cluster's pair in ``<data-dir>/tls``, or None (use a local pair).

    None without a cluster or when the API server cannot be reached in ``timeout`` seconds;
    the rotation loop started by the runtime replaces the local pair as soon as it can.
    """
    import time

    try:
        api_client = load_api_client(settings)
    except Exception as exc:  # noqa: BLE001 - a broken kubeconfig is reported again by the runtime
        logger.warning("self-managed certificates: %s", exc)
        return None
    if api_client is None:
        logger.warning("SAFETY_GATE_CERT_SECRET is set but no cluster is configured: using a local certificate")
        return None
    rotator = CertificateRotator.from_settings(settings, api_client=api_client)
    try:
        deadline = time.monotonic() + timeout + settings.cert_propagation.total_seconds()
        if rotator.bootstrap(deadline=deadline):
            return rotator.cert_file, rotator.key_file
        logger.warning("no certificate from Secret %s/%s yet: serving a local one until the rotation loop "
                       "gets through", settings.namespace, settings.cert_secret)
        return None
    finally:
        rotator._executor.shutdown(wait=False)
        api_client.close()


__all__ = ["CertificateRotator", "RotationError", "SecretView", "SyncResult", "bootstrap_serving_files"]
