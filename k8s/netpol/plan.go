// Package netpol enforces Kubernetes NetworkPolicy on a node, in the kernel:
// the policies that select the node's own pods become an nftables table
// (inet hepto-netpol) of per-pod chains, checked on the first packet of
// each connection (conntrack lets the rest through). Each node enforces the
// egress of its own pods and the ingress to them, so that a connection
// between two homes passes both checks, one at each end.
//
// Verdicts stay in the kernel: nothing waits for hepto on a connection,
// and the rules outlive a hepto restart until they are written again.
package netpol

import "net/netip"

// Plan is what the node enforces: the rules of its isolated pods.
type Plan struct {
	Pods []PodRules // sorted by Key
}

// PodRules are one local pod's rules. A nil Ingress (Egress) is a pod that
// no policy isolates in that direction: everything is allowed.
type PodRules struct {
	Key     string // namespace/name
	IPs     []netip.Addr
	Ingress *Rules
	Egress  *Rules
}

// Rules are the traffic allowed in one direction: the union of its
// clauses. Empty Rules allow nothing.
type Rules struct {
	Clauses []Clause
}

// Clause allows traffic with a peer in Peers (any peer when Any), of a
// protocol (any when Proto is empty), to a port in [Port, EndPort] (any
// when Port is 0). The peer is the source for ingress, the destination for
// egress.
type Clause struct {
	Any     bool
	Peers   []netip.Prefix // disjoint, sorted
	Proto   string         // "tcp", "udp", "sctp" or ""
	Port    uint16
	EndPort uint16
}
