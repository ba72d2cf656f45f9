package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/hepto-net/hepto/control"
)

// onlyHeptoGetsCredentials: a process on a member that is not its hepto
// (here the test, root in the member's network namespace, sending from
// the member's overlay address without its key) gets neither kubelet
// certificates from a control-plane node nor TURN credentials from an
// anchor: both are refused, saying why.
func onlyHeptoGetsCredentials(t *testing.T, member, controlPlane, anchor *node) {
	t.Helper()
	ipOf := func(n *node) netip.Addr {
		st, _, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		a, err := netip.ParseAddr(st.OverlayIPs[0])
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: member.Host.DialContext}, Timeout: 10 * time.Second}
	keys, _ := json.Marshal(control.NodeCertsRequest{})
	for _, c := range []struct {
		what, method string
		to           *node
		path         string
		body         []byte
	}{
		{"kubelet certificates", http.MethodPost, controlPlane, control.PathNodeCerts, keys},
		{"TURN credentials", http.MethodGet, anchor, control.PathTURN, nil},
	} {
		req, err := http.NewRequestWithContext(context.Background(), c.method, control.URL(ipOf(c.to), c.path), bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s from %s: %v", c.what, member.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("not signed")) {
			t.Errorf("%s asked by another process on %s: %s %s, want 403 saying the call is not signed", c.what, member.Name, resp.Status, body)
		}
	}
}
