package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/tunnel"
)

// iceService runs NAT traversal towards the other non-anchor nodes.
type iceService struct {
	m    *Mesh
	mgr  *nat.Manager
	conn *nat.PacketConn
}

func (s *iceService) Name() string { return "ice" }

func (s *iceService) Start(context.Context) error {
	m := s.m
	nets := m.store.Cluster().Networks
	conn := nat.NewPacketConn(m.o.Tunnel.ListenPort(), m.o.Tunnel.SendRaw)
	mgr, err := nat.New(nat.Options{
		Self:         m.o.Self.Name,
		Conn:         conn,
		SkipIfaces:   []string{tunnel.DefaultName},
		SkipPrefixes: []netip.Prefix{nets.OverlayV4, nets.OverlayV6, nets.PodsV4, nets.PodsV6},
		Servers:      m.iceServers,
		Send:         m.sendICE,
		OnPath:       m.onPath,
		Inject:       m.o.Tunnel.Inject,
		DirectRetry:  m.o.ICE.Retry,
		Logger:       m.log,
	})
	if err != nil {
		conn.Close()
		return err
	}
	s.mgr, s.conn = mgr, conn
	return nil
}

func (s *iceService) Run(ctx context.Context) error {
	m := s.m
	m.natConn.Store(s.conn)
	defer func() {
		m.mu.Lock()
		m.nat = nil
		m.mu.Unlock()
		m.natConn.Store(nil)
		s.mgr.Close()
		s.conn.Close()
	}()
	// Credentials first, so that the first sessions have TURN.
	first := make(chan struct{})
	go m.refreshTURN(ctx, first)
	select {
	case <-first:
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		return nil
	}
	m.mu.Lock()
	m.nat = s.mgr
	m.mu.Unlock()
	m.Kick()
	go m.watchAddresses(ctx)
	go m.learnPaths(ctx)
	go m.watchAnchors(ctx)
	m.monitorPaths(ctx)
	return nil
}

// icePeers are the nodes to run ICE with: every other non-anchor node.
func icePeers(mem membership.Membership, self membership.Node) []nat.Peer {
	var out []nat.Peer
	for _, n := range mem.Nodes {
		if n.Name != self.Name && !n.IsAnchor() {
			out = append(out, nat.Peer{Name: n.Name, Controlling: n.PublicKey.Less(self.PublicKey)})
		}
	}
	return out
}

// onPath makes WireGuard follow what ICE selected.
func (m *Mesh) onPath(peer string, p nat.Path) {
	m.mu.Lock()
	old := m.paths[peer]
	if p.Up {
		m.paths[peer] = p
	} else {
		delete(m.paths, peer)
	}
	m.pathChanges[peer]++
	m.pathSince[peer] = time.Now()
	m.mu.Unlock()
	m.probes.forget(peer)
	if old.Send != nil && (p.Send == nil || p.Remote != old.Remote) {
		m.o.Tunnel.ClearRelay(old.Remote)
	}
	if p.Send != nil {
		m.o.Tunnel.SetRelay(p.Remote, p.Send)
	}
	m.Kick()
}

// sendICE posts a signalling message to a peer, inside the overlay:
// through the relay anchor, which passes it on whatever state the pair's
// own path is in, or straight to the peer when the anchor does not answer.
func (m *Mesh) sendICE(ctx context.Context, peer string, msg control.ICEMessage) error {
	mem := m.store.Current()
	n, ok := mem.Find(peer)
	if !ok {
		return fmt.Errorf("no node %q", peer)
	}
	if mac, err := m.iceMAC(msg, n.PublicKey); err == nil {
		msg.MAC = mac
	}
	for _, anchor := range m.anchorOrder(mem) {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := m.o.Client.Post(actx, anchor.OverlayIPs[0], control.PathRelayICE, control.RelayedICE{To: peer, Message: msg}, nil)
		cancel()
		if err == nil || control.IsPermanent(err) {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := m.o.Client.Post(dctx, n.OverlayIPs[0], control.PathICE, msg, nil)
	cancel()
	if err == nil || control.IsPermanent(err) {
		return err
	}
	// No anchor answers and the peer is not reachable directly: through a
	// node we have a path of our own to, which may have one to the peer.
	tried := 0
	for _, via := range m.directPeers(mem) {
		if via.Name == peer || tried == 3 {
			continue
		}
		tried++
		vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		verr := m.o.Client.Post(vctx, via.OverlayIPs[0], control.PathRelayICE, control.RelayedICE{To: peer, Message: msg}, nil)
		cancel()
		if verr == nil || control.IsPermanent(verr) {
			return verr
		}
	}
	return err
}

// directPeers are the members we have a path of our own to.
func (m *Mesh) directPeers(mem membership.Membership) []membership.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []membership.Node
	for _, n := range mem.Nodes {
		if p, ok := m.paths[n.Name]; ok && p.Up {
			out = append(out, n)
		}
	}
	return out
}

// handleRelayICE passes a member's ICE message on to its peer. Anchors do
// it for every pair; any node does it when no anchor answers.
func (m *Mesh) handleRelayICE(w http.ResponseWriter, r *http.Request) {
	var rel control.RelayedICE
	if err := control.Decode(r.Body, &rel); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	mem := m.store.Current()
	from, okFrom := mem.Find(rel.Message.From)
	to, okTo := mem.Find(rel.To)
	if !okFrom || !okTo || to.Name == m.o.Self.Name || !slices.Contains(from.OverlayIPs, control.RemoteAddr(r)) {
		control.WriteError(w, control.Refused("not relayed: unknown nodes, or not from the sender"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := m.o.Client.Post(ctx, to.OverlayIPs[0], control.PathICE, rel.Message, nil); err != nil {
		var ce *control.Error
		if !errors.As(err, &ce) {
			err = &control.Error{Status: http.StatusBadGateway, Code: control.CodeUnavailable, Message: err.Error()}
		}
		control.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (m *Mesh) handleICE(w http.ResponseWriter, r *http.Request) {
	msg, err := control.DecodeICEMessage(r.Body)
	if err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	mem := m.store.Current()
	from := control.RemoteAddr(r)
	n, ok := mem.Find(msg.From)
	switch {
	case !ok:
		control.WriteError(w, control.Refused("ICE message from an unknown node"))
		return
	case slices.Contains(n.OverlayIPs, from) || isAnchorAddr(mem, from):
	case !isMemberAddr(mem, from) || !m.checkICEMAC(msg, n.PublicKey):
		control.WriteError(w, control.Refused("ICE message not from its sender, nor passed on by an anchor, nor authenticated"))
		return
	}
	m.mu.Lock()
	mgr := m.nat
	m.mu.Unlock()
	if mgr == nil {
		control.WriteError(w, control.Unavailable(errors.New("no ICE on this node")))
		return
	}
	if err := mgr.Handle(msg); errors.Is(err, nat.ErrClosed) {
		control.WriteError(w, control.Unavailable(err))
		return
	} else if err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// isAnchorAddr reports whether a is an anchor's overlay address: anchors
// pass signalling on, and are trusted to.
func isAnchorAddr(mem membership.Membership, a netip.Addr) bool {
	for _, n := range mem.Nodes {
		if n.IsAnchor() && slices.Contains(n.OverlayIPs, a) {
			return true
		}
	}
	return false
}

// isMemberAddr reports whether a is a member's overlay address: members
// pass signalling on when no anchor answers; what they pass must carry the
// sender's MAC.
func isMemberAddr(mem membership.Membership, a netip.Addr) bool {
	for _, n := range mem.Nodes {
		if slices.Contains(n.OverlayIPs, a) {
			return true
		}
	}
	return false
}
