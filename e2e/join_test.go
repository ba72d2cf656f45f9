package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// Two homes behind NAT boxes that drop unsolicited inbound join through an
// anchor, reach each other over both families, survive a restart without
// the anchor, and leave nothing behind on SIGTERM.
func TestHomesJoinRestartAndStop(t *testing.T) {
	w := newWorld(t)
	h := w.twoHomes("home-a", lab.EIM, "home-b", lab.EIM)
	a, na, nb := h.anchor, h.a, h.b

	stA := na.waitConnected(60*time.Second, "anchor", "home-b")
	stB := nb.waitConnected(60*time.Second, "anchor", "home-a")
	a.waitConnected(30*time.Second, "home-a", "home-b")

	for _, ip := range stB.OverlayIPs {
		if err := na.ping(ip, 20*time.Second); err != nil {
			t.Fatalf("home-a → home-b %s: %v", ip, err)
		}
	}
	for _, ip := range stA.OverlayIPs {
		if err := nb.ping(ip, 20*time.Second); err != nil {
			t.Fatalf("home-b → home-a %s: %v", ip, err)
		}
	}

	t.Run("status json", func(t *testing.T) {
		na.waitPath(30*time.Second, "home-b", "direct")
		_, raw, err := na.status()
		if err != nil {
			t.Fatal(err)
		}
		checkStatusJSON(t, raw, "home-a", "demo", map[string]string{"anchor": "direct", "home-b": "direct"})
		st, _, err := na.status()
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := peer(st, "anchor"); p.Endpoint != a.Host.IPv4.String()+":51820" {
			t.Errorf("anchor endpoint %q", p.Endpoint)
		}
	})

	// Restart home-b with the anchor down: it comes back from its state
	// directory alone, with the same identity.
	keyBefore, err := os.ReadFile(filepath.Join(nb.State, "node.key"))
	if err != nil || len(keyBefore) == 0 {
		t.Fatalf("home-b's key before the restart: %v (%d bytes)", err, len(keyBefore))
	}
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("anchor exit code %d", code)
	}
	if code := nb.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("home-b exit code %d", code)
	}
	t.Run("SIGTERM removes hepto0 and its routes", func(t *testing.T) {
		if out, err := nb.Host.Run(w.ctx, "ip", "link", "show", "hepto0"); err == nil {
			t.Fatalf("hepto0 still there: %s", out)
		}
		for _, fam := range []string{"-4", "-6"} {
			out, _ := nb.Host.Run(w.ctx, "ip", fam, "route", "show", "table", "all")
			if strings.Contains(out, "hepto0") || strings.Contains(out, "10.77.") {
				t.Fatalf("routes left (%s):\n%s", fam, out)
			}
		}
	})
	nb.start()
	nb.waitSocket()
	st, _, err := nb.status()
	if err != nil {
		t.Fatal(err)
	}
	keyAfter, err := os.ReadFile(filepath.Join(nb.State, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "home-b" || fmt.Sprint(st.OverlayIPs) != fmt.Sprint(stB.OverlayIPs) || !bytes.Equal(keyBefore, keyAfter) {
		t.Fatalf("identity changed across restart: %v %v", st, stB)
	}
	a.start()
	start := time.Now()
	if err := na.ping(st.OverlayIPs[0], 120*time.Second); err != nil {
		t.Fatalf("home-a → home-b after restarts: %v", err)
	}
	t.Logf("home-a reached home-b %s after the anchor came back", time.Since(start).Round(time.Second))
}

// checkStatusJSON checks the fields the design brief fixes, by name and type.
func checkStatusJSON(t *testing.T, raw []byte, name, cluster string, paths map[string]string) {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st["name"] != name || st["cluster"] != cluster {
		t.Errorf("name/cluster: %v %v", st["name"], st["cluster"])
	}
	checkIPs(t, "overlay_ips", st["overlay_ips"])
	peers, _ := st["peers"].([]any)
	if len(peers) != len(paths) {
		t.Fatalf("peers: %d, want %d: %s", len(peers), len(paths), raw)
	}
	for _, p := range peers {
		p := p.(map[string]any)
		pn, _ := p["name"].(string)
		want, ok := paths[pn]
		if !ok {
			t.Errorf("unexpected peer %q", pn)
			continue
		}
		checkIPs(t, pn+".overlay_ips", p["overlay_ips"])
		if p["connected"] != true {
			t.Errorf("%s: connected %v", pn, p["connected"])
		}
		if p["path"] != want {
			t.Errorf("%s: path %v, want %s", pn, p["path"], want)
		}
		if ep, _ := p["endpoint"].(string); ep == "" {
			t.Errorf("%s: no endpoint", pn)
		} else if _, err := netip.ParseAddrPort(ep); err != nil {
			t.Errorf("%s: endpoint %q: %v", pn, ep, err)
		}
		if v, ok := p["rtt_seconds"]; !ok {
			t.Errorf("%s: no rtt_seconds", pn)
		} else if _, num := v.(float64); v != nil && !num {
			t.Errorf("%s: rtt_seconds %v", pn, v)
		}
		hs, _ := p["last_handshake"].(string)
		if ts, err := time.Parse(time.RFC3339, hs); err != nil || time.Since(ts) > 3*time.Minute {
			t.Errorf("%s: last_handshake %q", pn, hs)
		}
		for _, f := range []string{"rx_bytes", "tx_bytes"} {
			if _, ok := p[f].(float64); !ok {
				t.Errorf("%s: %s %v", pn, f, p[f])
			}
		}
	}
}

func checkIPs(t *testing.T, what string, v any) {
	t.Helper()
	ips, _ := v.([]any)
	if len(ips) != 2 {
		t.Errorf("%s: %v, want an IPv4 and an IPv6 address", what, v)
		return
	}
	a, err1 := netip.ParseAddr(fmt.Sprint(ips[0]))
	b, err2 := netip.ParseAddr(fmt.Sprint(ips[1]))
	if err1 != nil || err2 != nil || !a.Is4() || !b.Is6() {
		t.Errorf("%s: %v", what, v)
	}
}

// A neighbour on a home's LAN that routes to the node's overlay address
// does not reach it: only WireGuard does.
func TestOverlayClosedToTheLAN(t *testing.T) {
	w := newWorld(t)
	a := w.anchor("anchor", w.publicHost("anchor"))
	home := w.home("home", lab.HomeOptions{NAT: lab.EIM, Machines: 2})
	n := w.join("node", home.Machines[0], a)
	st := n.waitConnected(60*time.Second, "anchor")
	neighbour := home.Machines[1]
	overlay := st.OverlayIPs[0]
	if _, err := neighbour.Run(w.ctx, "ip", "route", "add", overlay+"/32", "via", home.Machines[0].IPv4.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := neighbour.Run(w.ctx, "ping", "-c", "1", "-W", "2", home.Machines[0].IPv4.String()); err != nil {
		t.Fatalf("the neighbour does not reach the node on the LAN: %v", err)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 3*time.Second)
	defer cancel()
	if c, err := neighbour.DialContext(ctx, "tcp", net.JoinHostPort(overlay, "51821")); err == nil {
		c.Close()
		t.Fatal("the LAN neighbour reached the control port on the overlay address")
	}
	// Through WireGuard the control port is open, on both families.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, n, addr string) (net.Conn, error) { return a.Host.DialContext(ctx, n, addr) },
	}}
	if len(st.OverlayIPs) != 2 {
		t.Fatalf("overlay addresses %v", st.OverlayIPs)
	}
	for _, ip := range st.OverlayIPs {
		url := "http://" + net.JoinHostPort(ip, "51821") + "/v1/membership?have=0"
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("anchor → %s over the overlay: %v", url, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"kind":"node"`) {
			t.Fatalf("anchor → %s: %s %v %.200q", url, resp.Status, err, body)
		}
	}
}
