#!/usr/bin/env bash
# Run the kind suite alone: `python -m pytest e2e/kind` (the README's test command collects it
# too). Starts dockerd first when it is not running (installs docker.io if needed; root only).
#
#   e2e/kind/run.sh                          # offline: every image built from source (cached)
#   SAFETY_GATE_KIND_ONLINE=1 e2e/kind/run.sh   # with a registry: kindest/node, upstream store images
#   SAFETY_GATE_KIND_KEEP=1 e2e/kind/run.sh -x -k hpa   # keep the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! { /usr/bin/docker info || docker info; } >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    bash e2e/kind/start-dockerd.sh
  else
    echo "run.sh: Docker is not running; start it (as root: e2e/kind/start-dockerd.sh)" >&2
    exit 1
  fi
fi
exec python -m pytest e2e/kind -v "$@"
