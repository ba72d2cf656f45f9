// Package nat finds direct paths between nodes behind NAT: one ICE agent
// (pion/ice) per pair of nodes, on the WireGuard socket itself, with STUN
// and TURN servers on anchors. What ICE selects becomes WireGuard's
// endpoint for the peer; a TURN relay carries WireGuard packets as they
// are, so encryption stays end to end.
package nat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"

	"github.com/hepto-net/hepto/control"
)

// Timings. ICE's own keepalives run only on relayed pairs (they keep the
// TURN allocation's mapping and consent alive); a direct pair is watched
// by WireGuard's keepalives and the daemon's path monitor instead, so idle
// links do not carry both.
const (
	sessionTimeout  = 20 * time.Second // checks that have not succeeded by then failed
	probeInterval   = 30 * time.Second // a relayed pair first tries to go direct after this (default),
	maxProbeWait    = 10 * time.Minute // then less and less often, down to this
	maxBackoff      = time.Minute
	relayKeepalive  = 25 * time.Second
	closeDirectWait = 3 * time.Second // let the last checks and nominations land
)

// Path is what ICE selected for a peer.
type Path struct {
	Up     bool
	Relay  bool           // a TURN relay candidate is in the pair
	Remote netip.AddrPort // WireGuard's endpoint for the peer
	Local  string         // local candidate type
	// Send is set when our own candidate is a relay: WireGuard packets to
	// Remote go through it.
	Send func([]byte) error
}

// Peer is a node to find a path to.
type Peer struct {
	Name        string
	Controlling bool // we control: our WireGuard key is the greater
}

// Options configure a Manager.
type Options struct {
	Self         string
	Conn         *PacketConn        // the WireGuard socket's ICE side
	SkipIfaces   []string           // never candidates: the TUN device
	SkipPrefixes []netip.Prefix     // never candidates: overlay and pod ranges
	Servers      func() []*stun.URI // STUN and TURN servers, with current credentials
	Send         func(ctx context.Context, peer string, m control.ICEMessage) error
	OnPath       func(peer string, p Path)
	Inject       func(pkt []byte, from netip.AddrPort) // packets that came through our relay
	Logger       *slog.Logger
	// Net is the network to gather candidates on; nil is the host's.
	Net transport.Net
	// DirectRetry is when a relayed pair first tries to go direct; the
	// wait then doubles up to ten minutes. 0 is 30 s.
	DirectRetry time.Duration
}

// Manager runs the ICE sessions of one node.
type Manager struct {
	o   Options
	log *slog.Logger
	mux *ice.UniversalUDPMuxDefault
	net *hostNet

	mu     sync.Mutex
	peers  map[string]*peerState
	closed bool
}

type peerState struct {
	Peer
	cur, probe *session
	path       Path
	backoff    time.Duration
	probeWait  time.Duration // before the next direct attempt of a relayed pair
	timer      *time.Timer   // next session or probe
}

// New starts a manager on the shared socket.
func New(o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DirectRetry <= 0 {
		o.DirectRetry = probeInterval
	}
	hn, err := newHostNet(o.Net, o.SkipIfaces, o.SkipPrefixes)
	if err != nil {
		return nil, fmt.Errorf("ice: %w", err)
	}
	mux := ice.NewUniversalUDPMuxDefault(ice.UniversalUDPMuxParams{
		UDPConn: o.Conn,
		Net:     hn,
		// The mapping changes when the box is renumbered: never reuse an
		// old observation for a new session.
		XORMappedAddrCacheTTL: time.Second,
		Logger:                pionLogger(o.Logger, "mux").NewLogger("mux"),
	})
	return &Manager{o: o, log: o.Logger.With("part", "ice"), mux: mux, net: hn, peers: map[string]*peerState{}}, nil
}

// Close ends every session.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	var ss []*session
	for _, p := range m.peers {
		ss = append(ss, p.cur, p.probe)
		p.cur, p.probe = nil, nil
		p.stopTimer()
	}
	m.mu.Unlock()
	closeAll(ss...)
	return m.mux.Close()
}

// SetPeers sets the nodes to keep paths to. The controlling side of a new
// pair starts a session at once; the other asks it to.
func (m *Manager) SetPeers(peers []Peer) {
	m.mu.Lock()
	want := map[string]bool{}
	var starts []*peerState
	var closing []*session
	for _, pr := range peers {
		want[pr.Name] = true
		if p, ok := m.peers[pr.Name]; ok {
			p.Controlling = pr.Controlling
			continue
		}
		p := &peerState{Peer: pr}
		m.peers[pr.Name] = p
		starts = append(starts, p)
	}
	var gone []*peerState
	for name, p := range m.peers {
		if !want[name] {
			closing = append(closing, p.cur, p.probe)
			p.stopTimer()
			delete(m.peers, name)
			gone = append(gone, p)
		}
	}
	m.mu.Unlock()
	closeAll(closing...)
	for _, p := range gone {
		m.pathDown(p)
	}
	for _, p := range starts {
		m.restart(p)
	}
}

// Restart drops a peer's path and looks for a new one: its path stopped
// carrying traffic, or an address changed.
func (m *Manager) Restart(peer string) {
	m.mu.Lock()
	p, ok := m.peers[peer]
	m.mu.Unlock()
	if ok {
		m.log.Info("path lost: restarting ICE", "peer", peer)
		m.pathDown(p)
		m.restart(p)
	}
}

// RestartAll restarts every peer's ICE: a local address changed.
func (m *Manager) RestartAll() {
	m.mu.Lock()
	var ps []*peerState
	for _, p := range m.peers {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	for _, p := range ps {
		m.restart(p)
	}
}

// restart starts a new session (controlling) or asks for one.
func (m *Manager) restart(p *peerState) {
	m.mu.Lock()
	controlling := p.Controlling
	m.mu.Unlock()
	if controlling {
		m.startSession(p, false)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.o.Send(ctx, p.Name, control.ICEMessage{From: m.o.Self, Restart: true}); err != nil {
			m.log.Debug("ask for a session", "peer", p.Name, "err", err)
			m.retryLater(p, false)
		}
	}()
}

// ErrClosed is Handle's answer once the Manager is closed.
var ErrClosed = errors.New("ICE manager closed")

// Handle takes a signalling message from a peer.
func (m *Manager) Handle(msg control.ICEMessage) error {
	m.mu.Lock()
	p, ok := m.peers[msg.From]
	closed := m.closed
	controlling := ok && p.Controlling
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return fmt.Errorf("no ICE with %q", msg.From)
	}
	// A malformed message changes nothing.
	cands := make([]ice.Candidate, 0, len(msg.Candidates))
	for _, raw := range msg.Candidates {
		c, err := ice.UnmarshalCandidate(raw)
		if err != nil {
			return fmt.Errorf("candidate from %s: %w", msg.From, err)
		}
		cands = append(cands, c)
	}
	if msg.Restart {
		if !controlling {
			return errors.New("restart asked of the controlled side")
		}
		// The other end lost the path: so have we, even if we have not
		// noticed yet.
		m.pathDown(p)
		m.startSession(p, false)
		return nil
	}
	if controlling {
		m.mu.Lock()
		s := p.sessionByID(msg.Session)
		m.mu.Unlock()
		if s == nil {
			return nil // an answer to a session we gave up
		}
		return s.remote(msg, cands)
	}
	return m.answer(p, msg, cands)
}

// answer runs the controlled side of the offered session.
func (m *Manager) answer(p *peerState, msg control.ICEMessage, cands []ice.Candidate) error {
	m.mu.Lock()
	if s := p.sessionByID(msg.Session); s != nil {
		m.mu.Unlock()
		return s.remote(msg, cands)
	}
	if msg.Ufrag == "" {
		m.mu.Unlock()
		return nil // candidates of a session we never saw the start of
	}
	if p.cur != nil && msg.Session < p.cur.id {
		m.mu.Unlock()
		return nil // stale
	}
	var old []*session
	if msg.Probe {
		old = append(old, p.probe)
	} else {
		old = append(old, p.cur, p.probe)
		p.cur = nil
	}
	p.probe = nil
	m.mu.Unlock()
	closeAll(old...)
	if !msg.Probe {
		m.pathDown(p) // a new session: the other end lost the path
	}
	s, err := m.newSession(p, msg.Session, msg.Probe)
	if err != nil {
		return fmt.Errorf("ICE session: %w", err)
	}
	if err := m.keep(p, s); errors.Is(err, errStale) {
		return nil // as above
	} else if err != nil {
		return err
	}
	return s.remote(msg, cands)
}

func (m *Manager) startSession(p *peerState, probe bool) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	p.stopTimer()
	old := []*session{p.probe}
	if !probe {
		old = append(old, p.cur)
		p.cur = nil
	}
	p.probe = nil
	m.mu.Unlock()
	closeAll(old...)
	s, err := m.newSession(p, uint64(time.Now().UnixNano()), probe)
	if err != nil {
		m.log.Warn("ICE session", "peer", p.Name, "err", err)
		m.retryLater(p, probe)
		return
	}
	m.keep(p, s)
}

// keep makes s the peer's current session or probe, unless the Manager
// closed, the peer left, or a newer session started meanwhile: then it
// closes s.
func (m *Manager) keep(p *peerState, s *session) error {
	m.mu.Lock()
	slot := &p.cur
	if s.probe {
		slot = &p.probe
	}
	var err error
	switch {
	case m.closed:
		err = ErrClosed
	case m.peers[p.Name] != p:
		err = fmt.Errorf("no ICE with %q", p.Name)
	case *slot != nil && (*slot).id > s.id:
		err = errStale
	}
	if err != nil {
		m.mu.Unlock()
		s.close()
		return err
	}
	old := *slot
	*slot = s
	m.mu.Unlock()
	closeAll(old) // an older one started beside it
	return nil
}

// errStale: a newer session of the pair started meanwhile.
var errStale = errors.New("stale ICE session")

// connected is called by a session that found its pair.
func (m *Manager) connected(p *peerState, s *session, path Path) {
	m.mu.Lock()
	if p.cur != s && p.probe != s {
		m.mu.Unlock()
		s.close()
		return
	}
	var old *session
	if s == p.probe {
		if path.Relay {
			// A probe is for a direct path only.
			p.probe = nil
			m.mu.Unlock()
			s.close()
			return
		}
		old, p.cur, p.probe = p.cur, s, nil
	}
	p.path = path
	p.backoff = 0
	p.probeWait = m.o.DirectRetry
	p.stopTimer()
	if path.Relay && p.Controlling {
		p.timer = time.AfterFunc(p.probeWait, func() { m.startSession(p, true) })
	}
	m.mu.Unlock()
	m.log.Info("path", "peer", p.Name, "relay", path.Relay, "endpoint", path.Remote, "local", path.Local)
	m.o.OnPath(p.Name, path)
	closeAll(old) // after the switch, so that no packet goes to a closed relay
	if !path.Relay {
		// WireGuard carries it from here; the agent would only add chatter.
		time.AfterFunc(closeDirectWait, s.closeAgent)
	}
}

// failed is called by a session that did not connect, or lost its pair.
func (m *Manager) failed(p *peerState, s *session) {
	m.mu.Lock()
	switch s {
	case p.probe:
		p.probe = nil
		if p.Controlling && p.path.Up {
			// Each attempt costs a few signalling exchanges: space them.
			p.probeWait = min(2*p.probeWait, maxProbeWait)
			p.stopTimer()
			p.timer = time.AfterFunc(p.probeWait, func() { m.startSession(p, true) })
		}
		m.mu.Unlock()
		s.close()
		return
	case p.cur:
		p.cur = nil
	default:
		m.mu.Unlock()
		s.close()
		return
	}
	m.mu.Unlock()
	s.close()
	m.pathDown(p)
	m.retryLater(p, false)
}

func (m *Manager) pathDown(p *peerState) {
	m.mu.Lock()
	was := p.path
	p.path = Path{}
	m.mu.Unlock()
	if was.Up {
		m.o.OnPath(p.Name, Path{Remote: was.Remote})
	}
}

// retryLater starts over after a growing pause.
func (m *Manager) retryLater(p *peerState, probe bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	p.backoff = min(max(2*p.backoff, time.Second), maxBackoff)
	p.stopTimer()
	p.timer = time.AfterFunc(p.backoff, func() {
		if probe {
			m.startSession(p, true)
		} else {
			m.restart(p)
		}
	})
}

func (p *peerState) sessionByID(id uint64) *session {
	for _, s := range []*session{p.cur, p.probe} {
		if s != nil && s.id == id {
			return s
		}
	}
	return nil
}

func (p *peerState) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

func closeAll(ss ...*session) {
	for _, s := range ss {
		if s != nil {
			s.close()
		}
	}
}
