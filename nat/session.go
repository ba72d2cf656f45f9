package nat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/ice/v4"

	"github.com/hepto-net/hepto/control"
)

// session is one ICE agent for one peer.
type session struct {
	m     *Manager
	p     *peerState
	id    uint64
	probe bool
	// controlling is the peer's role when the session started: it Dials.
	controlling bool
	agent       *ice.Agent
	ctx         context.Context
	stop        context.CancelFunc
	out         chan control.ICEMessage

	once       sync.Once // starts Dial or Accept
	closeOnce  sync.Once
	agentClose sync.Once
}

func (m *Manager) newSession(p *peerState, id uint64, probe bool) (*session, error) {
	types := []ice.CandidateType{ice.CandidateTypeHost, ice.CandidateTypeServerReflexive, ice.CandidateTypeRelay}
	urls := m.o.Servers()
	if probe {
		types = types[:2]
	}
	keepalive, disconnected, failed := time.Duration(0), time.Duration(0), time.Duration(0)
	if !probe {
		// Only relayed pairs keep their agent; for them consent matters.
		keepalive, disconnected, failed = relayKeepalive, 2*relayKeepalive+5*time.Second, 3*relayKeepalive
	}
	check := 200 * time.Millisecond
	agent, err := ice.NewAgent(&ice.AgentConfig{
		Urls:                urls,
		NetworkTypes:        []ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeUDP6},
		CandidateTypes:      types,
		UDPMux:              m.mux,
		UDPMuxSrflx:         m.mux,
		Net:                 m.net,
		InterfaceFilter:     m.net.keepIface,
		IPFilter:            m.net.keepIP,
		MulticastDNSMode:    ice.MulticastDNSModeDisabled,
		KeepaliveInterval:   &keepalive,
		DisconnectedTimeout: &disconnected,
		FailedTimeout:       &failed,
		CheckInterval:       &check,
		LoggerFactory:       pionLogger(m.log, "ice"),
	})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	controlling := p.Controlling
	m.mu.Unlock()
	ctx, stop := context.WithTimeout(context.Background(), sessionTimeout)
	s := &session{m: m, p: p, id: id, probe: probe, controlling: controlling, agent: agent, ctx: ctx, stop: stop, out: make(chan control.ICEMessage, 32)}
	ufrag, pwd, err := agent.GetLocalUserCredentials()
	if err != nil {
		agent.Close()
		stop()
		return nil, err
	}
	s.send(control.ICEMessage{Ufrag: ufrag, Pwd: pwd})
	go s.sender()
	agent.OnCandidate(func(c ice.Candidate) {
		if c != nil {
			s.send(control.ICEMessage{Candidates: []string{c.Marshal()}})
		}
	})
	agent.OnConnectionStateChange(func(st ice.ConnectionState) {
		if st == ice.ConnectionStateFailed || st == ice.ConnectionStateDisconnected {
			go m.failed(p, s)
		}
	})
	if err := agent.GatherCandidates(); err != nil {
		s.close()
		return nil, err
	}
	// Checks that never succeed end the session.
	context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			go m.failed(p, s)
		}
	})
	return s, nil
}

func (s *session) send(msg control.ICEMessage) {
	msg.From, msg.Session, msg.Probe = s.m.o.Self, s.id, s.probe
	select {
	case s.out <- msg:
	default:
		s.m.log.Debug("ICE signalling queue full", "peer", s.p.Name)
	}
}

// sender posts messages in order; a lost one makes the session time out
// and start over.
func (s *session) sender() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case msg := <-s.out:
			msg = s.coalesce(msg)
			for attempt := 0; attempt < 3; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := s.m.o.Send(ctx, s.p.Name, msg)
				cancel()
				if err == nil {
					break
				}
				s.m.log.Debug("ICE signalling", "peer", s.p.Name, "err", err)
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// remote takes the peer's credentials and candidates (parsed from msg).
func (s *session) remote(msg control.ICEMessage, cands []ice.Candidate) error {
	for _, c := range cands {
		if err := s.agent.AddRemoteCandidate(c); err != nil {
			return fmt.Errorf("remote candidate: %w", err)
		}
	}
	if msg.Ufrag != "" {
		s.once.Do(func() { go s.run(msg.Ufrag, msg.Pwd) })
	}
	return nil
}

// run connects, then reports the selected pair.
func (s *session) run(ufrag, pwd string) {
	var conn *ice.Conn
	var err error
	if s.controlling {
		conn, err = s.agent.Dial(s.ctx, ufrag, pwd)
	} else {
		conn, err = s.agent.Accept(s.ctx, ufrag, pwd)
	}
	if err != nil {
		s.m.failed(s.p, s)
		return
	}
	pair, err := s.agent.GetSelectedCandidatePair()
	if err != nil || pair == nil {
		s.m.failed(s.p, s)
		return
	}
	remote := netip.AddrPortFrom(mustAddr(pair.Remote.Address()), uint16(pair.Remote.Port()))
	if !remote.IsValid() {
		s.m.failed(s.p, s)
		return
	}
	path := Path{
		Up:     true,
		Relay:  pair.Local.Type() == ice.CandidateTypeRelay || pair.Remote.Type() == ice.CandidateTypeRelay,
		Remote: remote,
		Local:  pair.Local.Type().String(),
	}
	if pair.Local.Type() == ice.CandidateTypeRelay {
		path.Send = func(b []byte) error { _, err := conn.Write(b); return err }
		go s.readRelay(conn, remote)
	}
	s.stop() // the timeout no longer applies
	s.m.connected(s.p, s, path)
}

// readRelay hands the tunnel what arrives through our relay candidate.
func (s *session) readRelay(conn *ice.Conn, from netip.AddrPort) {
	buf := make([]byte, 1<<16)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		s.m.o.Inject(buf[:n], from)
	}
}

// closeAgent stops ICE but keeps the session's place: its path goes on
// without it.
func (s *session) closeAgent() {
	s.agentClose.Do(func() { s.agent.Close() })
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		s.stop()
		s.closeAgent()
	})
}

func mustAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// coalesceWait lets candidates gathered together travel in one message.
const coalesceWait = 50 * time.Millisecond

// coalesce merges the messages queued within coalesceWait into msg.
func (s *session) coalesce(msg control.ICEMessage) control.ICEMessage {
	t := time.NewTimer(coalesceWait)
	defer t.Stop()
	for {
		select {
		case next := <-s.out:
			if next.Ufrag != "" {
				msg.Ufrag, msg.Pwd = next.Ufrag, next.Pwd
			}
			msg.Candidates = append(msg.Candidates, next.Candidates...)
		case <-t.C:
			return msg
		}
	}
}
