//go:build !fabric

package daemon

import (
	"net/netip"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/dns/kubewatch"
	"github.com/hepto-net/hepto/k8s"
	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/tunnel"
)

// kubeNode is the node's Kubernetes; a nil one answers as a node without.
type kubeNode = k8s.Node

// The Kubernetes errors the local API tells apart.
var (
	errNotControlPlane = k8s.ErrNotControlPlane
	errNoRuntime       = k8s.ErrNoRuntime
	errUnknownUser     = k8s.ErrUnknownUser
	errBadUser         = k8s.ErrBadUser
)

// startKube makes the node's Kubernetes; its services run once added.
func startKube(cfg Config, n *node, tun *tunnel.Tunnel, dnsSvc *dnsService, relay ports.Range, client *control.Client) *kubeNode {
	// Pods ask their own node's DNS server.
	clusterDNS, names := n.self.OverlayIPs[:1], kubewatch.Sink(dnsSvc)
	if cfg.DNS.Disable {
		clusterDNS, names = nil, nil
	}
	return k8s.New(k8s.Options{
		StateDir: cfg.State, VolumesDir: cfg.VolumesDir, NodeName: n.self.Name, Addresses: n.self.OverlayIPs,
		ControlPlane:    n.self.IsControlPlane(),
		Anchor:          n.self.IsAnchor(),
		ServiceCIDRs:    n.cluster.Networks.Services(),
		PodCIDRs:        []netip.Prefix{n.cluster.Networks.PodsV4, n.cluster.Networks.PodsV6},
		ClusterDNS:      clusterDNS,
		ClusterDomain:   cfg.DNS.KubeDomain,
		DNS:             names,
		Overlay:         []netip.Prefix{n.cluster.Networks.OverlayV4, n.cluster.Networks.OverlayV6},
		Members:         func() []membership.Node { return n.store.Current().Nodes },
		Membership:      n.store,
		CertValidity:    cfg.CertValidity,
		UpstreamTimings: cfg.UpstreamTimings,
		ReservedPorts:   reservedPorts(n.self, tun.ListenPort(), relay),
		NoImageSharing:  cfg.NoImageSharing,
		Client:          client,
		Logger:          cfg.Logger,
	})
}

// restoreEtcd makes an etcd data directory under kubeDir from a snapshot.
func restoreEtcd(snapshot, kubeDir, name string) error {
	return controlplane.RestoreEtcd(snapshot, kubeDir, name)
}
