//go:build tools

// Package e2eimages pins the programs of the images the upstream
// end-to-end suite runs, at hepto's Kubernetes version (k8s.io/kubernetes
// and its staging modules, and the etcd it requires): lab/e2eimages
// builds them from this module into the images' root filesystems.
package e2eimages

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/kubernetes/test/images/nonewprivs"
	_ "k8s.io/sample-apiserver"
)
