# Pins of the offline kind suite, sourced by build-tools.sh and build-images.sh.
# The Kubernetes and etcd versions are e2e/kind/tools/go.mod's (kept equal to e2e/tools).
# Image tags are the ones kubeadm of $K8S_VERSION expects (`kubeadm config images list`).
KIND_CACHE="${SAFETY_GATE_KIND_CACHE:-$HOME/.cache/safety-gate/kind}"
KIND_VERSION=v0.33.0
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
ETCD_IMAGE_TAG=3.6.8-0
PAUSE_VERSION=3.10.2
COREDNS_VERSION=v1.14.2
CONTAINERD_VERSION=v2.3.4
CRICTL_VERSION=v1.36.0
PROMETHEUS_MODULE_VERSION=v0.316.0   # Prometheus v3.x's Go module version (promtool)
DEBIAN_SUITE=bookworm
