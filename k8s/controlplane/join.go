package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/state"
)

// ErrFirst is Options.Join's answer when no other control-plane node
// exists: this one starts the cluster.
var ErrFirst = errors.New("no other control-plane node")

// Joined is what a control-plane node gives a joining one.
type Joined struct {
	PKI            map[string][]byte // pki.Files() → content
	InitialCluster string            // etcd's NAME=PEER_URL,…, the joining member included
}

// joinRetry paces the join: another control-plane node may be starting,
// or have a learner already (etcd has one at a time).
var joinRetry = [2]time.Duration{2 * time.Second, 30 * time.Second}

// join asks another control-plane node for the cluster's CAs and etcd's
// membership until it answers, or until ctx ends.
func (c *ControlPlane) join(ctx context.Context) (Joined, error) {
	wait := joinRetry[0]
	for {
		j, err := c.opts.Join(ctx, c.peerURL())
		if err == nil || errors.Is(err, ErrFirst) {
			return j, err
		}
		c.opts.Logger.Warn("control plane: joining; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return Joined{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetry[1])
	}
}

// runJoin gets a joining node the cluster's CAs, then lets the
// components start.
func (c *ControlPlane) runJoin(ctx context.Context) error {
	j, err := c.join(ctx)
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, ErrFirst):
		c.opts.Logger.Info("control plane: no other control-plane node; starting the cluster")
		return c.prepare()
	case err != nil:
		return err
	}
	if err := writePKI(c.opts.PKIDir, j.PKI); err != nil {
		return err
	}
	c.initialCluster = j.InitialCluster
	c.opts.Logger.Info("control plane: joined", "etcd", j.InitialCluster)
	return c.prepare()
}

// writePKI writes the CAs a joining node was given, keys 0600.
func writePKI(dir string, files map[string][]byte) error {
	for name := range files {
		if !slices.Contains(pki.Files(), name) {
			return fmt.Errorf("control plane: unexpected file %q among the cluster's CAs", name)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	for _, name := range pki.Files() {
		b, ok := files[name]
		if !ok {
			return fmt.Errorf("control plane: the cluster's CAs given lack %s", name)
		}
		perm := os.FileMode(0o600)
		if filepath.Ext(name) == ".crt" || name == pki.SAPubFile {
			perm = 0o644
		}
		if err := state.Dir(dir).WriteBytes(name, b, perm); err != nil {
			return fmt.Errorf("control plane: %w", err)
		}
	}
	return nil
}

// PKIFiles are the cluster's CAs and service-account key, for a joining
// control-plane node.
func (c *ControlPlane) PKIFiles() (map[string][]byte, error) {
	p := c.PKI()
	if p == nil {
		return nil, ErrEtcdNotRunning
	}
	out := map[string][]byte{}
	for _, name := range pki.Files() {
		b, err := os.ReadFile(p.Path(name))
		if err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
		out[name] = b
	}
	return out, nil
}
