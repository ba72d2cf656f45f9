// Package k8s runs Kubernetes on a hepto node, on top of the fabric: the
// control plane on control-plane nodes (k8s/controlplane), with the
// cluster's certificates (k8s/pki). Everything it writes lives under
// STATE/kubernetes. The daemon starts its services like any other; when
// Kubernetes cannot start, the fabric goes on without it.
package k8s

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/supervisor"
)

// Roles a node has in Kubernetes, as status shows them.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
	RoleNone         = "none"
)

// Dir is where Kubernetes keeps its files, under hepto's state directory.
const Dir = "kubernetes"

// Options configure a node's Kubernetes.
type Options struct {
	StateDir     string       // hepto's state directory
	NodeName     string       // the hepto node name, also Kubernetes'
	Addresses    []netip.Addr // the node's overlay IPv4 and IPv6 addresses
	ControlPlane bool         // this node runs the control plane
	ServiceCIDRs []netip.Prefix
	PodCIDRs     []netip.Prefix // the cluster's pod ranges
	Logger       *slog.Logger
}

// Node is a node's Kubernetes.
type Node struct {
	o     Options
	role  string
	cp    *controlplane.ControlPlane
	setup error // why Kubernetes could not be set up
}

// New prepares Kubernetes for the node. It does not fail: a node whose
// Kubernetes cannot be set up runs the fabric alone, and Status says why.
func New(o Options) *Node {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	n := &Node{o: o, role: RoleNone}
	if !o.ControlPlane {
		// Workers run kubelet and containerd: not yet.
		return n
	}
	n.role = RoleControlPlane
	cp, err := controlplane.New(controlplane.Options{
		DataDir:            filepath.Join(o.StateDir, Dir),
		NodeName:           o.NodeName,
		AdvertiseAddresses: o.Addresses,
		ServiceCIDRs:       o.ServiceCIDRs,
		ClusterCIDRs:       o.PodCIDRs,
		Logger:             o.Logger,
	})
	if err != nil {
		n.setup = err
		o.Logger.Error("kubernetes cannot start; the overlay runs without it", "err", err)
		return n
	}
	n.cp = cp
	return n
}

// Runs reports whether Kubernetes components run on this node.
func (n *Node) Runs() bool { return n.cp != nil }

// Services are the components to supervise.
func (n *Node) Services() []supervisor.Service {
	if n.cp == nil {
		return nil
	}
	return n.cp.Services()
}

// Status is the node's Kubernetes role and the state of each component.
// Ready is the node's Ready condition: kubelet is not run yet, so no node
// is registered and it is false.
func (n *Node) Status() localapi.KubernetesStatus {
	st := localapi.KubernetesStatus{Role: n.role, Components: map[string]string{}}
	switch {
	case n.setup != nil:
		st.Components["control-plane"] = "failed: " + n.setup.Error()
	case n.cp != nil:
		st.Components = n.cp.States()
	}
	return st
}

// ComponentsUp tells, for hepto_component_up, which components run.
func (n *Node) ComponentsUp() map[string]bool {
	out := map[string]bool{}
	for name, state := range n.Status().Components {
		out[name] = state == controlplane.Running
	}
	return out
}

// ErrNotControlPlane is the answer of a node without the control plane to
// a request for admin credentials.
var ErrNotControlPlane = fmt.Errorf("this node does not run the Kubernetes control plane")

// AdminKubeconfig is an admin kubeconfig whose server is the node's first
// overlay address, for kubectl anywhere in the cluster.
func (n *Node) AdminKubeconfig() ([]byte, error) {
	if n.cp == nil {
		return nil, ErrNotControlPlane
	}
	kp, err := n.cp.PKI().Admin()
	if err != nil {
		return nil, err
	}
	server := "https://" + net.JoinHostPort(n.o.Addresses[0].String(), strconv.Itoa(controlplane.DefaultAPIServerPort))
	return controlplane.Kubeconfig(server, n.cp.PKI().Cluster.CertPEM, kp, pki.AdminUser)
}

// AdminKubeconfigFile is the admin kubeconfig on disk (server on
// loopback), for `hepto kubectl`.
func AdminKubeconfigFile(stateDir string) string {
	return filepath.Join(stateDir, Dir, "kubeconfig", "admin.conf")
}

// DefaultServiceCIDRs are the Service ranges: 10.96.0.0/16, clear of the
// overlay's and pods' defaults, and a /112 of the cluster's ULA.
func DefaultServiceCIDRs(overlayV6 netip.Prefix) []netip.Prefix {
	v6 := overlayV6.Masked().Addr().As16()
	v6[6], v6[7] = 0x03, 0x00 // <ULA /48>:300::/112
	return []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.PrefixFrom(netip.AddrFrom16(v6), 112)}
}
