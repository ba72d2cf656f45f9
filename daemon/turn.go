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

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/nat"
)

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
