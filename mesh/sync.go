package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
)

// syncInterval is how often a node asks its anchor for a newer membership,
// in case it missed a push while away. Pushes carry changes at once.
const syncInterval = 30 * time.Minute

// handlePush merges a pushed set. When this node held entries that the
// sender lacks, it answers with the union, so that the sender (another
// anchor, say) converges too.
func (m *Mesh) handlePush(w http.ResponseWriter, r *http.Request) {
	var s membership.Set
	if err := control.Decode(r.Body, &s); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	if _, err := m.adopt(s); err != nil {
		m.log.Warn("membership push refused", "from", control.RemoteAddr(r), "err", err)
		control.WriteError(w, err)
		return
	}
	if m.o.Synced != nil {
		m.o.Synced()
	}
	if held := m.store.Set(); !s.Contains(held) {
		control.WriteJSON(w, http.StatusOK, held)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adopt merges a set; a disk failure is Unavailable, a set that does not
// verify is refused. A set that removes this node is kept, and the node
// stops (Removed).
func (m *Mesh) adopt(s membership.Set) (bool, error) {
	ok, err := m.store.Adopt(s)
	var ce *control.Error
	var removed *membership.RemovedError
	switch {
	case err == nil:
		if ok {
			mem := m.store.Current()
			m.log.Info("membership updated", "version", mem.Version, "nodes", len(mem.Nodes), "removed", len(mem.Removed))
		}
		return ok, nil
	case errors.As(err, &removed):
		m.removed(removed)
		return ok, nil
	case errors.As(err, &ce):
		return false, err
	case errors.Is(err, membership.ErrSave):
		return false, control.Unavailable(err)
	}
	return false, control.Refused("%v", err)
}

// removed records that this node was removed, once, and wakes Removed.
func (m *Mesh) removed(err *membership.RemovedError) {
	m.removedOnce.Do(func() {
		m.removedErr = err
		close(m.removedCh)
	})
}

// Removed is a service that ends, with the removal as its error, when a
// membership that removes this node arrives: the node must stop.
func (m *Mesh) Removed(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-m.removedCh:
		return m.removedErr
	}
}

// Gate refuses every request from a removed node but the membership's
// pull, which tells it that it was removed (see quarantined).
func (m *Mesh) Gate(r *http.Request) error {
	mem := m.store.Current()
	if len(mem.Removed) == 0 {
		return nil
	}
	from := control.RemoteAddr(r)
	for _, n := range mem.Nodes {
		if slices.Contains(n.OverlayIPs, from) {
			return nil // a member (an index given out again after the quarantine)
		}
	}
	nets := m.store.Cluster().Networks
	for _, t := range mem.Removed {
		if ips, _, err := nets.Node(t.Index); err != nil || !slices.Contains(ips, from) {
			continue
		}
		if r.Method == http.MethodGet && r.URL.Path == control.PathMembership {
			return nil
		}
		return control.Refused("node %s was removed from the cluster", t.Name)
	}
	return nil
}

// handlePull answers with the set when its digest is not ?have=DIGEST.
func (m *Mesh) handlePull(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("have") == m.store.Digest() {
		if m.o.Synced != nil {
			m.o.Synced()
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	control.WriteJSON(w, http.StatusOK, m.store.Set())
}

// syncMembership pulls from the relay anchor: at start until it answers,
// then every syncInterval.
func (m *Mesh) syncMembership(ctx context.Context) error {
	backoff := time.Second
	for {
		err := m.pull(ctx)
		wait := syncInterval
		if err != nil {
			m.log.Debug("membership pull", "err", err)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (m *Mesh) pull(ctx context.Context) error {
	err := errors.New("no anchor in the membership")
	for _, anchor := range m.anchorOrder(m.store.Current()) {
		var s membership.Set
		path := fmt.Sprintf("%s?have=%s", control.PathMembership, url.QueryEscape(m.store.Digest()))
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var found bool
		found, err = m.o.Client.Get(actx, anchor.OverlayIPs[0], path, &s)
		cancel()
		if err != nil {
			continue
		}
		if found {
			if _, err = m.adopt(s); err == nil && !s.Contains(m.store.Set()) {
				// The anchor lacks entries we hold (it was restored from a
				// backup, or away): give them back.
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = m.o.Client.Post(pctx, anchor.OverlayIPs[0], control.PathMembership, m.store.Set(), nil)
				cancel()
			}
		}
		return err
	}
	return err
}
