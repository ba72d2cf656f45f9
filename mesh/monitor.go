package mesh

import (
	"context"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
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

// monitorPaths restarts ICE for a direct path that stopped answering.
func (m *Mesh) monitorPaths(ctx context.Context) {
	type seen struct {
		rx, tx     uint64
		rxAt, txAt time.Time
		probing    bool
	}
	last := map[string]*seen{}
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
		for _, n := range mem.Nodes {
			if _, up := m.paths[n.Name]; up {
				byKey[n.PublicKey.String()] = watched{n.Name, n.OverlayIPs[0], m.o.Self.PublicKey.Less(n.PublicKey)}
			}
		}
		m.mu.Unlock()
		now := time.Now()
		for _, s := range stats {
			w, ok := byKey[s.PublicKey.String()]
			if !ok {
				delete(last, s.PublicKey.String())
				continue
			}
			l := last[w.name]
			if l == nil {
				l = &seen{rx: s.RxBytes, tx: s.TxBytes, rxAt: now, txAt: now}
				last[w.name] = l
			}
			if s.RxBytes != l.rx {
				l.rx, l.rxAt = s.RxBytes, now
			}
			// A keepalive (32 bytes) is not traffic: WireGuard sends one
			// 10 s after receiving anything, and would keep us probing.
			// Nor is status's echo: during a path switch its answer may
			// come back the old way and be dropped, which would make the
			// new path look dead.
			grew := s.TxBytes - l.tx
			statusEcho := grew <= probeBytes && m.probes.sentSince(w.name, now.Add(-2*monitorInterval))
			if grew > keepaliveBytes && !statusEcho {
				l.txAt = now
			}
			l.tx = s.TxBytes
			busyAndSilent := l.txAt.After(l.rxAt) && now.Sub(l.rxAt) > silentWhileBusy
			silent := w.idle && now.Sub(l.rxAt) > silentIdle
			if !busyAndSilent && !silent {
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
			l.rxAt, l.txAt = now, now
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
