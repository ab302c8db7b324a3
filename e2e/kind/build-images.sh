#!/usr/bin/env bash
# Build, with no container registry, every image the kind suite runs:
#
#   safety-gate.local/debian:bookworm        debootstrap --variant=minbase, docker import
#   safety-gate.local/python:3.11-bookworm   + Debian's python3 (the gate image's base)
#   safety-gate.local/postgresql:15          Debian's postgresql-15, UTF8 cluster, postgres:*-image env contract
#   safety-gate.local/redis:7.0              Debian's redis-server
#   registry.k8s.io/{kube-*,etcd,pause,coredns/coredns}   tags kubeadm expects, from Go builds
#   safety-gate.local/kind-node:$K8S_VERSION-...          kind's images/base files + Debian + Go builds,
#                                                         with the control-plane images imported
#
# Go binaries come from build-tools.sh (run first). An image is built only when
# its tag (which carries the versions it is made of) is missing from Docker, so
# this is cheap to run every time. Prints the node image's tag on its last line.
#
# Environment: SAFETY_GATE_KIND_CACHE (default ~/.cache/safety-gate/kind), DOCKER (default docker).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
# Debian's client: another `docker` may come first on PATH.
docker="${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
export DOCKER_BUILDKIT=0   # plain `docker build` (the suite needs no BuildKit)
bin="$KIND_CACHE/bin"
work="$KIND_CACHE/build"
kind_src="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base"
mkdir -p "$work"

log() { echo "build-images: $*" >&2; }
have() { "$docker" image inspect "$1" >/dev/null 2>&1; }
build() { # tag context-dir (Dockerfile read from stdin)
  local tag="$1" ctx="$2" start=$SECONDS
  cat >"$ctx/Dockerfile"
  log "building $tag"
  "$docker" build -q --force-rm -t "$tag" "$ctx" >/dev/null
  log "built $tag in $((SECONDS - start))s"
}
fresh() { rm -rf "$work/$1" && mkdir -p "$work/$1" && echo "$work/$1"; }

[ -d "$kind_src/files" ] || { log "kind's images/base files are not in the Go module cache ($kind_src)"; exit 1; }

# -- Debian base ---------------------------------------------------------------
DEBIAN=safety-gate.local/debian:$DEBIAN_SUITE
if ! have "$DEBIAN"; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  rootfs="$work/rootfs-$DEBIAN_SUITE"
  rm -rf "$rootfs"
  log "debootstrap --variant=minbase $DEBIAN_SUITE"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "$docker" import - "$DEBIAN" >/dev/null
  rm -rf "$rootfs"
fi
APT='apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends'
CLEAN='apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log'

# -- the gate's base and its stores ----------------------------------------------
PYTHON=safety-gate.local/python:3.11-$DEBIAN_SUITE
have "$PYTHON" || build "$PYTHON" "$(fresh python)" <<EOF
FROM $DEBIAN
RUN $APT python3 python3-venv ca-certificates && $CLEAN
EOF

POSTGRES=safety-gate.local/postgresql:15
if ! have "$POSTGRES"; then
  ctx="$(fresh postgresql)"
  cp "$here/images/postgresql-entrypoint.sh" "$ctx/entrypoint.sh"
  build "$POSTGRES" "$ctx" <<EOF
FROM $DEBIAN
# uid/gid 70 like the postgres:*-alpine images, so the chart's securityContext fits both.
RUN groupadd --system --gid 70 postgres \
 && useradd --system --uid 70 --gid 70 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
 && $APT postgresql-15 && $CLEAN \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R 70:70 /var/lib/postgresql /var/run/postgresql
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:\$PATH PGDATA=/var/lib/postgresql/data
USER 70:70
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
EOF
fi

REDIS=safety-gate.local/redis:7.0
have "$REDIS" || build "$REDIS" "$(fresh redis)" <<EOF
FROM $DEBIAN
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid 999 --home-dir /data --shell /usr/sbin/nologin redis \
 && $APT redis-server && $CLEAN && mkdir -p /data && chown 999:999 /data
USER 999:999
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
EOF

# -- the gate's image, from the repository's Dockerfile ------------------------------
# Always rebuilt (the code changes; Docker's layer cache keeps it quick). pip in a
# container may not trust this machine's CA, so the wheels are fetched on the host:
# the project's, plus its dependencies' for the image's CPython 3.11 (cached by
# pyproject.toml's hash), and the Dockerfile installs them with --no-index.
GATE_IMAGE="${GATE_IMAGE:-safety-gate.local/safety-gate:kind}"
repo="$(cd "$here/../.." && pwd)"
ctx="$(fresh gate)"
mkdir -p "$ctx/wheelhouse"
python3 -m pip wheel --quiet --no-deps -w "$ctx/wheelhouse" "$repo" >/dev/null
deps="$KIND_CACHE/wheels/$(sha256sum "$repo/pyproject.toml" | cut -c1-16)-${PYTHON//[:\/]/_}"
if [ ! -f "$deps/.complete" ]; then
  # Resolved by the image's own interpreter (environment markers compare its full
  # version), with the host's CA bundle, which pip in the container lacks.
  log "downloading the gate's dependency wheels into $deps"
  rm -rf "$deps" && mkdir -p "$deps"
  ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
  "$docker" run --rm --network host -v "$ctx/wheelhouse:/wheelhouse:ro" -v "$deps:/deps" \
    -v "$ca:/etc/safety-gate-host-ca.crt:ro" -e PIP_CERT=/etc/safety-gate-host-ca.crt \
    ${PIP_INDEX_URL:+-e PIP_INDEX_URL="$PIP_INDEX_URL"} --entrypoint sh "$PYTHON" -c \
    'python3 -m venv /tmp/venv && /tmp/venv/bin/pip download --quiet --disable-pip-version-check \
       --only-binary=:all: -d /deps /wheelhouse/safety_gate-*.whl'
  rm -f "$deps"/safety_gate-*.whl
  touch "$deps/.complete"
fi
cp "$deps"/*.whl "$ctx/wheelhouse/"
cp -r "$repo/pyproject.toml" "$repo/README.md" "$repo/webhook" "$repo/migrations" "$ctx/"
[ -f "$repo/LICENSE" ] && cp "$repo/LICENSE" "$ctx/"
find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
log "building $GATE_IMAGE (base $PYTHON)"
start=$SECONDS
"$docker" build -q --force-rm -f "$repo/Dockerfile" --build-arg "BASE=$PYTHON" -t "$GATE_IMAGE" "$ctx" >/dev/null
log "built $GATE_IMAGE in $((SECONDS - start))s ($("$docker" image inspect -f '{{.Size}}' "$GATE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"

# -- control-plane images, tagged as kubeadm expects -------------------------------
[ "${1:-}" = --stores-only ] && exit 0
for name in kind containerd containerd-shim-runc-v2 ctr crictl coredns kubelet kubeadm kubectl \
            kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd; do
  [ -x "$bin/$name" ] || { log "$bin/$name is missing: run e2e/kind/build-tools.sh first"; exit 1; }
done
K8S_IMAGES=()
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  tag="registry.k8s.io/$name:$K8S_VERSION"
  K8S_IMAGES+=("$tag")
  have "$tag" && continue
  ctx="$(fresh "$name")"
  cp "$bin/$name" "$ctx/"
  build "$tag" "$ctx" <<EOF
FROM $DEBIAN
COPY $name /usr/local/bin/$name
ENTRYPOINT ["/usr/local/bin/$name"]
EOF
done

tag="registry.k8s.io/kube-proxy:$K8S_VERSION"
K8S_IMAGES+=("$tag")
if ! have "$tag"; then
  ctx="$(fresh kube-proxy)"
  cp "$bin/kube-proxy" "$ctx/kube-proxy.real"
  cp "$here/images/kube-proxy-wrapper.sh" "$ctx/kube-proxy"
  build "$tag" "$ctx" <<EOF
FROM $DEBIAN
RUN $APT iptables conntrack ipset kmod && $CLEAN
COPY kube-proxy.real /usr/local/bin/kube-proxy.real
COPY kube-proxy /usr/local/bin/kube-proxy
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
EOF
fi

tag="registry.k8s.io/etcd:$ETCD_IMAGE_TAG"
K8S_IMAGES+=("$tag")
if ! have "$tag"; then
  ctx="$(fresh etcd)"
  cp "$bin/etcd" "$ctx/"
  build "$tag" "$ctx" <<EOF
FROM $DEBIAN
COPY etcd /usr/local/bin/etcd
ENTRYPOINT ["/usr/local/bin/etcd"]
EOF
fi

tag="registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
K8S_IMAGES+=("$tag")
if ! have "$tag"; then
  ctx="$(fresh coredns)"
  cp "$bin/coredns" "$ctx/"
  build "$tag" "$ctx" <<EOF
FROM $DEBIAN
COPY coredns /coredns
USER 65532:65532
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
EOF
fi

tag="registry.k8s.io/pause:$PAUSE_VERSION"
K8S_IMAGES+=("$tag")
if ! have "$tag"; then
  ctx="$(fresh pause)"
  pause_c="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
  [ -f "$pause_c" ] || (cd "$here/tools" && go mod download k8s.io/kubernetes)
  command -v gcc >/dev/null && [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; }
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$ctx/pause" "$pause_c"
  strip "$ctx/pause"
  build "$tag" "$ctx" <<EOF
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
EOF
fi

# -- the node image ----------------------------------------------------------------
NODE="safety-gate.local/kind-node:$K8S_VERSION-kind$KIND_VERSION-containerd$CONTAINERD_VERSION"
if ! have "$NODE"; then
  ctx="$(fresh node)"
  cp -r "$kind_src/files" "$ctx/files"
  chmod -R u+w "$ctx/files"
  mkdir -p "$ctx/bin"
  for name in containerd containerd-shim-runc-v2 ctr crictl kubelet kubeadm kubectl; do cp "$bin/$name" "$ctx/bin/"; done
  cp -r "$here/node" "$ctx/node"
  echo "$K8S_VERSION" >"$ctx/node/version"
  build "$NODE-pre" "$ctx" <<EOF
FROM $DEBIAN
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* \
 && $APT systemd dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps runc containernetworking-plugins \
 && $CLEAN \
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
 && ln -sf /usr/lib/systemd/systemd /sbin/init
COPY bin/containerd bin/containerd-shim-runc-v2 bin/ctr bin/crictl /usr/local/bin/
COPY bin/kubelet bin/kubeadm bin/kubectl /usr/bin/
COPY node/version /kind/version
COPY node/manifests/ /kind/manifests/
COPY node/cni/ /etc/cni/net.d/
COPY node/safety-gate-node-entrypoint /usr/local/bin/safety-gate-node-entrypoint
RUN mkdir -p /opt/cni/bin /etc/kubernetes/manifests \
 && for p in /usr/lib/cni/*; do ln -sf "\$p" /opt/cni/bin/; done \
 && chmod 0755 /usr/local/bin/safety-gate-node-entrypoint \
 && sed -i -e 's#sandbox_image = .*#sandbox_image = "registry.k8s.io/pause:$PAUSE_VERSION"#' \
           -e 's#restrict_oom_score_adj = false#restrict_oom_score_adj = true#' /etc/containerd/config.toml \
 && ctr oci spec \
     | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
     | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
 && systemctl mask systemd-binfmt.service \
 && containerd --version && runc --version && kubelet --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/safety-gate-node-entrypoint", "/sbin/init"]
EOF
  # Import the control-plane images into the node's containerd (content only, like
  # `kind build node-image`), then commit: the node starts with them in place.
  log "importing ${#K8S_IMAGES[@]} images into the node's containerd"
  cid="$("$docker" run -d --entrypoint sleep "$NODE-pre" infinity)"
  trap '"$docker" rm -f -v "$cid" >/dev/null 2>&1 || true' EXIT
  "$docker" exec "$cid" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  for _ in $(seq 60); do "$docker" exec "$cid" ctr version >/dev/null 2>&1 && break; sleep 0.5; done
  "$docker" save "${K8S_IMAGES[@]}" | "$docker" exec -i "$cid" ctr --namespace=k8s.io images import \
      --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
  "$docker" exec "$cid" ctr --namespace=k8s.io images ls -q | sed 's/^/  /' >&2
  "$docker" exec "$cid" bash -c 'pkill containerd; rm -f /tmp/containerd.log'
  for _ in $(seq 60); do "$docker" exec "$cid" pgrep -x containerd >/dev/null || break; sleep 0.5; done
  "$docker" commit \
    --change 'ENTRYPOINT ["/usr/local/bin/safety-gate-node-entrypoint", "/sbin/init"]' \
    --change 'CMD []' "$cid" "$NODE" >/dev/null
  "$docker" rm -f -v "$cid" >/dev/null
  trap - EXIT
  "$docker" rmi "$NODE-pre" >/dev/null
  log "built $NODE"
fi
echo "$NODE"
