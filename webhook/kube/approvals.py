"""Approvals of escalations: people write ``spec.approval`` on the OscillationAlert; the gate syncs it.

Why the alert and not an API of the gate: Kubernetes RBAC on ``oscillationalerts`` already
says who may approve (``kubectl patch`` or ``safety-gate approve``), the approval is audited by
the API server, and it sits next to the evidence it approves.

The engine reads approvals from PostgreSQL (``oscillation_detections``, the row the engine
wrote for the escalation), so :class:`ApprovalSync` watches the alerts and copies a NEW
approval there: one whose ``approvedAt`` is later than the stored one. Relists and replays of
the same object therefore never re-arm an approval that was already used. An approval written
without ``approvedAt`` (a plain ``kubectl patch``) gets it stamped by the gate first, so the
object stays the single source of the time the validity hour counts from.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable
from typing import Any

import click
import kubernetes.client

from webhook.kube.alerts import parse_time, rfc3339, utcnow
from webhook.kube.client import ALERTS, GROUP, VERSION, KubeClient, is_status
from webhook.kube.informer import Informer
from webhook.settings import Settings
from webhook.store.postgres import PostgresStore

logger = logging.getLogger(__name__)


class ApprovalError(click.ClickException):
    """Approving failed for a reason the person can act on (no such alert, not allowed).

    ``safety-gate approve`` prints its message as one line and exits with ``exit_code`` (1).
    """


class ApproverMismatch(ApprovalError):
    """``--approved-by`` names someone the cluster did not authenticate: bad input, exit 2."""

    exit_code = 2


def approval_patch(*, approved_by: str, reason: str, now: datetime.datetime) -> dict[str, Any]:
    return {"spec": {"approval": {"approvedBy": approved_by, "reason": reason, "approvedAt": rfc3339(now)}}}


def kubernetes_identity(client: KubeClient, *, timeout: float) -> str:
    """Who the API server says the caller is (a ``SelfSubjectReview``, authentication.k8s.io/v1).

    The approval names the Kubernetes user whose RBAC allowed it, not the login of the machine
    the command runs on (``root`` in a pod or a CI runner). Every authenticated user may create
    one (``system:basic-user``), so a refusal means the cluster predates the API (< 1.28).
    """
    api = kubernetes.client.AuthenticationV1Api(client.api_client)
    try:
        review = api.create_self_subject_review(kubernetes.client.V1SelfSubjectReview(), _request_timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the message says the approval cannot proceed
        raise ApprovalError(f"cannot tell who you are in the cluster (SelfSubjectReview failed: "
                            f"{getattr(exc, 'reason', None) or exc}); the approval needs your Kubernetes identity"
                            ) from None
    username = getattr(getattr(review.status, "user_info", None), "username", None)
    if not username:
        raise ApprovalError("the cluster's SelfSubjectReview named no user; the approval needs your identity")
    return str(username)


def approve_in_cluster(settings: Settings, *, alert: str, approved_by: str | None, reason: str,
                       now: datetime.datetime) -> tuple[dict[str, Any], str]:
    """Set ``spec.approval`` of ``NAMESPACE/ALERT`` (merge patch) as the caller's Kubernetes identity.

    Returns the patched alert and the identity recorded as ``approvedBy``. ``approved_by``, when
    given, must be that identity: a name the cluster did not authenticate is not an approval.
    """
    namespace, _, name = alert.partition("/")
    if not namespace or not name or "/" in name:
        raise ApprovalError(f"expected NAMESPACE/ALERT, got {alert!r}")
    if not reason.strip():
        raise ApprovalError("an approval needs a reason (--reason)")
    client = KubeClient.from_settings(settings)
    if client is None:
        raise ApprovalError("no cluster configured: pass --kubeconfig (or run in a cluster)")
    try:
        who = kubernetes_identity(client, timeout=settings.kube_timeout_seconds)
        if approved_by is not None and approved_by != who:
            raise ApproverMismatch(f"--approved-by {approved_by!r} is not you: the cluster authenticates you as "
                                f"{who!r}, and that is who the approval records (omit --approved-by)")
        patched = client.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, ALERTS, name, approval_patch(approved_by=who, reason=reason, now=now),
            _request_timeout=settings.kube_timeout_seconds)
        return patched, who
    except ApprovalError:
        raise
    except Exception as exc:
        if is_status(exc, 404):
            raise ApprovalError(
                f"no OscillationAlert {name!r} in namespace {namespace!r} "
                f"(kubectl get oscillationalerts -n {namespace} lists them)") from None
        if is_status(exc, 401, 403):
            raise ApprovalError(f"not allowed to approve {alert}: Kubernetes RBAC refused the patch of "
                                f"oscillationalerts ({getattr(exc, 'reason', exc)})") from None
        if is_status(exc, 422):
            raise ApprovalError(f"the approval of {alert} is invalid: {getattr(exc, 'body', exc)}") from None
        raise ApprovalError(f"cannot approve {alert}: {exc}") from exc
    finally:
        client.close()


class ApprovalSync:
    """Watches OscillationAlerts and copies new ``spec.approval`` into PostgreSQL."""

    def __init__(self, client: KubeClient, *, postgres: PostgresStore,
                 clock: Callable[[], datetime.datetime] = utcnow) -> None:
        self.client = client
        self.postgres = postgres
        self.clock = clock
        self._synced: dict[str, datetime.datetime] = {}  # alert key -> approvedAt already in PostgreSQL
        self.informer = Informer(
            client, name="approvals",
            list_fn=functools.partial(client.custom.list_cluster_custom_object, GROUP, VERSION, ALERTS),
            on_sync=self._on_sync, on_event=self._on_event)

    def start(self) -> None:
        self.informer.start()

    async def stop(self) -> None:
        await self.informer.stop()

    async def _on_sync(self, items: list[dict[str, Any]]) -> None:
        for obj in items:
            try:
                await self.consider(obj)
            except Exception:  # noqa: BLE001 - one alert must not stop the others
                logger.exception("syncing the approval of %s failed", _key(obj))

    async def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED"):
            await self.consider(obj)
        elif kind == "DELETED":
            self._synced.pop(_key(obj), None)

    async def consider(self, obj: dict[str, Any]) -> bool:
        """Copy the alert's approval into PostgreSQL if it is new; True when it was copied."""
        approval = (obj.get("spec") or {}).get("approval")
        if not isinstance(approval, dict) or not approval.get("approvedBy"):
            return False
        key = _key(obj)
        approved_at = parse_time(approval.get("approvedAt"))
        if approved_at is None:
            await self._stamp(obj, approval)
            return False  # the MODIFIED event of the stamp brings it back with its time
        if self._synced.get(key) == approved_at:
            return False
        stored = await self.postgres.approvals([key])
        if stored and stored[0].approved_at >= approved_at:
            self._synced[key] = approved_at
            return False
        found = await self.postgres.approve(key, approved_by=str(approval["approvedBy"]),
                                            reason=str(approval.get("reason") or ""), at=approved_at)
        self._synced[key] = approved_at
        if not found:
            logger.warning("approval of %s by %s: no detection with that name in PostgreSQL (cluster id %s)",
                           key, approval["approvedBy"], self.postgres.cluster_id)
            return False
        logger.info("approval of %s by %s (%s) is in force from %s", key, approval["approvedBy"],
                    approval.get("reason", ""), rfc3339(approved_at))
        return True

    async def _stamp(self, obj: dict[str, Any], approval: dict[str, Any]) -> None:
        meta = obj["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]},
                 "spec": {"approval": {**approval, "approvedAt": rfc3339(self.clock())}}}
        try:
            await self.client.call(self.client.custom.patch_namespaced_custom_object, GROUP, VERSION,
                                   meta["namespace"], ALERTS, meta["name"], patch)
        except Exception as exc:
            if not is_status(exc, 404, 409):  # 409: someone else (another replica) stamped it already
                raise


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
