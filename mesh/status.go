package mesh

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/tunnel"
)

// connectedWithin: a link is up when its last handshake is this recent
// (WireGuard rekeys every 2 minutes on a busy link).
const connectedWithin = 3 * time.Minute

// Peers reports each peer as it is now. A peer is connected when the link
// it is reached over had a handshake within connectedWithin and the peer
// itself answers (see alive): for a peer reached through the relay anchor,
// that proves both legs.
func (m *Mesh) Peers(ctx context.Context) ([]localapi.PeerStatus, error) {
	return m.peers(ctx, true)
}

// peers is Peers; without probe, Connected is left false.
func (m *Mesh) peers(ctx context.Context, probe bool) ([]localapi.PeerStatus, error) {
	stats, err := m.o.Tunnel.Stats()
	if err != nil {
		return nil, err
	}
	byKey := map[key.Public]tunnel.PeerStats{}
	for _, s := range stats {
		byKey[s.PublicKey] = s
	}
	mem := m.store.Current()
	m.mu.Lock()
	paths := make(map[string]bool, len(m.paths))
	turn := make(map[string]bool, len(m.paths))
	for name, p := range m.paths {
		paths[name], turn[name] = true, p.Relay
	}
	rtts := make(map[string]time.Duration, len(m.rtt))
	for name, r := range m.rtt {
		rtts[name] = r
	}
	m.mu.Unlock()
	self := m.o.Self
	relay, haveRelay := m.relay(mem)
	now := time.Now()
	out := []localapi.PeerStatus{}
	// Peers whose link is up, by their place in out: do they answer?
	type pending struct {
		i int
		n membership.Node
	}
	var check []pending
	for _, n := range mem.Nodes {
		if n.Name == self.Name {
			continue
		}
		p := localapi.PeerStatus{Name: n.Name, Zone: n.Zone, OverlayIPs: strs(n.OverlayIPs), Path: "direct"}
		s := byKey[n.PublicKey]
		// Anchors reach everyone, and everyone reaches anchors, on their own
		// link; two homes have one once ICE found it.
		ownLink := paths[n.Name] || n.IsAnchor() || self.IsAnchor()
		switch {
		case !ownLink && haveRelay:
			// Reached through the relay anchor: report that link.
			s, p.Path, p.Via = byKey[relay.PublicKey], "relay", relay.Name
		case turn[n.Name]:
			p.Path, p.Via = "relay", "turn"
			fallthrough
		default:
			p.RxBytes, p.TxBytes = s.RxBytes, s.TxBytes
		}
		if s.Endpoint.IsValid() {
			p.Endpoint = s.Endpoint.String()
		}
		if rtt, ok := rtts[n.Name]; ok {
			secs := rtt.Seconds()
			p.RTTSeconds = &secs
		}
		out = append(out, p)
		if s.LastHandshake.IsZero() {
			continue
		}
		hs := s.LastHandshake.UTC()
		out[len(out)-1].LastHandshake = &hs
		if probe && now.Sub(hs) < connectedWithin {
			check = append(check, pending{len(out) - 1, n})
		}
	}
	var wg sync.WaitGroup
	for _, c := range check {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[c.i].Connected = m.alive(ctx, c.n.Name, c.n.OverlayIPs[0])
		}()
	}
	wg.Wait()
	return out, nil
}

// MetricPeers is the peers' state for a scrape.
func (m *Mesh) MetricPeers() []metrics.Peer {
	ctx, cancel := context.WithTimeout(context.Background(), 2*probeTimeout)
	defer cancel()
	peers, err := m.Peers(ctx)
	if err != nil {
		return nil
	}
	mem := m.store.Current()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]metrics.Peer, 0, len(peers))
	for _, p := range peers {
		mp := metrics.Peer{Name: p.Name, Path: p.Path, Up: p.Connected, RxBytes: p.RxBytes, TxBytes: p.TxBytes, PathChanges: uint64(m.pathChanges[p.Name])}
		if p.LastHandshake != nil {
			mp.LastHandshake = *p.LastHandshake
		}
		if m.nat != nil {
			if n, ok := mem.Find(p.Name); ok && !n.IsAnchor() {
				mp.ICEState = "disconnected"
				if _, up := m.paths[p.Name]; up {
					mp.ICEState = "connected"
				}
			}
		}
		out = append(out, mp)
	}
	return out
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}
