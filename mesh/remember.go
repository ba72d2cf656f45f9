package mesh

import (
	"context"
	"maps"
	"net/netip"
	"time"

	"github.com/hepto-net/hepto/nat"
)

// Paths of a pair that ICE did not select (Path.Local): what a node
// remembered from its last run, and what a peer's handshake showed.
// Either serves until ICE selects a path, or until it stops answering.
const (
	localRemembered = "remembered"
	localHandshake  = "handshake"
)

// seedRemembered starts each pair that had a direct path at the last run
// on that path again: the node kept its UDP port, so the peer's box still
// lets it in, and the pair needs no anchor to come back. Both ends send
// keepalives on it (wantPeers) until ICE takes over.
func (m *Mesh) seedRemembered(eps map[string]netip.AddrPort) {
	now := time.Now()
	mem := m.store.Current()
	for name, ep := range eps {
		if n, ok := mem.Find(name); !ok || n.IsAnchor() || name == m.o.Self.Name || !ep.IsValid() {
			continue
		}
		m.paths[name] = nat.Path{Up: true, Remote: ep, Local: localRemembered}
		m.pathSince[name] = now
	}
}

// unselected reports whether a path is one ICE did not select.
func unselected(p nat.Path) bool { return p.Local == localRemembered || p.Local == localHandshake }

// pathLost drops a path that stopped answering and restarts ICE; a path
// that ICE did not select is dropped here, as ICE does not know it.
func (m *Mesh) pathLost(peer string) {
	m.mu.Lock()
	p, ok := m.paths[peer]
	if ok && unselected(p) {
		delete(m.paths, peer)
		m.pathChanges[peer]++
		m.pathSince[peer] = time.Now()
	}
	mgr := m.nat
	m.mu.Unlock()
	if ok && unselected(p) {
		m.probes.forget(peer)
		m.Kick()
	}
	if mgr != nil {
		mgr.Restart(peer)
	}
}

// OnHandshake is the tunnel's sign that a peer sent a handshake to our
// socket: learnPaths looks whether it came from a home without a path.
func (m *Mesh) OnHandshake() {
	select {
	case m.handshakes <- struct{}{}:
	default:
	}
}

// learnPaths gives a home peer that completed a handshake with us, while
// we had no path to it, that endpoint as its path: it reached us directly
// (a pair whose other end restarted, or whose path we dropped while the
// anchors were away), and WireGuard's handshake proves who it is. Without
// this, such a pair needs ICE, and so signalling, to come back.
func (m *Mesh) learnPaths(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.handshakes:
		}
		// Let the handshake complete.
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		stats, err := m.o.Tunnel.Stats()
		if err != nil {
			continue
		}
		mem := m.store.Current()
		now := time.Now()
		learned := false
		m.mu.Lock()
		for _, s := range stats {
			if !s.Endpoint.IsValid() || now.Sub(s.LastHandshake) > 5*time.Second {
				continue
			}
			for _, n := range mem.Nodes {
				if n.PublicKey != s.PublicKey || n.IsAnchor() || n.Name == m.o.Self.Name {
					continue
				}
				if _, has := m.paths[n.Name]; has {
					break
				}
				m.paths[n.Name] = nat.Path{Up: true, Remote: s.Endpoint, Local: localHandshake}
				m.pathChanges[n.Name]++
				m.pathSince[n.Name] = now
				learned = true
				m.log.Info("direct path learned from a handshake", "peer", n.Name, "endpoint", s.Endpoint)
			}
		}
		m.mu.Unlock()
		if learned {
			m.Kick()
		}
	}
}

// rememberDirect saves the direct paths' endpoints when they changed, for
// the next run (Options.Remember).
func (m *Mesh) rememberDirect(paths map[string]nat.Path) {
	if m.o.Remember == nil {
		return
	}
	eps := map[string]netip.AddrPort{}
	for name, p := range paths {
		if p.Up && !p.Relay && p.Send == nil && p.Remote.IsValid() {
			eps[name] = p.Remote
		}
	}
	if maps.Equal(eps, m.savedDirect) {
		return
	}
	if err := m.o.Remember(eps); err != nil {
		m.log.Warn("direct paths not saved", "err", err)
		return
	}
	m.savedDirect = eps
}
