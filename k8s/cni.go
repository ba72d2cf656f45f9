package k8s

import (
	"path/filepath"

	"github.com/hepto-net/hepto/k8s/containerd"
	"github.com/hepto-net/hepto/k8s/proxy"
)

// portMap is the reference CNI plugin that gives pods their hostPorts
// (containernetworking/plugins); make build puts it beside hepto.
const portMap = "portmap"

// cniBinDirs are where containerd finds the pod network's plugins:
// hepto-cni's directory, and portmap's when it is found. Without portmap,
// pods run but their hostPorts are not mapped, which the log says once.
func (n *Node) cniBinDirs() ([]string, error) {
	cni, err := containerd.Binary("hepto-cni")
	if err != nil {
		return nil, err
	}
	dirs := []string{filepath.Dir(cni)}
	pm, err := containerd.Binary(portMap)
	if err != nil {
		n.log.Warn("pods' hostPorts will not be mapped", "err", err)
		return dirs, nil
	}
	n.portMap = true
	if d := filepath.Dir(pm); d != dirs[0] {
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// CNIChain is what containerd's network configuration chains after
// hepto-cni: portmap for hostPorts, driving the kernel the way kube-proxy
// does (nftables where nft is, iptables otherwise). A hostPort answers on
// every address of the node, as Kubernetes has it, unless the pod names a
// hostIP.
func (n *Node) CNIChain() []map[string]any {
	if n == nil || n.ctrd == nil || !n.portMap {
		return nil
	}
	return []map[string]any{{
		"type":         portMap,
		"capabilities": map[string]bool{"portMappings": true},
		"backend":      proxy.Mode(),
	}}
}
