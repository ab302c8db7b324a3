"""NOTES.txt tells people how to see alerts, approve, and remove the webhook."""

from __future__ import annotations

import shutil

import yaml
from chart_helpers import FULLNAME, run_helm


def rendered_notes(tmp_path, *args: str) -> str:
    """`helm template` skips NOTES.txt, so render it through a probe template in a copy of the chart."""
    from chart_helpers import CHART

    chart = tmp_path / "safety-gate"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_probe.tpl").write_text('{{- define "probe.notes" -}}\n' + notes + "\n{{- end -}}\n")
    (chart / "templates" / "notes-probe.yaml").write_text('notes: |\n{{ include "probe.notes" . | indent 2 }}\n')
    out = run_helm("template", "sg", str(chart), "-n", "gate-system", "--show-only", "templates/notes-probe.yaml",
                   *args, check=True).stdout
    return yaml.safe_load(out)["notes"]


def test_notes(helm_bin, tmp_path):
    notes = rendered_notes(tmp_path)
    assert "kubectl get oscillationalerts -A" in notes
    assert "kubectl get oa -n" in notes
    assert "kubectl describe oa" in notes
    assert "safety-gate approve NAMESPACE/ALERT --reason" in notes
    assert """-p '{"spec":{"approval":{"approvedBy":""" in notes
    assert f"kubectl delete validatingwebhookconfiguration {FULLNAME}" in notes
    # A default install brings its own stores, and says they are not for production.
    assert "WARNING: no PostgreSQL configured" not in notes
    assert "single-instance PostgreSQL (StatefulSet sg-safety-gate-postgresql" in notes
    assert "CloudNativePG" in notes and "postgresql.enabled=false" in notes
    assert "keeps the database: Secret gate-system/sg-safety-gate-postgresql and PVC data-sg-safety-gate-postgresql-0" \
        in " ".join(notes.split())


def test_notes_without_any_postgresql(helm_bin, tmp_path):
    notes = rendered_notes(tmp_path, "--set", "postgresql.enabled=false")
    assert "WARNING: no PostgreSQL configured" in notes
    assert "single-instance PostgreSQL" not in notes


def test_notes_with_datastores(helm_bin, tmp_path):
    notes = rendered_notes(tmp_path, "--set", "postgresql.dsn=postgresql://db/sg")
    assert "WARNING: no PostgreSQL" not in notes
    assert f"delete secret {FULLNAME}-datastores" in notes
