package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"github.com/vishvananda/netlink"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/nat"
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
		err := postJSONContext(ctx, d.httpClient(3*time.Second), url, control.RelayedICE{To: peer, Message: msg})
		var r *refusal
		if err == nil || errors.As(err, &r) {
			return err
		}
	}
	url := "http://" + netip.AddrPortFrom(n.OverlayIPs[0], control.Port).String() + control.PathICE
	return postJSONContext(ctx, d.httpClient(5*time.Second), url, msg)
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
	if err := postJSONContext(r.Context(), d.httpClient(3*time.Second), url, rel.Message); err != nil {
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

// iceServers are the anchors' STUN and TURN servers, and the external ones.
func (d *Daemon) iceServers() []*stun.URI {
	d.mu.Lock()
	creds := d.turnCreds
	m := d.members
	d.mu.Unlock()
	var out []*stun.URI
	add := func(raw, user, pass string) {
		u, err := stun.ParseURI(raw)
		if err != nil {
			d.log.Warn("ICE server", "uri", raw, "err", err)
			return
		}
		u.Username, u.Password = user, pass
		out = append(out, u)
	}
	if len(creds.URLs) > 0 {
		for _, raw := range creds.URLs {
			add(raw, creds.Username, creds.Password)
		}
	} else {
		for _, n := range m.Nodes {
			if host, _, err := net.SplitHostPort(n.Endpoint); err == nil && n.IsAnchor() {
				add("stun:"+net.JoinHostPort(host, strconv.Itoa(nat.ServerPort)), "", "")
			}
		}
	}
	for _, raw := range d.cfg.STUN {
		add(raw, "", "")
	}
	for _, raw := range d.cfg.TURN {
		user, pass, err := turn.GenerateLongTermTURNRESTCredentials(d.cfg.TURNSecret, d.self.Name, nat.CredentialTTL)
		if err == nil {
			add(raw, user, pass)
		}
	}
	return out
}

// refreshTURN keeps TURN credentials from the relay anchor, renewed at
// half-life; first is closed after the first attempt.
func (d *Daemon) refreshTURN(ctx context.Context, first chan struct{}) {
	backoff := time.Second
	for {
		creds, err := d.fetchTURN(ctx)
		wait := nat.CredentialTTL / 2
		if err != nil {
			d.log.Debug("TURN credentials", "err", err)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
			d.mu.Lock()
			d.turnCreds = creds
			d.mu.Unlock()
		}
		if first != nil {
			close(first)
			first = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (d *Daemon) fetchTURN(ctx context.Context) (nat.Credentials, error) {
	d.mu.Lock()
	anchor, ok := relayAnchor(d.members, d.self.Name)
	d.mu.Unlock()
	if !ok {
		return nat.Credentials{}, errors.New("no anchor")
	}
	url := "http://" + netip.AddrPortFrom(anchor.OverlayIPs[0], control.Port).String() + control.PathTURN
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nat.Credentials{}, err
	}
	resp, err := d.httpClient(10 * time.Second).Do(req)
	if err != nil {
		return nat.Credentials{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nat.Credentials{}, fmt.Errorf("anchor answered %s", resp.Status)
	}
	var c nat.Credentials
	return c, control.Decode(resp.Body, &c)
}

// handleTURN gives a member credentials for every anchor's TURN server.
func (d *Daemon) handleTURN(w http.ResponseWriter, r *http.Request) {
	if !d.isAnchor() {
		localapi.WriteError(w, http.StatusNotFound, errors.New("not an anchor"))
		return
	}
	d.mu.Lock()
	m := d.members
	d.mu.Unlock()
	var member string
	var urls []string
	for _, n := range m.Nodes {
		if containsAddr(n.OverlayIPs, remoteAddr(r)) {
			member = n.Name
		}
		if host, _, err := net.SplitHostPort(n.Endpoint); err == nil && n.IsAnchor() {
			hp := net.JoinHostPort(host, strconv.Itoa(nat.ServerPort))
			urls = append(urls, "stun:"+hp, "turn:"+hp+"?transport=udp")
		}
	}
	if member == "" {
		localapi.WriteError(w, http.StatusForbidden, errors.New("TURN credentials are for members only"))
		return
	}
	creds, err := nat.NewCredentials(nat.TURNSecret(d.signer), member, urls)
	if err != nil {
		localapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, creds)
}

// startTURNServer serves STUN and TURN on an anchor.
func (d *Daemon) startTURNServer(ctx context.Context) error {
	host, _, err := net.SplitHostPort(d.self.Endpoint)
	if err != nil {
		return err
	}
	ep := resolveEndpoint(d.self.Endpoint)
	if !ep.IsValid() {
		return fmt.Errorf("cannot resolve this anchor's endpoint host %q", host)
	}
	tm := d.metrics.TURN()
	srv, err := nat.NewServer(nat.ServerOptions{
		PublicIP: ep.Addr().AsSlice(), Realm: d.cluster.Name, Secret: nat.TURNSecret(d.signer), Logger: d.log,
		OnAllocation: func(delta int) { tm.Allocations.Add(float64(delta)) },
		OnRelayed:    func(dir string, n int) { tm.Relayed.WithLabelValues(dir).Add(float64(n)) },
	})
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); srv.Close() }()
	return nil
}

// monitorPaths restarts ICE for a direct path that stopped answering.
func (d *Daemon) monitorPaths(ctx context.Context) {
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
		d.mu.Lock()
		idle := len(d.paths) == 0
		d.mu.Unlock()
		if idle {
			continue
		}
		stats, err := d.tun.Stats()
		if err != nil {
			continue
		}
		d.mu.Lock()
		mgr := d.nat
		type watched struct {
			name string
			ip   netip.Addr
			idle bool // keepalives come from the other end
		}
		byKey := map[string]watched{}
		for _, n := range d.members.Nodes {
			if _, up := d.paths[n.Name]; up {
				byKey[n.PublicKey.String()] = watched{n.Name, n.OverlayIPs[0], d.self.PublicKey.Less(n.PublicKey)}
			}
		}
		d.mu.Unlock()
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
			if s.TxBytes > l.tx+keepaliveBytes {
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
				_, err := d.tun.Ping(pctx, ip)
				cancel()
				if err == nil {
					return // alive after all; its answer shows in rx
				}
				if mgr != nil && ctx.Err() == nil {
					mgr.Restart(name)
				}
			}(w.name, w.ip)
			// Let the probe and the restart run before looking again.
			l.rxAt, l.txAt = now, now
		}
	}
}

// watchAddresses restarts ICE when one of the host's addresses changes.
func (d *Daemon) watchAddresses(ctx context.Context) {
	updates := make(chan netlink.AddrUpdate, 16)
	done := make(chan struct{})
	go func() { <-ctx.Done(); close(done) }()
	if err := netlink.AddrSubscribe(updates, done); err != nil {
		d.log.Debug("no address updates", "err", err)
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
			if a.IsLoopback() || a.IsLinkLocalUnicast() || d.cluster.Networks.OverlayV4.Contains(a.Unmap()) || d.cluster.Networks.OverlayV6.Contains(a) {
				continue
			}
			pending = time.After(time.Second) // addresses come in bursts
		case <-pending:
			pending = nil
			d.mu.Lock()
			mgr := d.nat
			d.mu.Unlock()
			if mgr != nil {
				d.log.Info("local addresses changed: restarting ICE")
				mgr.RestartAll()
			}
		}
	}
}
