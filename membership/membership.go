package membership

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Membership is the list of nodes. It is what a Set stands for (Open); the
// form signed as a whole is the one membership.json held before sets, read
// still as an entry of a set. Version counts the entries of the set: it
// only grows.
type Membership struct {
	Cluster string      `json:"cluster"`
	Version uint64      `json:"version"`
	Issued  time.Time   `json:"issued"`
	Nodes   []Node      `json:"nodes"`
	Removed []Tombstone `json:"removed,omitempty"`
}

// At returns the node with that overlay address.
func (m Membership) At(ip netip.Addr) (Node, bool) {
	for _, n := range m.Nodes {
		if slices.Contains(n.OverlayIPs, ip) {
			return n, true
		}
	}
	return Node{}, false
}

// Find returns the node with that name.
func (m Membership) Find(name string) (Node, bool) {
	for _, n := range m.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// FreeIndex is the smallest index of [first, last] that no node holds and
// no node removed less than Quarantine before now held.
func (m Membership) FreeIndex(first, last int, now time.Time) (int, error) {
	used := map[int]bool{}
	for _, n := range m.Nodes {
		used[n.Index] = true
	}
	for _, t := range m.Removed {
		if now.Sub(t.Removed) < Quarantine {
			used[t.Index] = true
		}
	}
	for i := first; i <= last; i++ {
		if !used[i] {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no free index left in %d..%d (%d nodes, %d removed within a day)", first, last, len(m.Nodes), len(m.Removed))
}

// OpenMembership verifies a signed membership and every record in it.
func OpenMembership(s Signed, c Cluster) (Membership, error) {
	var m Membership
	if err := s.Open(c.PublicKey, KindMembership, &m); err != nil {
		return Membership{}, err
	}
	if m.Cluster != c.Name {
		return Membership{}, fmt.Errorf("membership is for cluster %q, not %q", m.Cluster, c.Name)
	}
	names, keys, idx := map[string]bool{}, map[string]bool{}, map[int]bool{}
	for _, n := range m.Nodes {
		if err := n.Validate(c.Networks); err != nil {
			return Membership{}, fmt.Errorf("membership: %w", err)
		}
		if names[n.Name] || keys[n.PublicKey.String()] || idx[n.Index] {
			return Membership{}, fmt.Errorf("membership: node %s appears twice", n.Name)
		}
		names[n.Name], keys[n.PublicKey.String()], idx[n.Index] = true, true, true
	}
	return m, nil
}

// SignMembership signs m.
func SignMembership(priv ed25519.PrivateKey, m Membership) (Signed, error) {
	return Sign(priv, KindMembership, m)
}

// OpenNode verifies a signed node record.
func OpenNode(s Signed, c Cluster) (Node, error) {
	var n Node
	if err := s.Open(c.PublicKey, KindNode, &n); err != nil {
		return Node{}, err
	}
	if err := n.Validate(c.Networks); err != nil {
		return Node{}, err
	}
	return n, nil
}
