package mesh

import (
	"context"
	"time"
)

// Anchor watch: a home sends what it has no path of its own for through
// the relay anchor. When that anchor stops answering while the home sends
// (3 s, then one echo), the home marks it down and the next anchor relays;
// a down anchor gets one echo every anchorRecheck, and is the relay again
// once it answers. With one anchor there is nothing to switch to, and
// nothing is watched.
const anchorRecheck = 30 * time.Second

func (m *Mesh) watchAnchors(ctx context.Context) {
	last := map[string]*counters{}
	nextRecheck := time.Now().Add(anchorRecheck)
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		mem := m.store.Current()
		anchors := anchorsByIndex(mem, m.o.Self.Name)
		if len(anchors) < 2 {
			continue
		}
		relay, _ := m.relay(mem)
		stats, err := m.o.Tunnel.Stats()
		if err != nil {
			continue
		}
		now := time.Now()
		for _, s := range stats {
			if s.PublicKey != relay.PublicKey {
				continue
			}
			l := last[relay.Name]
			if l == nil {
				l = &counters{}
				last[relay.Name] = l
			}
			l.update(s, now, func(grew uint64) bool { return grew > keepaliveBytes })
			if l.busyAndSilent(now) {
				l.wait(now)
				go m.checkAnchor(ctx, relay.Name)
			}
		}
		if now.After(nextRecheck) {
			nextRecheck = now.Add(anchorRecheck)
			m.mu.Lock()
			var down []string
			for name := range m.anchorsDown {
				down = append(down, name)
			}
			m.mu.Unlock()
			for _, name := range down {
				go m.checkAnchor(ctx, name)
			}
		}
	}
}

// checkAnchor sends one echo to an anchor and marks it up or down.
func (m *Mesh) checkAnchor(ctx context.Context, name string) {
	n, ok := m.store.Current().Find(name)
	if !ok {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	_, err := m.o.Tunnel.Ping(pctx, n.OverlayIPs[0])
	cancel()
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	was := m.anchorsDown[name]
	if err != nil {
		m.anchorsDown[name] = true
	} else {
		delete(m.anchorsDown, name)
	}
	m.mu.Unlock()
	switch {
	case err != nil && !was:
		m.log.Warn("anchor does not answer: relaying through the next one", "anchor", name)
		m.Kick()
	case err == nil && was:
		m.log.Info("anchor answers again", "anchor", name)
		m.Kick()
	}
}
