#!/usr/bin/env bash
# Build the control-plane binaries the e2e suite runs (etcd, kube-apiserver,
# kube-controller-manager, kubectl) from the Go module proxy, plus helm, into a cache directory outside
# the repository. Idempotent: a binary is rebuilt only when it is missing or
# the version recorded for it in $BIN/VERSIONS differs from the pinned one.
#
# Versions are pinned by e2e/tools/go.mod (regenerate with
# e2e/tools/update-versions.sh); helm by $HELM_VERSION.
#
# Environment:
#   SAFETY_GATE_E2E_BIN  cache dir (default: $HOME/.cache/safety-gate/bin)
#   HELM_VERSION         helm release to install (default: v3.19.0)
#   E2E_BUILD_JOBS       go build -p (default: 2)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tools="$here/tools"
bin="${SAFETY_GATE_E2E_BIN:-$HOME/.cache/safety-gate/bin}"
helm_version="${HELM_VERSION:-v3.19.0}"
jobs="${E2E_BUILD_JOBS:-2}"
stamp="$bin/VERSIONS"

command -v go >/dev/null || { echo "build-binaries: go is not installed" >&2; exit 1; }
mkdir -p "$bin"
touch "$stamp"

modver() { (cd "$tools" && go list -m -f '{{.Version}}' "$1"); }
k8s_version="$(modver k8s.io/kubernetes)"
etcd_version="$(modver go.etcd.io/etcd/server/v3)"
go_version="$(go env GOVERSION)"

recorded() { awk -v n="$1" '$1==n{print $2}' "$stamp"; }
record() {
  local tmp
  tmp="$(mktemp "$bin/.VERSIONS.XXXXXX")"
  { awk -v n="$1" '$1!=n' "$stamp"; echo "$1 $2 $go_version"; } | sort > "$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$stamp"
}
up_to_date() { [ -x "$bin/$1" ] && [ "$(recorded "$1")" = "$2" ]; }

echo "build-binaries: cache $bin"
echo "build-binaries: kubernetes $k8s_version, etcd $etcd_version, helm $helm_version, $go_version"

# Version strings the Kubernetes binaries report (what hack/lib/version.sh sets).
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
ldx=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldx+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

build() { # name version package [extra ldflags]
  local name="$1" version="$2" pkg="$3" extra="${4:-}"
  if up_to_date "$name" "$version"; then
    echo "build-binaries: $name $version already built"
    return
  fi
  echo "build-binaries: building $name $version ($pkg)"
  local start=$SECONDS
  (cd "$tools" && CGO_ENABLED=0 go build -p "$jobs" -trimpath -ldflags "-s -w$extra" \
      -o "$bin/.$name.new" "$pkg")
  mv -f "$bin/.$name.new" "$bin/$name"
  record "$name" "$version"
  echo "build-binaries: built $name in $((SECONDS - start))s ($(du -h "$bin/$name" | cut -f1))"
}

build etcd "$etcd_version" go.etcd.io/etcd/server/v3
build kube-apiserver "$k8s_version" k8s.io/kubernetes/cmd/kube-apiserver "$ldx"
build kube-controller-manager "$k8s_version" k8s.io/kubernetes/cmd/kube-controller-manager "$ldx"
build kubectl "$k8s_version" k8s.io/kubernetes/cmd/kubectl "$ldx"

if up_to_date helm "$helm_version"; then
  echo "build-binaries: helm $helm_version already installed"
elif [ -x "$bin/helm" ] && [ "$(go version -m "$bin/helm" 2>/dev/null | awk '$1=="mod" && $2=="helm.sh/helm/v3"{print $3}')" = "$helm_version" ]; then
  echo "build-binaries: helm $helm_version already installed (recording it)"
  record helm "$helm_version"
else
  echo "build-binaries: installing helm $helm_version"
  start=$SECONDS
  GOBIN="$bin" CGO_ENABLED=0 go install -p "$jobs" -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" "helm.sh/helm/v3/cmd/helm@$helm_version"
  record helm "$helm_version"
  echo "build-binaries: installed helm in $((SECONDS - start))s ($(du -h "$bin/helm" | cut -f1))"
fi

echo "build-binaries: ready"
sed 's/^/  /' "$stamp"
