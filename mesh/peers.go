package mesh

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"time"

	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/tunnel"
)

// Keepalive holds a home's NAT mapping open towards its anchors. Home boxes
// keep idle UDP mappings for 30 s or more; 25 s is WireGuard's usual value.
const Keepalive = 25 * time.Second

// relayAnchor is the anchor that carries traffic between nodes that have
// no direct path: the anchor with the lowest index, other than self, that
// is not down (or the lowest, if all are).
func relayAnchor(m membership.Membership, self string, down map[string]bool) (membership.Node, bool) {
	anchors := anchorsByIndex(m, self)
	for _, n := range anchors {
		if !down[n.Name] {
			return n, true
		}
	}
	if len(anchors) > 0 {
		return anchors[0], true
	}
	return membership.Node{}, false
}

// anchorsByIndex are the anchors other than self, lowest index first.
func anchorsByIndex(m membership.Membership, self string) []membership.Node {
	var out []membership.Node
	for _, n := range m.Nodes { // sorted by index
		if n.IsAnchor() && n.Name != self {
			out = append(out, n)
		}
	}
	return out
}

// relay is relayAnchor with what this node knows of the anchors now.
func (m *Mesh) relay(mem membership.Membership) (membership.Node, bool) {
	m.mu.Lock()
	down := maps.Clone(m.anchorsDown)
	m.mu.Unlock()
	return relayAnchor(mem, m.o.Self.Name, down)
}

// anchorOrder is the anchors to ask something of: the relay anchor first,
// then the others.
func (m *Mesh) anchorOrder(mem membership.Membership) []membership.Node {
	first, ok := m.relay(mem)
	if !ok {
		return nil
	}
	out := []membership.Node{first}
	for _, n := range anchorsByIndex(mem, m.o.Self.Name) {
		if n.Name != first.Name {
			out = append(out, n)
		}
	}
	return out
}

// wantPeers computes the WireGuard peers for a membership. An anchor peers
// with every node. Another node peers with every node too, but only the
// anchors and the nodes it has a path to (ICE) get allowed IPs: the relay
// anchor's allowed IPs cover the others, whose traffic it forwards. A peer
// without allowed IPs can still complete a handshake, so that the two ends
// of a new path need not switch at the same instant.
func wantPeers(m membership.Membership, self membership.Node, paths map[string]nat.Path, down map[string]bool, resolve func(string) netip.AddrPort) []tunnel.Peer {
	var peers []tunnel.Peer
	relay, haveRelay := relayAnchor(m, self.Name, down)
	anchorSelf := self.IsAnchor()
	var relayed []netip.Prefix
	for _, n := range m.Nodes {
		if n.Name == self.Name {
			continue
		}
		if !anchorSelf && !n.IsAnchor() {
			path, up := paths[n.Name]
			if !up {
				relayed = append(relayed, n.Prefixes()...)
				peers = append(peers, tunnel.Peer{PublicKey: n.PublicKey})
				continue
			}
			p := tunnel.Peer{PublicKey: n.PublicKey, Endpoint: path.Remote, AllowedIPs: n.Prefixes()}
			// One end's keepalives hold both NAT mappings open, and only
			// one end starting the handshake avoids two crossing ones. A
			// path ICE did not select is tried from both ends.
			if n.PublicKey.Less(self.PublicKey) || unselected(path) {
				p.Keepalive = Keepalive
			}
			peers = append(peers, p)
			continue
		}
		p := tunnel.Peer{PublicKey: n.PublicKey, AllowedIPs: n.Prefixes()}
		if n.Endpoint != "" {
			p.Endpoint = resolve(n.Endpoint)
		}
		if !anchorSelf {
			p.Keepalive = Keepalive
		}
		peers = append(peers, p)
	}
	if haveRelay {
		for i := range peers {
			if peers[i].PublicKey == relay.PublicKey {
				peers[i].AllowedIPs = append(peers[i].AllowedIPs, relayed...)
			}
		}
	}
	return peers
}

// ResolveEndpoint turns an anchor's HOST:PORT into an address; on failure
// the peer keeps the endpoint it had.
func ResolveEndpoint(ep string) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(ep); err == nil {
		return ap
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return netip.AddrPort{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ips[0].Unmap().String(), port))
	if err != nil {
		return netip.AddrPort{}
	}
	return ap
}

// quarantined are the nodes removed less than membership.Quarantine ago.
// An anchor keeps them as peers, allowed their overlay addresses alone,
// and the tunnel lets through only what they send to the control port
// (tunnel.SetQuarantine): so a removed node that is still up, or starts
// again within the day, hears that it was removed, and reaches nothing
// else. until is when the next one leaves the quarantine.
func quarantined(m membership.Membership, nets membership.Networks, now time.Time) (peers []tunnel.Peer, addrs []netip.Addr, until time.Time) {
	for _, t := range m.Removed {
		end := t.Removed.Add(membership.Quarantine)
		if !now.Before(end) {
			continue
		}
		ips, _, err := nets.Node(t.Index)
		if err != nil {
			continue
		}
		p := tunnel.Peer{PublicKey: t.PublicKey}
		for _, a := range ips {
			p.AllowedIPs = append(p.AllowedIPs, netip.PrefixFrom(a, a.BitLen()))
		}
		peers, addrs = append(peers, p), append(addrs, ips...)
		if until.IsZero() || end.Before(until) {
			until = end
		}
	}
	return peers, addrs, until
}
