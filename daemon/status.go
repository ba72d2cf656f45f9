package daemon

import (
	"fmt"
	"maps"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/tunnel"
)

// connectedWithin: a peer is connected when its last handshake is this
// recent (WireGuard rekeys every 2 minutes on a busy link).
const connectedWithin = 3 * time.Minute

func (d *Daemon) status() (localapi.Status, error) {
	stats, err := d.tun.Stats()
	if err != nil {
		return localapi.Status{}, err
	}
	byKey := map[key.Public]tunnel.PeerStats{}
	for _, s := range stats {
		byKey[s.PublicKey] = s
	}
	d.mu.Lock()
	m := d.members
	paths := maps.Clone(d.paths)
	rtts := maps.Clone(d.rtt)
	d.mu.Unlock()
	st := localapi.Status{
		Name: d.self.Name, Cluster: d.cluster.Name, Anchor: d.isAnchor(),
		OverlayIPs: strs(d.self.OverlayIPs), PodCIDRs: strs(d.self.PodCIDRs),
		ListenPort: d.tun.ListenPort(), Peers: []localapi.PeerStatus{},
	}
	relay, haveRelay := relayAnchor(m, d.self.Name)
	now := time.Now()
	for _, n := range m.Nodes {
		if n.Name == d.self.Name {
			continue
		}
		p := localapi.PeerStatus{Name: n.Name, OverlayIPs: strs(n.OverlayIPs), Path: "direct"}
		s := byKey[n.PublicKey]
		path, own := paths[n.Name]
		// Anchors reach everyone, and everyone reaches anchors, on their own
		// link; two homes have one once ICE found it.
		ownLink := own || n.IsAnchor() || d.isAnchor()
		switch {
		case !ownLink && haveRelay:
			// Reached through the relay anchor: report that link.
			s, p.Path, p.Via = byKey[relay.PublicKey], "relay", relay.Name
		case own && path.Relay:
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
		if !s.LastHandshake.IsZero() {
			hs := s.LastHandshake.UTC()
			p.LastHandshake = &hs
			p.Connected = now.Sub(hs) < connectedWithin
		}
		st.Peers = append(st.Peers, p)
	}
	return st, nil
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}
