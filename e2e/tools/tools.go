//go:build tools

// Package tools pins the control-plane binaries the e2e suite runs.
//
// Nothing here is compiled into anything: the blank imports only make
// `go mod tidy` record the exact module versions in go.mod/go.sum, so
// `e2e/build-binaries.sh` can `go build` them reproducibly from the Go
// module proxy.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
