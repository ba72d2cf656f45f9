package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// look is one look at a peer: what status said, then whether a ping
// through the overlay went through (the truth).
type look struct {
	asked, pinged    time.Time // when status was asked, when the ping left
	connected, truth bool
}

// timeline samples home's view of peer until done says enough, or timeout.
func timeline(t *testing.T, n *node, peerName, ip string, timeout time.Duration, done func([]look) bool) []look {
	t.Helper()
	var ss []look
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		asked := time.Now()
		st, _, err := n.status()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		p, ok := peer(st, peerName)
		if !ok {
			t.Fatalf("no peer %s in status", peerName)
		}
		pinged := time.Now()
		_, perr := n.Host.Run(n.w.ctx, "ping", "-c", "1", "-W", "1", ip)
		ss = append(ss, look{asked: asked, pinged: pinged, connected: p.Connected, truth: perr == nil})
		if done(ss) {
			return ss
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("after %s: no stable state:\n%s", timeout, show(ss))
	return nil
}

// settled: the last k samples agree with each other and with want.
func settled(want bool, k int) func([]look) bool {
	return func(ss []look) bool {
		if len(ss) < k {
			return false
		}
		for _, s := range ss[len(ss)-k:] {
			if s.connected != want || s.truth != want {
				return false
			}
		}
		return true
	}
}

// since is when the truth (or, with status, what status said) last became
// want and stayed so.
func since(ss []look, want, status bool) time.Time {
	at := time.Time{}
	for _, s := range ss {
		v, t := s.truth, s.pinged
		if status {
			v, t = s.connected, s.asked
		}
		switch {
		case v != want:
			at = time.Time{}
		case at.IsZero():
			at = t
		}
	}
	return at
}

func show(ss []look) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%s connected=%v, %s ping=%v\n", s.asked.Format("15:04:05.000"), s.connected, s.pinged.Format("15:04:05.000"), s.truth)
	}
	return b.String()
}

// Status says a peer is connected only when it answers over the path
// shown, and follows each change within 5 s: checked against a ping taken
// right after each status. A home restarted while the anchor is down comes
// back on its former direct path, or not yet: status must say which,
// honestly, until the anchor is back and the ping goes through.
func TestStatusTellsTheTruth(t *testing.T) {
	w := newWorld(t)
	h := w.twoHomes("home-a", lab.EIM, "home-b", lab.EIM)
	a, na, nb := h.anchor, h.a, h.b
	stA := na.waitConnected(60*time.Second, "anchor", "home-b")
	nb.waitConnected(60*time.Second, "anchor", "home-a")
	ipA := stA.OverlayIPs[0]
	const slack = 5 * time.Second

	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("anchor exit code %d", code)
	}
	if code := nb.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("home-b exit code %d", code)
	}
	nb.start()
	nb.waitSocket()
	down := timeline(t, nb, "home-a", ipA, 10*time.Second, func(ss []look) bool { return len(ss) >= 6 })
	for _, s := range down {
		if s.connected && !s.truth {
			t.Fatalf("status said home-a connected at %s, the ping right after failed:\n%s", s.asked.Format("15:04:05.000"), show(down))
		}
	}
	if since(down, true, false).IsZero() {
		t.Log("anchor down: the pair has no path yet")
	} else {
		t.Log("anchor down: the pair came back on its former direct path")
	}

	a.start()
	up := timeline(t, nb, "home-a", ipA, 120*time.Second, settled(true, 4))
	truth, said := since(up, true, false), since(up, true, true)
	t.Logf("up: ping from %s, status from %s", truth.Format("15:04:05.000"), said.Format("15:04:05.000"))
	for _, s := range up {
		if s.connected && s.asked.Before(truth) && !s.truth {
			t.Errorf("status said connected at %s, before the ping went through (%s):\n%s", s.asked.Format("15:04:05.000"), truth.Format("15:04:05.000"), show(up))
			break
		}
	}
	if said.Sub(truth) > slack {
		t.Errorf("status said connected %s after the ping went through:\n%s", said.Sub(truth), show(up))
	}

	if code := na.stop(syscall.SIGKILL); code == 0 {
		t.Log("home-a exited 0 on SIGKILL")
	}
	lost := timeline(t, nb, "home-a", ipA, 60*time.Second, settled(false, 4))
	truth, said = since(lost, false, false), since(lost, false, true)
	t.Logf("down: ping fails from %s, status from %s", truth.Format("15:04:05.000"), said.Format("15:04:05.000"))
	if said.Sub(truth) > slack {
		t.Errorf("status said disconnected %s after the ping stopped going through:\n%s", said.Sub(truth), show(lost))
	}
}

// A part that cannot start stops the daemon at once, with one line naming
// it and a non-zero exit; the TUN device goes with it.
func TestStartFailureExits(t *testing.T) {
	w := newWorld(t)
	h := w.publicHost("anchor")
	ln, err := h.Listen("tcp", "127.0.0.1:9469")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := w.node("anchor", h)
	if _, err := n.Hepto("init", "--cluster", "demo", "--name", "anchor", "--endpoint", h.IPv4.String()+":51820"); err != nil {
		t.Fatal(err)
	}
	n.start("--metrics", "127.0.0.1:9469")
	select {
	case <-n.Proc.Done():
	case <-time.After(10 * time.Second):
		n.stop(syscall.SIGKILL)
		t.Fatal("the daemon kept running with its metrics port taken")
	}
	code, _ := n.Proc.Wait()
	if code == 0 {
		t.Fatal("exit code 0")
	}
	// The error is the one line main prints; at debug level, the WireGuard
	// device's workers may still log their stop after it.
	var errLines []string
	for _, l := range strings.Split(n.LastLines(20), "\n") {
		if strings.HasPrefix(l, "hepto: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.HasPrefix(errLines[0], "hepto: metrics: ") || !strings.Contains(errLines[0], "address already in use") {
		t.Errorf("error lines %q, want one naming the metrics service's failure", errLines)
	}
	if out, err := h.Run(w.ctx, "ip", "link", "show", "hepto0"); err == nil {
		t.Errorf("hepto0 left behind: %s", out)
	}
}
