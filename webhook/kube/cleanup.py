"""``safety-gate cleanup``: remove the gate's ValidatingWebhookConfiguration (the chart's pre-delete hook).

Why a command of the gate and not ``kubectl delete`` in the hook: the gate's image has no
kubectl, and an uninstall must never leave a webhook that points at pods about to disappear
(with ``failurePolicy: Fail`` that would block every Deployment update). Already gone is success,
so the hook can be re-run.
"""

from __future__ import annotations

from webhook.kube.client import KubeClient, is_status
from webhook.settings import Settings


class CleanupError(RuntimeError):
    pass


def delete_webhook_configuration(settings: Settings, *, name: str) -> bool:
    """Delete it; True when deleted now, False when it did not exist."""
    client = KubeClient.from_settings(settings)
    if client is None:
        raise CleanupError("no cluster configured: pass --kubeconfig or set SAFETY_GATE_IN_CLUSTER=true")
    try:
        client.admission.delete_validating_webhook_configuration(name, _request_timeout=settings.kube_timeout_seconds)
        return True
    except Exception as exc:
        if is_status(exc, 404):
            return False
        if is_status(exc, 401, 403):
            raise CleanupError(f"not allowed to delete ValidatingWebhookConfiguration {name}: "
                               f"{getattr(exc, 'reason', exc)}") from None
        raise CleanupError(f"cannot delete ValidatingWebhookConfiguration {name}: {exc}") from exc
    finally:
        client.close()
