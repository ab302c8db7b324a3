#!/usr/bin/env bash
# Make a Docker daemon available for the kind suite: install Debian's docker.io
# when dockerd is missing, start dockerd when nothing answers on its socket, and
# wait (with a deadline) until it does. Idempotent; .ci/run calls it as root.
set -euo pipefail
# /usr/bin first: another `docker` earlier on PATH may not be Docker's client.
export PATH="/usr/bin:/usr/sbin:$PATH"
log="${DOCKERD_LOG:-/var/log/safety-gate-dockerd.log}"

if ! command -v dockerd >/dev/null; then
  echo "start-dockerd: installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if /usr/bin/docker info >/dev/null 2>&1; then
  echo "start-dockerd: dockerd is running"
  exit 0
fi
echo "start-dockerd: starting dockerd (log: $log)"
setsid nohup dockerd >>"$log" 2>&1 </dev/null &
for _ in $(seq 120); do
  /usr/bin/docker info >/dev/null 2>&1 && { echo "start-dockerd: ready"; exit 0; }
  sleep 0.5
done
echo "start-dockerd: dockerd did not answer within 60s; its log ends with:" >&2
tail -20 "$log" >&2
exit 1
