#!/usr/bin/env bash
# Run the end-to-end suite (e2e/) against a kind cluster with the Helm chart installed.
#
# Needs: docker, kind, kubectl, helm on PATH, and the project installed (pip install -e '.[test]').
# Environment:
#   KIND_CLUSTER   cluster name (default safety-gate-e2e); an existing one is reused
#   KIND_IMAGE     node image (default: kind's default)
#   KEEP_CLUSTER   1: leave the cluster (and the release) running afterwards
#   PYTEST_ARGS    extra pytest arguments (default -q)
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${KIND_CLUSTER:-safety-gate-e2e}
RELEASE=safety-gate
RELEASE_NS=safety-gate
IMAGE=safety-gate:e2e
WORK=$(mktemp -d)
PF_PID=""

cleanup() {
  [ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null || true
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    # Uninstall first: the chart's pre-delete hook runs `safety-gate cleanup` (the webhook must go).
    helm uninstall "$RELEASE" -n "$RELEASE_NS" --wait --timeout 180s || true
    if kubectl get validatingwebhookconfiguration "$RELEASE" >/dev/null 2>&1; then
      echo "FAIL: the pre-delete hook left ValidatingWebhookConfiguration $RELEASE behind" >&2
      STATUS=1
    fi
    kind delete cluster --name "$CLUSTER" || true
  fi
  rm -rf "$WORK"
}
STATUS=0
trap 'cleanup; exit $STATUS' EXIT

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "$tool is required on PATH" >&2; exit 2; }
done

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" ${KIND_IMAGE:+--image "$KIND_IMAGE"} --wait 120s
fi
export KUBECONFIG="$WORK/kubeconfig"
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

kubectl apply -f e2e/kind/datastores.yaml
kubectl -n safety-gate-db rollout status deploy/postgres --timeout=300s
kubectl -n safety-gate-db rollout status deploy/redis --timeout=300s

# Serving certificate for the Service's DNS name, handed to the chart in `secret` mode.
python -m webhook certs --out "$WORK/tls" --host "$RELEASE.$RELEASE_NS.svc" --host "$RELEASE.$RELEASE_NS.svc.cluster.local"
kubectl create namespace "$RELEASE_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$RELEASE_NS" create secret tls "$RELEASE-e2e-tls" --cert "$WORK/tls/tls.crt" --key "$WORK/tls/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -

helm upgrade --install "$RELEASE" charts/safety-gate -n "$RELEASE_NS" --wait --timeout 300s \
  --set image.repository=safety-gate --set image.tag=e2e --set image.pullPolicy=Never \
  --set replicaCount=1 --set podDisruptionBudget.enabled=false \
  --set clusterId=e2e \
  --set postgresql.dsn="postgresql://postgres:e2e@postgres.safety-gate-db.svc:5432/safety_gate" \
  --set redis.url="redis://redis.safety-gate-db.svc:6379/0" \
  --set certificates.mode=secret --set certificates.existingSecret="$RELEASE-e2e-tls" \
  --set certificates.caBundle="$(base64 -w0 <"$WORK/tls/ca.crt")" \
  --set 'extraEnv[0].name=SAFETY_GATE_ALERT_SWEEP_SECONDS' --set-string 'extraEnv[0].value=1'

# The tests read the gate's PostgreSQL (history row counts) through a port-forward.
kubectl -n safety-gate-db port-forward svc/postgres 15432:5432 >"$WORK/port-forward.log" 2>&1 &
PF_PID=$!
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/15432) 2>/dev/null && break; sleep 0.2; done

set +e
SAFETY_GATE_E2E_TARGET=kind \
SAFETY_GATE_E2E_POSTGRES_DSN="postgresql://postgres:e2e@127.0.0.1:15432/safety_gate" \
SAFETY_GATE_E2E_RELEASE="$RELEASE" SAFETY_GATE_E2E_RELEASE_NAMESPACE="$RELEASE_NS" \
  python -m pytest e2e ${PYTEST_ARGS:--q}
STATUS=$?
set -e
