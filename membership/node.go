package membership

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/hepto-net/hepto/key"
)

// Roles of a node.
const (
	// RoleAnchor marks a node reachable from the Internet: it holds the
	// cluster key, admits nodes, relays traffic and signalling.
	RoleAnchor = "anchor"
	// RoleControlPlane marks a node that runs the Kubernetes control plane.
	RoleControlPlane = "control-plane"
	// RoleFabric marks a node admitted to the fabric only: it never runs
	// Kubernetes, and gets no Kubernetes credentials.
	RoleFabric = "fabric"
)

// Node is a node's record, signed for the cluster by an anchor.
type Node struct {
	Name       string         `json:"name"`
	Index      int            `json:"index"` // position in the address plan
	PublicKey  key.Public     `json:"public_key"`
	OverlayIPs []netip.Addr   `json:"overlay_ips"` // IPv4, IPv6
	PodCIDRs   []netip.Prefix `json:"pod_cidrs"`   // IPv4, IPv6
	Roles      []string       `json:"roles,omitempty"`
	Endpoint   string         `json:"endpoint,omitempty"` // anchors: public HOST:PORT (UDP)
	Joined     time.Time      `json:"joined"`
	// Revision orders the records of one key: an anchor that changes a
	// record signs it again with the next revision.
	Revision uint64 `json:"revision,omitempty"`
	// Indexes is the part of the address plan an anchor gives out (first,
	// last). Each anchor admits nodes from its own range only, so that two
	// anchors admitting at once never pick one index. An anchor without a
	// range is the only one, and owns the whole plan.
	Indexes *IndexRange `json:"indexes,omitempty"`
	// Zone is the node's home, its failure domain (Kubernetes'
	// topology.kubernetes.io/zone); see zone.go for how it is decided.
	Zone string `json:"zone,omitempty"`
	// Home names the LAN the node reported last (HomeOf): machines behind
	// one box share it.
	Home string `json:"home,omitempty"`
	// ZoneFixed: the zone was chosen by the node's owner (hepto run
	// --zone), not found from its LAN.
	ZoneFixed bool `json:"zone_fixed,omitempty"`
}

// IndexRange is a range of indexes of the address plan, both ends included.
type IndexRange struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// IndexRange is the part of the plan this anchor admits nodes into.
func (n Node) IndexRange(nets Networks) IndexRange {
	if n.Indexes != nil {
		return *n.Indexes
	}
	return IndexRange{1, nets.MaxNodes()}
}

// NewNode makes the record of node index under the plan.
func NewNode(nets Networks, index int, name string, pub key.Public) (Node, error) {
	if err := CheckName("node", name); err != nil {
		return Node{}, err
	}
	ips, pods, err := nets.Node(index)
	if err != nil {
		return Node{}, err
	}
	return Node{Name: name, Index: index, PublicKey: pub, OverlayIPs: ips, PodCIDRs: pods, Joined: time.Now().UTC().Truncate(time.Second)}, nil
}

// IsAnchor reports whether the node has the anchor role.
func (n Node) IsAnchor() bool { return slices.Contains(n.Roles, RoleAnchor) }

// RunsKubernetes tells a node that may run Kubernetes: any node not
// admitted to the fabric only.
func (n Node) RunsKubernetes() bool { return !slices.Contains(n.Roles, RoleFabric) }

// IsControlPlane reports whether the node runs the control plane. A node
// made by `hepto init` before the role existed carries the anchor role
// alone, at index 1, with no index range: it is the control plane (its
// record gets the role when it is signed again).
func (n Node) IsControlPlane() bool {
	return slices.Contains(n.Roles, RoleControlPlane) || (n.Index == 1 && len(n.Roles) == 1 && n.IsAnchor() && n.Indexes == nil)
}

// Split gives away the upper half of an anchor's index range: what it
// keeps and what it gives. A range of one index cannot be split.
func (r IndexRange) Split() (keep, give IndexRange, ok bool) {
	if r.Last <= r.First {
		return r, IndexRange{}, false
	}
	mid := r.First + (r.Last-r.First)/2
	return IndexRange{r.First, mid}, IndexRange{mid + 1, r.Last}, true
}

// HostPrefixes are the node's overlay addresses as host prefixes.
func (n Node) HostPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range n.OverlayIPs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// Prefixes are the node's overlay addresses, then its pod ranges: what
// WireGuard accepts from it and routes to it.
func (n Node) Prefixes() []netip.Prefix {
	return append(n.HostPrefixes(), n.PodCIDRs...)
}

// Validate checks a record against the plan it claims to follow.
func (n Node) Validate(nets Networks) error {
	want, err := NewNode(nets, n.Index, n.Name, n.PublicKey)
	if err != nil {
		return err
	}
	if n.PublicKey.IsZero() {
		return fmt.Errorf("node %s: no public key", n.Name)
	}
	if !slices.Equal(n.OverlayIPs, want.OverlayIPs) || !slices.Equal(n.PodCIDRs, want.PodCIDRs) {
		return fmt.Errorf("node %s: addresses do not follow the cluster's address plan", n.Name)
	}
	if r := n.Indexes; r != nil && (r.First < 1 || r.First > r.Last || r.Last > nets.MaxNodes()) {
		return fmt.Errorf("node %s: index range %d..%d outside the address plan", n.Name, r.First, r.Last)
	}
	return nil
}
