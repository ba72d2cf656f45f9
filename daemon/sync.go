package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
)

// syncInterval is how often a node asks its anchor for a newer membership,
// in case it missed a push while away. Pushes carry changes at once.
const syncInterval = 30 * time.Minute

func (d *Daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+control.PathJoin, d.handleJoin)
	mux.HandleFunc("POST "+control.PathMembership, d.handlePush)
	mux.HandleFunc("GET "+control.PathMembership, d.handlePull)
	mux.HandleFunc("POST "+control.PathICE, d.handleICE)
	mux.HandleFunc("POST "+control.PathRelayICE, d.handleRelayICE)
	mux.HandleFunc("GET "+control.PathTURN, d.handleTURN)
	return mux
}

// adopt takes a signed membership if it is valid and newer than ours.
func (d *Daemon) adopt(s membership.Signed) (bool, error) {
	m, err := membership.OpenMembership(s, d.cluster)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	if m.Version <= d.members.Version {
		d.mu.Unlock()
		return false, nil
	}
	if self, ok := m.Find(d.self.Name); !ok || self.PublicKey != d.self.PublicKey {
		d.mu.Unlock()
		return false, errors.New("membership does not list this node")
	}
	if err := d.st.Write(state.MembersFile, s, 0o644); err != nil {
		d.mu.Unlock()
		return false, err
	}
	d.members, d.signedM = m, s
	d.mu.Unlock()
	d.log.Info("membership updated", "version", m.Version, "nodes", len(m.Nodes))
	return true, d.apply()
}

func (d *Daemon) handlePush(w http.ResponseWriter, r *http.Request) {
	var s membership.Signed
	if err := control.Decode(r.Body, &s); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if _, err := d.adopt(s); err != nil {
		d.log.Warn("membership push refused", "from", remoteAddr(r), "err", err)
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handlePull answers with the membership when it is newer than ?have=N.
func (d *Daemon) handlePull(w http.ResponseWriter, r *http.Request) {
	have, _ := strconv.ParseUint(r.URL.Query().Get("have"), 10, 64)
	d.mu.Lock()
	m, s := d.members, d.signedM
	d.mu.Unlock()
	if m.Version <= have {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	localapi.WriteJSON(w, http.StatusOK, s)
}

// syncMembership pulls from the relay anchor: at start until it answers,
// then every syncInterval.
func (d *Daemon) syncMembership(ctx context.Context) error {
	backoff := time.Second
	for {
		err := d.pull(ctx)
		wait := syncInterval
		if err != nil {
			d.log.Debug("membership pull", "err", err)
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

func (d *Daemon) pull(ctx context.Context) error {
	d.mu.Lock()
	anchor, ok := relayAnchor(d.members, d.self.Name)
	have := d.members.Version
	d.mu.Unlock()
	if !ok {
		return errors.New("no anchor in the membership")
	}
	url := fmt.Sprintf("http://%s%s?have=%d", netip.AddrPortFrom(anchor.OverlayIPs[0], control.Port), control.PathMembership, have)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := d.httpClient(10 * time.Second).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("anchor %s answered %s", anchor.Name, resp.Status)
	}
	var s membership.Signed
	if err := control.Decode(resp.Body, &s); err != nil {
		return err
	}
	_, err = d.adopt(s)
	return err
}

// postJSON posts in and decodes a 200 reply into out (nil: no reply
// expected); a refusal becomes the error the other side gave.
func postJSON(ctx context.Context, c *http.Client, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && out != nil:
		return control.Decode(resp.Body, out)
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
		return nil
	}
	var e control.ErrorReply
	if control.Decode(resp.Body, &e) == nil && e.Error != "" {
		return &refusal{msg: errorLine(e.Error)}
	}
	return fmt.Errorf("answered %s", resp.Status)
}

// refusal is an error stated by the other side: retrying will not help.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }
