package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
)

// syncInterval is how often a node asks its anchor for a newer membership,
// in case it missed a push while away. Pushes carry changes at once.
const syncInterval = 30 * time.Minute

func (m *Mesh) handlePush(w http.ResponseWriter, r *http.Request) {
	var s membership.Signed
	if err := control.Decode(r.Body, &s); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	if _, err := m.adopt(s); err != nil {
		m.log.Warn("membership push refused", "from", control.RemoteAddr(r), "err", err)
		control.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adopt takes a newer membership; a disk failure is Unavailable, a
// membership that does not verify is refused.
func (m *Mesh) adopt(s membership.Signed) (bool, error) {
	ok, err := m.store.Adopt(s)
	var ce *control.Error
	switch {
	case err == nil:
		if ok {
			mem := m.store.Current()
			m.log.Info("membership updated", "version", mem.Version, "nodes", len(mem.Nodes))
		}
		return ok, nil
	case errors.As(err, &ce):
		return false, err
	case errors.Is(err, membership.ErrSave):
		return false, control.Unavailable(err)
	}
	return false, control.Refused("%v", err)
}

// handlePull answers with the membership when it is newer than ?have=N.
func (m *Mesh) handlePull(w http.ResponseWriter, r *http.Request) {
	have, _ := strconv.ParseUint(r.URL.Query().Get("have"), 10, 64)
	if m.store.Current().Version <= have {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	control.WriteJSON(w, http.StatusOK, m.store.Signed())
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
	mem := m.store.Current()
	anchor, ok := relayAnchor(mem, m.o.Self.Name)
	if !ok {
		return errors.New("no anchor in the membership")
	}
	var s membership.Signed
	found, err := m.o.Client.Get(ctx, anchor.OverlayIPs[0], fmt.Sprintf("%s?have=%d", control.PathMembership, mem.Version), &s)
	if err != nil || !found {
		return err
	}
	_, err = m.adopt(s)
	return err
}
