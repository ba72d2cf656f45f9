package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/nat"
)

func (m *Mesh) ping(ctx context.Context, ip netip.Addr) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return m.o.Tunnel.Ping(ctx, ip)
}

// recordRTT keeps a round trip to peer, which also shows it answers.
func (m *Mesh) recordRTT(peer string, rtt time.Duration) {
	m.probes.answered(peer)
	m.mu.Lock()
	m.rtt[peer] = rtt
	m.mu.Unlock()
	if m.o.Metrics != nil {
		m.o.Metrics.ObserveRTT(peer, rtt)
	}
}

// Ping makes one round trip to a node and says how it went.
func (m *Mesh) Ping(ctx context.Context, node string) (localapi.Pong, error) {
	n, ok := m.store.Current().Find(node)
	if !ok || n.Name == m.o.Self.Name {
		return localapi.Pong{}, fmt.Errorf("%w: no peer %q in the cluster", ErrNoPeer, node)
	}
	rtt, err := m.ping(ctx, n.OverlayIPs[0])
	if err != nil {
		m.unanswered(n.Name, n.OverlayIPs[0])
		return localapi.Pong{}, fmt.Errorf("no answer from %s (%s): %w", n.Name, n.OverlayIPs[0], err)
	}
	m.recordRTT(n.Name, rtt)
	pong := localapi.Pong{Node: n.Name, IP: n.OverlayIPs[0].String(), RTTSeconds: rtt.Seconds()}
	if peers, err := m.peers(ctx, false); err == nil {
		for _, p := range peers {
			if p.Name == n.Name {
				pong.Path, pong.Via, pong.Endpoint = p.Path, p.Via, p.Endpoint
			}
		}
	}
	return pong, nil
}

// ErrNoPeer is Ping's error for a name that is not a peer.
var ErrNoPeer = errors.New("unknown peer")

// Netcheck tells what this node is behind.
func (m *Mesh) Netcheck(ctx context.Context) localapi.Netcheck {
	mem := m.store.Current()
	m.mu.Lock()
	mgr := m.nat
	m.mu.Unlock()
	self := m.o.Self
	res := localapi.Netcheck{NAT: "unknown", Observations: []localapi.Observation{}, Anchors: []localapi.AnchorCheck{}}
	if self.IsAnchor() {
		res.NAT = "none"
		if ep := ResolveEndpoint(self.Endpoint); ep.IsValid() {
			res.PublicIPv4 = ep.Addr().String()
		}
	}
	var mapped []netip.AddrPort
	for _, n := range mem.Nodes {
		if !n.IsAnchor() || n.Name == self.Name {
			continue
		}
		ep := ResolveEndpoint(n.Endpoint)
		ac := localapi.AnchorCheck{Name: n.Name, Endpoint: n.Endpoint}
		if ep.IsValid() && mgr != nil {
			// The STUN server's port, then the anchor's WireGuard port.
			for _, server := range []netip.AddrPort{netip.AddrPortFrom(ep.Addr(), nat.ServerPort), ep} {
				o := localapi.Observation{Server: server.String()}
				got, rtt, err := mgr.Mapped(server, 2*time.Second)
				if err != nil {
					o.Error = err.Error()
				} else {
					o.Mapped, o.RTTSeconds = got.String(), rtt.Seconds()
					mapped = append(mapped, got)
					ac.Reachable, ac.RTTSeconds = true, rtt.Seconds()
				}
				res.Observations = append(res.Observations, o)
			}
		} else if rtt, err := m.ping(ctx, n.OverlayIPs[0]); err == nil {
			ac.Reachable, ac.RTTSeconds = true, rtt.Seconds()
		}
		res.Anchors = append(res.Anchors, ac)
	}
	if len(mapped) >= 2 {
		res.NAT = "endpoint-independent"
		for _, a := range mapped[1:] {
			if a != mapped[0] {
				res.NAT = "endpoint-dependent"
			}
		}
		for _, a := range mapped {
			if a.Port() == m.o.Tunnel.ListenPort() && localAddr(a.Addr()) {
				res.NAT = "none"
			}
			if a.Addr().Is4() {
				res.PublicIPv4 = a.Addr().String()
			} else {
				res.PublicIPv6 = a.Addr().String()
			}
		}
	}
	return res
}

// localAddr reports whether a is one of this host's addresses.
func localAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if ipn, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(ipn.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}
