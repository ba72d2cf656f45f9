package mesh

import (
	"context"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hepto-net/hepto/tunnel"
)

// Path monitoring: a path that stops answering while we send is lost; so
// is, for the end that receives the keepalives (the controlled one), a path
// silent for longer than two of them.
const (
	monitorInterval = time.Second
	silentWhileBusy = 3 * time.Second
	silentIdle      = 2*Keepalive + 10*time.Second
	keepaliveBytes  = 32 // a WireGuard keepalive message
)

// counters follows one peer's WireGuard byte counters: when something
// last came from it, and when we last sent it traffic.
type counters struct {
	rx, tx     uint64
	rxAt, txAt time.Time
}

// update takes a reading; traffic tells whether what was sent since the
// last one counts as traffic (keepalives do not).
func (c *counters) update(s tunnel.PeerStats, now time.Time, traffic func(grew uint64) bool) {
	if c.rxAt.IsZero() {
		*c = counters{rx: s.RxBytes, tx: s.TxBytes, rxAt: now, txAt: now}
		return
	}
	if s.RxBytes != c.rx {
		c.rx, c.rxAt = s.RxBytes, now
	}
	if traffic(s.TxBytes - c.tx) {
		c.txAt = now
	}
	c.tx = s.TxBytes
}

// busyAndSilent: we sent traffic, and nothing came back for
// silentWhileBusy.
func (c *counters) busyAndSilent(now time.Time) bool {
	return c.txAt.After(c.rxAt) && now.Sub(c.rxAt) > silentWhileBusy
}

// wait lets a probe run before the next look.
func (c *counters) wait(now time.Time) { c.rxAt, c.txAt = now, now }

// monitorPaths restarts ICE for a direct path that stopped answering.
func (m *Mesh) monitorPaths(ctx context.Context) {
	last := map[string]*counters{}
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		idle := len(m.paths) == 0
		m.mu.Unlock()
		if idle {
			continue
		}
		stats, err := m.o.Tunnel.Stats()
		if err != nil {
			continue
		}
		mem := m.store.Current()
		m.mu.Lock()
		type watched struct {
			name string
			ip   netip.Addr
			idle bool // keepalives come from the other end
		}
		byKey := map[string]watched{}
		withPath := map[string]bool{}
		for _, n := range mem.Nodes {
			if _, up := m.paths[n.Name]; up {
				byKey[n.PublicKey.String()] = watched{n.Name, n.OverlayIPs[0], m.o.Self.PublicKey.Less(n.PublicKey)}
				withPath[n.Name] = true
			}
		}
		m.mu.Unlock()
		// A pair without a path now starts afresh when it has one again.
		for name := range last {
			if !withPath[name] {
				delete(last, name)
			}
		}
		now := time.Now()
		for _, s := range stats {
			w, ok := byKey[s.PublicKey.String()]
			if !ok {
				continue
			}
			l := last[w.name]
			if l == nil {
				l = &counters{}
				last[w.name] = l
			}
			// A keepalive (32 bytes) is not traffic: WireGuard sends one
			// 10 s after receiving anything, and would keep us probing.
			// Nor is status's echo: during a path switch its answer may
			// come back the old way and be dropped, which would make the
			// new path look dead.
			l.update(s, now, func(grew uint64) bool {
				statusEcho := grew <= probeBytes && m.probes.sentSince(w.name, now.Add(-2*monitorInterval))
				return grew > keepaliveBytes && !statusEcho
			})
			silent := w.idle && now.Sub(l.rxAt) > silentIdle
			if !l.busyAndSilent(now) && !silent {
				continue
			}
			go func(name string, ip netip.Addr) {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := m.o.Tunnel.Ping(pctx, ip)
				cancel()
				if err == nil {
					return // alive after all; its answer shows in rx
				}
				if ctx.Err() == nil {
					m.pathLost(name)
				}
			}(w.name, w.ip)
			// Let the probe and the restart run before looking again.
			l.wait(now)
		}
	}
}

// watchAddresses restarts ICE when one of the host's addresses changes.
func (m *Mesh) watchAddresses(ctx context.Context) {
	updates := make(chan netlink.AddrUpdate, 16)
	done := make(chan struct{})
	go func() { <-ctx.Done(); close(done) }()
	if err := netlink.AddrSubscribe(updates, done); err != nil {
		m.log.Debug("no address updates", "err", err)
		return
	}
	var pending <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				return
			}
			a, _ := netip.AddrFromSlice(u.LinkAddress.IP)
			nets := m.store.Cluster().Networks
			if a.IsLoopback() || a.IsLinkLocalUnicast() || nets.OverlayV4.Contains(a.Unmap()) || nets.OverlayV6.Contains(a) {
				continue
			}
			pending = time.After(time.Second) // addresses come in bursts
		case <-pending:
			pending = nil
			m.mu.Lock()
			mgr := m.nat
			m.mu.Unlock()
			if mgr != nil {
				m.log.Info("local addresses changed: restarting ICE")
				mgr.RestartAll()
			}
		}
	}
}
