"""RBAC is least privilege and exactly as designed."""

from __future__ import annotations

from chart_helpers import FULLNAME, NAMESPACE, find, one, render

GROUP = "ai.prometheus-alerts-slm.io"


def normalize(rules: list[dict]) -> set[tuple]:
    """(apiGroup, resource, resourceNames, verb) tuples, one per combination."""
    out = set()
    for r in rules:
        names = tuple(sorted(r.get("resourceNames", [])))
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r["verbs"]:
                    out.add((g, res, names, v))
    return out


def expand(spec: dict[tuple, list[str]]) -> set[tuple]:
    return {(g, res, names, v) for (g, res, names), verbs in spec.items() for v in verbs}


WEBHOOK_NAMES = (FULLNAME,)
GATE_CLUSTER_RULES = {
    (GROUP, "oscillationalerts", ()): ["get", "list", "watch", "create", "update", "patch"],
    (GROUP, "oscillationalerts/status", ()): ["get", "update", "patch"],
    (GROUP, "oscillationpatterns", ()): ["get", "list", "watch"],
    (GROUP, "oscillationpatterns/status", ()): ["patch"],  # the Accepted condition of each policy
    ("", "events", ()): ["create"],                         # why a policy is not applied
    (GROUP, "actionhistorysummaries", ()): ["get", "list", "watch", "create", "patch", "delete"],  # + settings
    (GROUP, "effectivenessmetrics", ()): ["get", "list", "create", "patch", "delete"],
    ("apps", "deployments", ()): ["get", "list", "watch"],
    ("apps", "statefulsets", ()): ["get", "list", "watch"],
    ("apps", "replicasets", ()): ["get"],                    # the Deployment behind an evicted pod
    ("", "pods", ()): ["get"],                               # an evicted pod's owner
    ("", "nodes", ()): ["get"],                              # an eviction from a cordoned node is a drain
    ("tekton.dev", "pipelineruns", ()): ["list", "watch"],  # truthful history: confirm creations
    ("autoscaling", "horizontalpodautoscalers", ()): ["get", "list", "watch"],
    ("kubernaut.ai", "workflowexecutions", ()): ["get"],
    ("kubernaut.ai", "remediationrequests", ()): ["get"],
    ("kubernaut.ai", "effectivenessassessments", ()): ["list", "watch"],
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", WEBHOOK_NAMES): ["get", "patch", "update"],
    ("authentication.k8s.io", "tokenreviews", ()): ["create"],
    ("authorization.k8s.io", "subjectaccessreviews", ()): ["create"],
}
GATE_ROLE_RULES = {
    ("", "secrets", ()): ["get", "list", "watch", "create"],
    ("", "secrets", (f"{FULLNAME}-tls",)): ["update", "patch"],
    ("coordination.k8s.io", "leases", ()): ["get", "list", "watch", "create", "update", "patch"],
}


def test_gate_cluster_role_exact(default_docs):
    cr = one(default_docs, "ClusterRole", FULLNAME)
    assert normalize(cr["rules"]) == expand(GATE_CLUSTER_RULES)


def test_gate_role_exact(default_docs):
    role = one(default_docs, "Role", FULLNAME)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert normalize(role["rules"]) == expand(GATE_ROLE_RULES)


def test_no_wildcards_and_no_cluster_wide_secrets(helm_bin):
    for values in ("default.yaml", "cert-manager.yaml", "existing-secrets.yaml", "policies.yaml"):
        docs = render(values)
        for doc in find(docs, "ClusterRole") + find(docs, "Role"):
            for rule in doc["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), (values, doc["metadata"]["name"], rule)
                assert "nonResourceURLs" not in rule
                if doc["kind"] == "ClusterRole":
                    assert "secrets" not in rule.get("resources", []), (values, rule)
                if "validatingwebhookconfigurations" in rule.get("resources", []):
                    assert rule.get("resourceNames") == [FULLNAME], rule
                    assert not {"list", "watch", "create", "deletecollection"} & set(rule["verbs"]), rule


def test_externally_managed_certificates_need_no_secret_access(helm_bin):
    for values in ("cert-manager.yaml", "existing-secrets.yaml"):
        docs = render(values)
        role = one(docs, "Role", FULLNAME)
        assert not [r for r in role["rules"] if "secrets" in r["resources"]]
        cr = one(docs, "ClusterRole", FULLNAME)
        vwc = [r for r in cr["rules"] if "validatingwebhookconfigurations" in r["resources"]]
        assert vwc == [{"apiGroups": ["admissionregistration.k8s.io"],
                        "resources": ["validatingwebhookconfigurations"],
                        "resourceNames": [FULLNAME], "verbs": ["get"]}]


def test_bindings_point_at_the_service_account(default_docs):
    sa = one(default_docs, "ServiceAccount", FULLNAME)
    assert sa["automountServiceAccountToken"] is True
    subject = {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    crb = one(default_docs, "ClusterRoleBinding", FULLNAME)
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert crb["subjects"] == [subject]
    rb = one(default_docs, "RoleBinding", FULLNAME)
    assert rb["metadata"]["namespace"] == NAMESPACE
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
    assert rb["subjects"] == [subject]
    deploy = one(default_docs, "Deployment", FULLNAME)
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME


def test_cleanup_hook_may_only_delete_its_own_webhook(default_docs):
    cr = one(default_docs, "ClusterRole", f"{FULLNAME}-cleanup")
    assert normalize(cr["rules"]) == expand({
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", WEBHOOK_NAMES): ["get", "delete"],
    })


def test_summaries_off_drops_their_rules_and_tells_the_gate():
    docs = render("default.yaml", sets=["summaries.enabled=false"])
    rules = normalize(one(docs, "ClusterRole", FULLNAME)["rules"])
    assert not {rule for rule in rules if rule[1] in ("actionhistorysummaries", "effectivenessmetrics")}
    assert normalize(one(docs, "ClusterRole", FULLNAME)["rules"]) == expand(
        {key: verbs for key, verbs in GATE_CLUSTER_RULES.items()
         if key[1] not in ("actionhistorysummaries", "effectivenessmetrics")})
    (container,) = one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SAFETY_GATE_SUMMARIES"] == "false"
    assert "SAFETY_GATE_SUMMARY_WRITES_PER_SECOND" not in env


def test_summary_pacing_reaches_the_gate():
    docs = render("default.yaml", sets=["summaries.writesPerSecond=2", "summaries.burst=4"])
    (container,) = one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SAFETY_GATE_SUMMARIES"] == "true"
    assert (env["SAFETY_GATE_SUMMARY_WRITES_PER_SECOND"], env["SAFETY_GATE_SUMMARY_BURST"]) == ("2", "4")
    assert env["SAFETY_GATE_SUMMARY_INTERVAL"] == "10"
