#!/usr/bin/env bash
# Build every Go binary the offline kind suite needs, from the Go module proxy,
# into a cache outside the repository ($SAFETY_GATE_KIND_CACHE/bin, default
# ~/.cache/safety-gate/kind/bin). Idempotent: a binary is rebuilt only when it is
# missing or the version recorded for it in bin/VERSIONS differs from the pin.
#
#   kind, containerd (+ shim, ctr), crictl, coredns, promtool: `go install MODULE@VERSION`
#   kubelet, kubeadm, kube-*: the wrapper module e2e/kind/tools (CGO_ENABLED=0)
#   etcd, kubectl, helm: e2e/build-binaries.sh's cache, never rebuilt here
#
# Environment:
#   SAFETY_GATE_KIND_CACHE  cache root (default ~/.cache/safety-gate/kind)
#   E2E_BUILD_JOBS          go build -p (default 2)
# Arguments: names of binaries to build (default: all), e.g. `build-tools.sh promtool`.
set -euo pipefail
wanted=" $* "
want() { [ "$wanted" = "  " ] || [[ "$wanted" == *" $1 "* ]]; }

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
bin="$KIND_CACHE/bin"
jobs="${E2E_BUILD_JOBS:-2}"
stamp="$bin/VERSIONS"
command -v go >/dev/null || { echo "build-tools: go is not installed" >&2; exit 1; }
mkdir -p "$bin"
touch "$stamp"
go_version="$(go env GOVERSION)"

recorded() { awk -v n="$1" '$1==n{print $2}' "$stamp"; }
record() {
  local tmp
  tmp="$(mktemp "$bin/.VERSIONS.XXXXXX")"
  { awk -v n="$1" '$1!=n' "$stamp"; echo "$1 $2 $go_version"; } | sort >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$stamp"
}
up_to_date() { [ -x "$bin/$1" ] && [ "$(recorded "$1")" = "$2" ]; }

install() { # name version package@version [go flags...]
  local name="$1" version="$2" pkg="$3"
  shift 3
  want "$name" || return 0
  up_to_date "$name" "$version" && return
  echo "build-tools: installing $name $version ($pkg)"
  local start=$SECONDS tmp
  tmp="$(mktemp -d "$bin/.gobin.XXXXXX")"
  GOBIN="$tmp" CGO_ENABLED=0 go install -p "$jobs" -trimpath -ldflags "-s -w" "$@" "$pkg"
  mv -f "$tmp/$(basename "${pkg%@*}")" "$bin/$name"
  rm -rf "$tmp"
  record "$name" "$version"
  echo "build-tools: $name in $((SECONDS - start))s"
}

# Version strings the Kubernetes binaries report (kubeadm compares them).
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldx=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldx+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
kube() { # name
  want "$1" || return 0
  up_to_date "$1" "$K8S_VERSION" && return
  echo "build-tools: building $1 $K8S_VERSION"
  local start=$SECONDS
  (cd "$here/tools" && CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "-s -w$ldx" \
      -o "$bin/.$1.new" "k8s.io/kubernetes/cmd/$1")
  mv -f "$bin/.$1.new" "$bin/$1"
  record "$1" "$K8S_VERSION"
  echo "build-tools: $1 in $((SECONDS - start))s"
}

install kind "$KIND_VERSION" "sigs.k8s.io/kind@$KIND_VERSION"
# promtool without the service-discovery plugins it never needs for `test rules`.
install promtool "$PROMETHEUS_MODULE_VERSION" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" -tags remove_all_sd
install containerd "$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION"
install containerd-shim-runc-v2 "$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
install ctr "$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
install crictl "$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
install coredns "$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION"
for name in kubelet kubeadm kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl; do
  kube "$name"
done
# etcd from the wrapper module too (same pin as e2e/tools): the e2e cache may not have it yet.
if want etcd && ! up_to_date etcd "$ETCD_VERSION"; then
  echo "build-tools: building etcd $ETCD_VERSION"
  (cd "$here/tools" && CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "-s -w" -o "$bin/.etcd.new" go.etcd.io/etcd/server/v3)
  mv -f "$bin/.etcd.new" "$bin/etcd"
  record etcd "$ETCD_VERSION"
fi
echo "build-tools: ready"
sed 's/^/  /' "$stamp"
