package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/home"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/mesh"
	"github.com/hepto-net/hepto/state"
	"github.com/hepto-net/hepto/tunnel"
)

// JoinTimeout bounds the wait for an anchor's answer.
const JoinTimeout = 30 * time.Second

// checkRejoin refuses a token of another cluster on a node that already
// belongs to one.
func checkRejoin(st state.Dir, token string) error {
	tok, err := membership.ParseToken(token)
	if err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	var c membership.Cluster
	if err := st.Read(state.ClusterFile, &c); err != nil {
		return err
	}
	if tok.Cluster != c.Name || !tok.ClusterKey.Equal(c.PublicKey) {
		return fmt.Errorf("--join: token is for cluster %q, but this node belongs to cluster %q", tok.Cluster, c.Name)
	}
	return nil
}

// join admits this node through the token's anchor. It opens a tunnel with
// the token's one-time key and join address, asks the anchor inside it,
// and on success writes the node's state. The node's own key is made and
// saved first and never leaves the node.
func join(ctx context.Context, cfg Config) error {
	tok, err := membership.ParseToken(cfg.Join)
	if err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	if err := tok.CheckExpiry(time.Now()); err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	st := state.Dir(cfg.State)
	var nk nodeKey
	if err := st.Read(state.NodeKeyFile, &nk); errors.Is(err, os.ErrNotExist) {
		if nk.PrivateKey, err = key.NewPrivate(); err != nil {
			return err
		}
		if err := st.Write(state.NodeKeyFile, nk, 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}

	// With several anchors, one that does not answer is given less time:
	// the next may.
	wait := JoinTimeout
	if len(tok.Anchors) > 1 {
		wait = JoinTimeout / 3
	}
	var lastErr error
	for _, a := range tok.Anchors {
		resp, err := joinVia(ctx, cfg, tok, a, nk.PrivateKey.Public(), wait)
		if err == nil {
			return saveJoin(st, tok, resp, nk.PrivateKey.Public())
		}
		if control.IsPermanent(err) {
			return fmt.Errorf("--join refused by anchor %s: %w", a.Name, err)
		}
		lastErr = err
	}
	return fmt.Errorf("--join: %w", lastErr)
}

func joinVia(ctx context.Context, cfg Config, tok membership.Token, a membership.Anchor, pub key.Public, wait time.Duration) (control.JoinResponse, error) {
	ep := mesh.ResolveEndpoint(a.Endpoint)
	if !ep.IsValid() {
		return control.JoinResponse{}, fmt.Errorf("cannot resolve anchor endpoint %q", a.Endpoint)
	}
	var anchorIP netip.Addr
	var allowed []netip.Prefix
	for _, ip := range a.OverlayIPs {
		allowed = append(allowed, netip.PrefixFrom(ip, ip.BitLen()))
		if ip.Is6() {
			anchorIP = ip
		}
	}
	if !anchorIP.IsValid() {
		return control.JoinResponse{}, fmt.Errorf("anchor %s has no IPv6 overlay address", a.Name)
	}
	t, err := tunnel.New(tunnel.Options{
		Netstack:   cfg.Userspace,
		ListenPort: cfg.Port,
		PrivateKey: tok.JoinKey,
		Addresses:  []netip.Prefix{netip.PrefixFrom(tok.JoinIP, 128)},
		Logger:     cfg.Logger,
	})
	if err != nil {
		return control.JoinResponse{}, err
	}
	defer t.Close()
	if err := t.SetPeers([]tunnel.Peer{{PublicKey: a.PublicKey, Endpoint: ep, AllowedIPs: allowed, Keepalive: mesh.Keepalive}}); err != nil {
		return control.JoinResponse{}, err
	}
	cfg.Logger.Debug("joining", "cluster", tok.Cluster, "name", tok.Name, "anchor", a.Name, "endpoint", ep)
	client := control.NewClient(t.DialContext)
	req := control.JoinRequest{Token: cfg.Join, PublicKey: pub, HomeReport: control.HomeReport{Zone: cfg.Zone}}
	deadline := time.Now().Add(wait)
	for {
		// The gateway is known once the tunnel's first packets went out.
		req.Home, _ = home.Find(tok.Cluster)
		var resp control.JoinResponse
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := client.Post(pctx, anchorIP, control.PathJoin, req, &resp)
		cancel()
		if err == nil || control.IsPermanent(err) {
			return resp, err
		}
		// No answer, or an anchor that failed on its side: try again.
		var ce *control.Error
		answered := errors.As(err, &ce)
		switch {
		case time.Now().After(deadline) && answered:
			return control.JoinResponse{}, fmt.Errorf("anchor %s could not admit this node within %s: %w", a.Name, wait, err)
		case time.Now().After(deadline):
			return control.JoinResponse{}, fmt.Errorf("no answer from anchor %s at %s within %s: is it running and reachable over UDP? (an anchor that does not know the token does not answer either)", a.Name, ep, wait)
		case answered:
			cfg.Logger.Warn("join: the anchor cannot admit this node now; retrying", "anchor", a.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			return control.JoinResponse{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// saveJoin checks the anchor's answer against the token's cluster key and
// writes it; node.json last, as it marks the node as joined.
func saveJoin(st state.Dir, tok membership.Token, resp control.JoinResponse, pub key.Public) error {
	var c membership.Cluster
	if err := resp.Cluster.Open(tok.ClusterKey, membership.KindCluster, &c); err != nil {
		return fmt.Errorf("join answer: %w", err)
	}
	if err := c.Validate(); err != nil || c.Name != tok.Cluster || !c.PublicKey.Equal(tok.ClusterKey) {
		return fmt.Errorf("join answer: cluster does not match the token")
	}
	self, err := membership.OpenNode(resp.Node, c)
	if err != nil {
		return fmt.Errorf("join answer: %w", err)
	}
	if self.PublicKey != pub || self.Name != tok.Name {
		return errors.New("join answer: record is not this node's")
	}
	if _, err := membership.Open(resp.Membership, c); err != nil {
		return fmt.Errorf("join answer: %w", err)
	}
	if self.IsAnchor() {
		// An anchor gets the cluster's key: it admits and signs too.
		sk := resp.SigningKey
		if sk == nil || len(sk.PrivateKey) != ed25519.PrivateKeySize || !sk.PrivateKey.Public().(ed25519.PublicKey).Equal(c.PublicKey) {
			return errors.New("join answer: an anchor's answer without the cluster's signing key")
		}
		if err := st.Write(state.ClusterKeyFile, sk, 0o600); err != nil {
			return err
		}
	}
	if err := st.Write(state.ClusterFile, c, 0o644); err != nil {
		return err
	}
	if err := st.Write(state.MembersFile, resp.Membership, 0o644); err != nil {
		return err
	}
	return st.Write(state.NodeFile, resp.Node, 0o644)
}
