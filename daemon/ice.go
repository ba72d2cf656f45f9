package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/tunnel"
)

// startICE runs NAT traversal towards the other non-anchor nodes.
func (d *Daemon) startICE(ctx context.Context) error {
	conn := nat.NewPacketConn(d.tun.ListenPort(), d.tun.SendRaw)
	skip := []netip.Prefix{d.cluster.Networks.OverlayV4, d.cluster.Networks.OverlayV6, d.cluster.Networks.PodsV4, d.cluster.Networks.PodsV6}
	mgr, err := nat.New(nat.Options{
		Self:         d.self.Name,
		Conn:         conn,
		SkipIfaces:   []string{tunnel.DefaultName},
		SkipPrefixes: skip,
		Servers:      d.iceServers,
		Send:         d.sendICE,
		OnPath:       d.onPath,
		Inject:       d.tun.Inject,
		Logger:       d.log,
	})
	if err != nil {
		return err
	}
	d.natConn.Store(conn)
	go func() {
		<-ctx.Done()
		mgr.Close()
		conn.Close()
	}()
	// Credentials first, so that the first sessions have TURN.
	first := make(chan struct{})
	go d.refreshTURN(ctx, first)
	select {
	case <-first:
	case <-time.After(5 * time.Second):
	}
	d.mu.Lock()
	d.nat = mgr
	d.mu.Unlock()
	go d.monitorPaths(ctx)
	go d.watchAddresses(ctx)
	return d.apply()
}

// icePeers are the nodes to run ICE with: every other non-anchor node.
func icePeers(m membership.Membership, self membership.Node) []nat.Peer {
	var out []nat.Peer
	for _, n := range m.Nodes {
		if n.Name != self.Name && !n.IsAnchor() {
			out = append(out, nat.Peer{Name: n.Name, Controlling: n.PublicKey.Less(self.PublicKey)})
		}
	}
	return out
}

// onPath makes WireGuard follow what ICE selected.
func (d *Daemon) onPath(peer string, p nat.Path) {
	d.mu.Lock()
	old := d.paths[peer]
	if p.Up {
		d.paths[peer] = p
	} else {
		delete(d.paths, peer)
	}
	d.pathChanges[peer]++
	d.mu.Unlock()
	if old.Send != nil && (p.Send == nil || p.Remote != old.Remote) {
		d.tun.ClearRelay(old.Remote)
	}
	if p.Send != nil {
		d.tun.SetRelay(p.Remote, p.Send)
	}
	if err := d.apply(); err != nil {
		d.log.Error("follow ICE path", "peer", peer, "err", err)
	}
}

// sendICE posts a signalling message to a peer, inside the overlay:
// through the relay anchor, which passes it on whatever state the pair's
// own path is in, or straight to the peer when the anchor does not answer.
func (d *Daemon) sendICE(ctx context.Context, peer string, msg control.ICEMessage) error {
	d.mu.Lock()
	n, ok := d.members.Find(peer)
	anchor, haveAnchor := relayAnchor(d.members, d.self.Name)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("no node %q", peer)
	}
	if haveAnchor {
		url := "http://" + netip.AddrPortFrom(anchor.OverlayIPs[0], control.Port).String() + control.PathRelayICE
		err := postJSON(ctx, d.httpClient(3*time.Second), url, control.RelayedICE{To: peer, Message: msg}, nil)
		var r *refusal
		if err == nil || errors.As(err, &r) {
			return err
		}
	}
	url := "http://" + netip.AddrPortFrom(n.OverlayIPs[0], control.Port).String() + control.PathICE
	return postJSON(ctx, d.httpClient(5*time.Second), url, msg, nil)
}

// handleRelayICE passes a member's ICE message on to its peer (anchors).
func (d *Daemon) handleRelayICE(w http.ResponseWriter, r *http.Request) {
	var rel control.RelayedICE
	if err := control.Decode(r.Body, &rel); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	d.mu.Lock()
	from, okFrom := d.members.Find(rel.Message.From)
	to, okTo := d.members.Find(rel.To)
	d.mu.Unlock()
	if !d.isAnchor() || !okFrom || !okTo || !containsAddr(from.OverlayIPs, remoteAddr(r)) {
		localapi.WriteError(w, http.StatusForbidden, errors.New("not relayed: unknown nodes, or not from the sender"))
		return
	}
	url := "http://" + netip.AddrPortFrom(to.OverlayIPs[0], control.Port).String() + control.PathICE
	if err := postJSON(r.Context(), d.httpClient(3*time.Second), url, rel.Message, nil); err != nil {
		localapi.WriteError(w, http.StatusBadGateway, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (d *Daemon) handleICE(w http.ResponseWriter, r *http.Request) {
	msg, err := control.DecodeICEMessage(r.Body)
	if err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	d.mu.Lock()
	mgr := d.nat
	n, ok := d.members.Find(msg.From)
	d.mu.Unlock()
	if !ok || !(containsAddr(n.OverlayIPs, remoteAddr(r)) || d.isAnchorAddr(remoteAddr(r))) {
		localapi.WriteError(w, http.StatusForbidden, errors.New("ICE message not from its sender's overlay address"))
		return
	}
	if mgr == nil {
		localapi.WriteError(w, http.StatusServiceUnavailable, errors.New("no ICE on this node"))
		return
	}
	if err := mgr.Handle(msg); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// isAnchorAddr reports whether a is an anchor's overlay address: anchors
// pass signalling on.
func (d *Daemon) isAnchorAddr(a netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.members.Nodes {
		if n.IsAnchor() && containsAddr(n.OverlayIPs, a) {
			return true
		}
	}
	return false
}

func containsAddr(ips []netip.Addr, a netip.Addr) bool {
	for _, ip := range ips {
		if ip == a {
			return true
		}
	}
	return false
}
