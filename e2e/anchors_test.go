package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// TestSeveralAnchors: a second anchor joins with an --anchor token and
// admits nodes from its own half of the address plan; a token works at
// either anchor, once; when the relay anchor goes for good, a relayed pair
// carries on through the other within 10 s.
func TestSeveralAnchors(t *testing.T) {
	w := newWorld(t)
	a1 := w.anchor("anchor", w.publicHost("anchor"))
	a2 := w.wrap(w.c.JoinAnchor("anchor2", w.publicHost("anchor2"), a1.Node))
	a2.waitConnected(60*time.Second, "anchor")
	st2, _, err := a2.status()
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Anchor {
		t.Fatal("anchor2 does not say it is an anchor")
	}

	he := w.home("home-eim", lab.HomeOptions{NAT: lab.EIM})
	hs := w.home("home-sym", lab.HomeOptions{NAT: lab.Symmetric})
	ne := w.join("home-eim", he.Machines[0], a1)
	ns := w.join("home-sym", hs.Machines[0], a2) // admitted by anchor2
	stS := ns.waitConnected(60*time.Second, "anchor", "anchor2", "home-eim")
	if ip := stS.OverlayIPs[0]; !strings.HasPrefix(ip, "10.77.0.") || ip < "10.77.0.128" {
		t.Errorf("anchor2 admitted home-sym at %s, outside its half of the plan", ip)
	}
	ne.waitConnected(60*time.Second, "anchor", "anchor2", "home-sym")
	for _, n := range []*node{a1, a2} {
		n.waitConnected(60*time.Second, "home-eim", "home-sym")
	}

	// A token of anchor1, used at anchor2 (anchor1 stopped), works once.
	tok := a1.token("home-late")
	time.Sleep(2 * time.Second) // the anchors share their books at once; give it a moment
	if code := a1.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("anchor exit code %d", code)
	}
	hl := w.home("home-late", lab.HomeOptions{NAT: lab.EIM, Machines: 2})
	late := w.wrap(w.c.JoinWith("home-late", hl.Machines[0], tok))
	late.waitConnected(60*time.Second, "anchor2")
	twice := w.c.Node("home-twice", hl.Machines[1])
	if out, err := twice.Hepto("run", "--join", tok, "--kubernetes=false", "--cni-conf-dir", twice.CNI); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("the token's second use: %q %v", out, err)
	}
	a1.start()
	a1.waitConnected(60*time.Second, "anchor2", "home-eim", "home-sym", "home-late")

	// The anchor that carries the relayed pair (its TURN server, or its
	// forwarding) goes for good, while home-eim pings home-sym. Which
	// one: the one whose TURN server relays bytes while they ping.
	p := ns.waitPath(60*time.Second, "home-eim", "relay")
	before := map[*node]float64{a1: turnRelayed(t, a1), a2: turnRelayed(t, a2)}
	ne.Host.Run(w.ctx, "ping", "-q", "-c", "20", "-i", "0.1", stS.OverlayIPs[0])
	var carrier *node
	for _, a := range []*node{a1, a2} {
		if grew := turnRelayed(t, a) - before[a]; grew > 20*84 {
			carrier = a
		}
	}
	if carrier == nil {
		carrier = map[string]*node{"anchor": a1, "anchor2": a2}[p.Via]
	}
	if carrier == nil {
		t.Fatalf("home-sym → home-eim relayed by no anchor: %+v", p)
	}
	t.Logf("home-sym → home-eim relayed via %s, endpoint %s: stopping %s", p.Via, p.Endpoint, carrier.Name)
	ping := ne.Host.Command(w.ctx, "ping", "-D", "-i", "0.2", "-W", "1", stS.OverlayIPs[0])
	var out strings.Builder
	ping.Stdout = &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	killed := time.Now()
	carrier.stop(syscall.SIGKILL)
	time.Sleep(15 * time.Second)
	ping.Process.Signal(syscall.SIGINT)
	ping.Wait()
	gap := longestGap(t, out.String(), killed)
	t.Logf("relay anchor killed: longest gap in home-eim → home-sym replies %s", gap.Round(10*time.Millisecond))
	if gap > 10*time.Second {
		t.Fatalf("relayed pair back after %s, want ≤ 10 s\n%s", gap, out.String())
	}
}

// longestGap reads `ping -D` output: the longest time without a reply,
// from since to the end.
func longestGap(t *testing.T, out string, since time.Time) time.Duration {
	t.Helper()
	prev := since
	var gap time.Duration
	n := 0
	for _, line := range strings.Split(out, "\n") {
		var sec, usec int64
		if !strings.Contains(line, "bytes from") {
			continue
		}
		if _, err := fmt.Sscanf(line, "[%d.%d]", &sec, &usec); err != nil {
			continue
		}
		at := time.Unix(sec, usec*1000)
		if at.Before(since) {
			continue
		}
		n++
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	if n == 0 {
		t.Fatalf("no reply after %s:\n%s", since.Format(time.TimeOnly), out)
	}
	return gap
}

// turnRelayed is the bytes an anchor's TURN server relayed, from its
// metrics (on its loopback).
func turnRelayed(t *testing.T, n *node) float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return n.Host.DialContext(ctx, network, addr)
		},
	}}
	resp, err := client.Get("http://127.0.0.1:9469/metrics")
	if err != nil {
		t.Fatalf("%s metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "hepto_turn_relayed_bytes_total{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			sum += v
		}
	}
	return sum
}
