"""Hooks: migrations before the pods, webhook removal before uninstall."""

from __future__ import annotations

from chart_helpers import FULLNAME, NAMESPACE, env_of, find, hooks, one, render

DELETE_POLICY = "before-hook-creation,hook-succeeded"


def weight(doc) -> int:
    return int(doc["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))


def test_migration_job(helm_bin):
    docs = render("cert-manager.yaml")
    job = one(docs, "Job", f"{FULLNAME}-migrate")
    assert hooks(job) == {"pre-install", "pre-upgrade"}
    # Kept after success (ttlSecondsAfterFinished removes it) so its status and logs can be read.
    assert job["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert c["args"] == ["migrate"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["runAsNonRoot"] is True
    env = env_of(c)
    assert env["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULLNAME}-datastores"
    # the Secret made from values must exist before the Job: an earlier hook
    secret = one(docs, "Secret", f"{FULLNAME}-datastores")
    assert hooks(secret) == {"pre-install", "pre-upgrade"}
    assert weight(secret) < weight(job)
    assert "hook-succeeded" not in secret["metadata"]["annotations"]["helm.sh/hook-delete-policy"]


def test_migration_job_with_existing_secret(helm_bin):
    docs = render("existing-secrets.yaml")
    job = one(docs, "Job", f"{FULLNAME}-migrate")
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert env["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "safety-gate-db", "key": "dsn"}


def test_no_migration_job_without_postgresql(default_docs, helm_bin):
    docs = render(sets=("postgresql.enabled=false",))
    assert not find(docs, "Job", f"{FULLNAME}-migrate")
    docs = render("cert-manager.yaml", sets=("migrations.enabled=false",))
    assert not find(docs, "Job", f"{FULLNAME}-migrate")


def test_pre_delete_cleanup(default_docs):
    name = f"{FULLNAME}-cleanup"
    sa = one(default_docs, "ServiceAccount", name)
    cr = one(default_docs, "ClusterRole", name)
    crb = one(default_docs, "ClusterRoleBinding", name)
    job = one(default_docs, "Job", name)
    for doc in (sa, cr, crb, job):
        assert hooks(doc) == {"pre-delete"}, doc["kind"]
        assert doc["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == DELETE_POLICY, doc["kind"]
    assert weight(sa) < weight(crb) < weight(job)
    assert weight(cr) < weight(crb)
    assert crb["roleRef"]["name"] == name
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    vwc = one(default_docs, "ValidatingWebhookConfiguration")
    assert c["args"] == ["cleanup", "--webhook-config", vwc["metadata"]["name"]]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_cleanup_can_be_disabled(helm_bin):
    docs = render(sets=("cleanup.enabled=false",))
    assert not [d for d in docs if "pre-delete" in hooks(d)]


def test_release_objects_are_not_hooks(default_docs):
    """The gate itself is a normal release object, never a hook."""
    for kind in ("Deployment", "Service", "ValidatingWebhookConfiguration", "PodDisruptionBudget"):
        for doc in find(default_docs, kind):
            assert not hooks(doc), kind
