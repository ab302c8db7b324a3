//go:build tools

// Package tools pins the Kubernetes binaries of the offline kind node image.
//
// Nothing is compiled from here: the blank imports make `go mod tidy` record
// every module the node's binaries need, so e2e/kind/build-images.sh can
// `go build` them reproducibly from the Go module proxy. The versions are the
// ones e2e/tools pins (kubernetes v1.36.3, etcd v3.6.8).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
