package mesh

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/nat"
)

// iceServers are the anchors' STUN and TURN servers, and the external ones.
func (m *Mesh) iceServers() []*stun.URI {
	m.mu.Lock()
	creds := m.turnCreds
	m.mu.Unlock()
	var out []*stun.URI
	add := func(raw, user, pass string) {
		u, err := stun.ParseURI(raw)
		if err != nil {
			m.log.Warn("ICE server", "uri", raw, "err", err)
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
		for _, n := range m.store.Current().Nodes {
			if host, _, err := net.SplitHostPort(n.Endpoint); err == nil && n.IsAnchor() {
				add("stun:"+net.JoinHostPort(host, strconv.Itoa(nat.ServerPort)), "", "")
			}
		}
	}
	for _, raw := range m.o.ICE.STUN {
		add(raw, "", "")
	}
	for _, raw := range m.o.ICE.TURN {
		user, pass, err := turn.GenerateLongTermTURNRESTCredentials(m.o.ICE.TURNSecret, m.o.Self.Name, nat.CredentialTTL)
		if err == nil {
			add(raw, user, pass)
		}
	}
	return out
}

// refreshTURN keeps TURN credentials from the relay anchor, renewed at
// half-life; first is closed after the first attempt.
func (m *Mesh) refreshTURN(ctx context.Context, first chan struct{}) {
	backoff := time.Second
	for {
		creds, err := m.fetchTURN(ctx)
		wait := nat.CredentialTTL / 2
		if err != nil {
			m.log.Debug("TURN credentials", "err", err)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
			m.mu.Lock()
			m.turnCreds = creds
			m.mu.Unlock()
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

// fetchTURN asks the anchors, the relay anchor first, for credentials.
func (m *Mesh) fetchTURN(ctx context.Context) (control.TURNCredentials, error) {
	err := errors.New("no anchor")
	for _, anchor := range m.anchorOrder(m.store.Current()) {
		var c control.TURNCredentials
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var found bool
		found, err = m.o.Client.Get(actx, anchor.OverlayIPs[0], control.PathTURN, &c)
		cancel()
		if err == nil && !found {
			err = errors.New("anchor sent no credentials")
		}
		if err == nil {
			return c, nil
		}
	}
	return control.TURNCredentials{}, err
}
