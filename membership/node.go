package membership

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/hepto-net/hepto/key"
)

// RoleAnchor marks a node reachable from the Internet: it admits nodes,
// relays traffic and signalling.
const RoleAnchor = "anchor"

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
	return nil
}
