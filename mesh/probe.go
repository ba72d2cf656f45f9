package mesh

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// A peer is alive when it answered over its current path within
// answeredWithin: an RTT probe or reply, a ping, or a probe that status
// sends when it has no recent answer. A path change forgets old answers.
const (
	answeredWithin = 2 * time.Second
	probeTimeout   = time.Second
)

// probes keeps when each peer last answered, and the probes in flight, so
// that concurrent readers (status, a scrape) share one.
type probes struct {
	mu       sync.Mutex
	heard    map[string]time.Time
	sent     map[string]time.Time // last echo sent to each peer
	inFlight map[string]chan struct{}
}

// probeBytes bounds what one echo (and the handshake it may start) adds to
// the tunnel's counters: the path monitor does not take it for traffic.
const probeBytes = 256

// sentSince reports whether an echo went to peer after t.
func (p *probes) sentSince(peer string, t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[peer].After(t)
}

func (p *probes) answered(peer string) {
	p.mu.Lock()
	p.heard[peer] = time.Now()
	p.mu.Unlock()
}

func (p *probes) forget(peer string) {
	p.mu.Lock()
	delete(p.heard, peer)
	p.mu.Unlock()
}

func (p *probes) recent(peer string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.heard[peer]
	return ok && time.Since(t) < answeredWithin
}

// settleTime is how long a new path is given before an unanswered echo
// counts against it: during a switch an answer may come back the old way.
const settleTime = 3 * time.Second

// unanswered takes an echo to peer that went unanswered (status's, or a
// ping's) as a sign that its direct path died: a box renumbered, a NAT
// mapping lost. It checks with one more echo, and if that goes unanswered
// too, drops the path and restarts ICE, as the path monitor does after its
// silences: on a quiet link, the echo that found the path dead is the
// first traffic after the change, and waiting for more costs seconds.
func (m *Mesh) unanswered(peer string, ip netip.Addr) {
	m.mu.Lock()
	_, direct := m.paths[peer]
	settled := time.Since(m.pathSince[peer]) >= settleTime
	busy := m.suspects[peer]
	if !direct || !settled || busy {
		m.mu.Unlock()
		return
	}
	m.suspects[peer] = true
	m.mu.Unlock()
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.suspects, peer)
			m.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		_, err := m.o.Tunnel.Ping(ctx, ip)
		cancel()
		if err == nil {
			m.probes.answered(peer)
			return
		}
		m.log.Info("direct path does not answer: restarting ICE", "peer", peer)
		m.pathLost(peer)
	}()
}

// alive reports whether peer answers now: a recent answer, or one to a
// ping sent to ip now.
func (m *Mesh) alive(ctx context.Context, peer string, ip netip.Addr) bool {
	p := &m.probes
	if p.recent(peer) {
		return true
	}
	p.mu.Lock()
	done, busy := p.inFlight[peer]
	if !busy {
		done = make(chan struct{})
		p.inFlight[peer] = done
		p.sent[peer] = time.Now()
		go func() {
			pctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			if _, err := m.o.Tunnel.Ping(pctx, ip); err == nil {
				p.answered(peer)
			} else {
				m.unanswered(peer, ip)
			}
			cancel()
			p.mu.Lock()
			delete(p.inFlight, peer)
			p.mu.Unlock()
			close(done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return false
	}
	return p.recent(peer)
}
