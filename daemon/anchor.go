package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
)

// DefaultTokenTTL is how long a join token lasts unless told otherwise.
const DefaultTokenTTL = 24 * time.Hour

// issueToken signs a token for a new node and opens its join peer.
func (d *Daemon) issueToken(req localapi.TokenRequest) (localapi.TokenResponse, error) {
	if !d.isAnchor() {
		return localapi.TokenResponse{}, errors.New("this node is not an anchor: tokens are made on an anchor")
	}
	if err := membership.CheckName("node", req.Name); err != nil {
		return localapi.TokenResponse{}, err
	}
	if req.TTL <= 0 {
		req.TTL = DefaultTokenTTL
	}
	id, jid, err := membership.NewTokenID()
	if err != nil {
		return localapi.TokenResponse{}, err
	}
	joinKey, err := key.NewPrivate()
	if err != nil {
		return localapi.TokenResponse{}, err
	}
	now := time.Now().UTC()
	tok := membership.Token{
		ID: id, Cluster: d.cluster.Name, ClusterKey: d.cluster.PublicKey, Name: req.Name,
		Expires: now.Add(req.TTL).Truncate(time.Second), JoinKey: joinKey, JoinIP: d.cluster.Networks.JoinAddr(jid),
	}
	d.mu.Lock()
	if _, taken := d.members.Find(req.Name); taken {
		d.mu.Unlock()
		return localapi.TokenResponse{}, fmt.Errorf("node %q is already a member of the cluster", req.Name)
	}
	for _, n := range d.members.Nodes {
		if n.IsAnchor() {
			tok.Anchors = append(tok.Anchors, membership.Anchor{Name: n.Name, Endpoint: n.Endpoint, PublicKey: n.PublicKey, OverlayIPs: n.OverlayIPs})
		}
	}
	d.tokens.Tokens = append(d.tokens.Tokens, issuedToken{ID: id, Name: req.Name, Expires: tok.Expires, JoinPublic: joinKey.Public(), JoinIP: tok.JoinIP})
	err = d.tokens.save(now)
	d.mu.Unlock()
	if err != nil {
		return localapi.TokenResponse{}, err
	}
	s, err := tok.Encode(d.signer)
	if err != nil {
		return localapi.TokenResponse{}, err
	}
	if err := d.apply(); err != nil {
		return localapi.TokenResponse{}, err
	}
	d.log.Info("join token issued", "name", req.Name, "expires", tok.Expires)
	return localapi.TokenResponse{Token: s, Expires: tok.Expires}, nil
}

// admit handles a join request that arrived from remote inside the tunnel.
func (d *Daemon) admit(req control.JoinRequest, remote netip.Addr) (control.JoinResponse, error) {
	tok, err := membership.ParseToken(req.Token)
	if err != nil {
		return control.JoinResponse{}, err
	}
	now := time.Now().UTC()
	if err := tok.Check(d.cluster, now); err != nil {
		return control.JoinResponse{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	it := d.tokens.find(tok.ID)
	if it == nil {
		return control.JoinResponse{}, errors.New("token unknown to this anchor")
	}
	if it.JoinIP != remote {
		return control.JoinResponse{}, errors.New("join request did not come through the token's own tunnel")
	}
	if it.UsedAt != nil && it.UsedBy != req.PublicKey {
		return control.JoinResponse{}, fmt.Errorf("token already used, at %s", it.UsedAt.Format(time.RFC3339))
	}
	node, exists := d.members.Find(tok.Name)
	switch {
	case exists && node.PublicKey != req.PublicKey:
		return control.JoinResponse{}, fmt.Errorf("node %q is already a member of the cluster", tok.Name)
	case exists:
		// A retry after a lost answer: give the same record again.
	default:
		for _, n := range d.members.Nodes {
			if n.PublicKey == req.PublicKey {
				return control.JoinResponse{}, fmt.Errorf("that WireGuard key already belongs to node %q", n.Name)
			}
		}
		idx, err := d.members.FreeIndex(d.cluster.Networks)
		if err != nil {
			return control.JoinResponse{}, err
		}
		if node, err = membership.NewNode(d.cluster.Networks, idx, tok.Name, req.PublicKey); err != nil {
			return control.JoinResponse{}, err
		}
		m := d.members
		m.Nodes = append(append([]membership.Node(nil), m.Nodes...), node)
		if err := d.setMembershipLocked(m); err != nil {
			return control.JoinResponse{}, err
		}
	}
	if it.UsedAt == nil {
		it.UsedAt, it.UsedBy = &now, req.PublicKey
		if err := d.tokens.save(now); err != nil {
			return control.JoinResponse{}, err
		}
	}
	var resp control.JoinResponse
	if resp.Node, err = membership.Sign(d.signer, membership.KindNode, node); err != nil {
		return control.JoinResponse{}, err
	}
	if resp.Cluster, err = membership.Sign(d.signer, membership.KindCluster, d.cluster); err != nil {
		return control.JoinResponse{}, err
	}
	resp.Membership = d.signedM
	d.log.Info("node admitted", "name", node.Name, "overlay", node.OverlayIPs)
	return resp, nil
}

// setMembershipLocked signs m as the next version, saves and adopts it.
// Anchors only; the caller holds d.mu.
func (d *Daemon) setMembershipLocked(m membership.Membership) error {
	m.Version = d.members.Version + 1
	m.Issued = time.Now().UTC()
	s, err := membership.SignMembership(d.signer, m)
	if err != nil {
		return err
	}
	if err := d.st.Write(state.MembersFile, s, 0o644); err != nil {
		return err
	}
	d.members, d.signedM = m, s
	return nil
}

// afterAdmission reconfigures the tunnel and pushes the new membership.
func (d *Daemon) afterAdmission() {
	if err := d.apply(); err != nil {
		d.log.Error("reconfigure after admission", "err", err)
	}
	d.mu.Lock()
	m, s := d.members, d.signedM
	d.mu.Unlock()
	for _, n := range m.Nodes {
		if n.Name != d.self.Name {
			go d.push(n, s)
		}
	}
}

// push sends the membership to one node, retrying a little: a node that
// misses it pulls it when it starts and every syncInterval.
func (d *Daemon) push(n membership.Node, s membership.Signed) {
	url := "http://" + netip.AddrPortFrom(n.OverlayIPs[0], control.Port).String() + control.PathMembership
	for attempt := 0; attempt < 3; attempt++ {
		err := postJSON(context.Background(), d.httpClient(5*time.Second), url, s, nil)
		if err == nil {
			return
		}
		d.log.Debug("membership push", "node", n.Name, "err", err)
		time.Sleep(2 * time.Second)
	}
}

// expireTokens drops join peers when their tokens expire.
func (d *Daemon) expireTokens(ctx context.Context) error {
	for {
		d.mu.Lock()
		next, ok := d.tokens.nextExpiry(time.Now())
		d.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = time.Until(next) + time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
			if err := d.apply(); err != nil {
				d.log.Error("drop expired join peers", "err", err)
			}
		}
	}
}

func (d *Daemon) handleJoin(w http.ResponseWriter, r *http.Request) {
	if !d.isAnchor() {
		localapi.WriteError(w, http.StatusNotFound, errors.New("not an anchor"))
		return
	}
	req, err := control.DecodeJoinRequest(r.Body)
	if err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	resp, err := d.admit(req, remoteAddr(r))
	if err != nil {
		d.log.Warn("join refused", "from", remoteAddr(r), "err", err)
		localapi.WriteError(w, http.StatusForbidden, err)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, resp)
	go d.afterAdmission()
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// errorLine keeps the first line of a refusal.
func errorLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
