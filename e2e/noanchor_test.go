package e2e

import (
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// TestWithoutAnchor: with the only anchor down, a direct pair keeps
// working, and a home that restarts meanwhile (on the UDP port it had)
// reaches its former direct peer again, with no anchor to signal through.
func TestWithoutAnchor(t *testing.T) {
	w := newWorld(t)
	h := w.twoHomes("home-a", lab.EIM, "home-b", lab.EIM)
	a, na, nb := h.anchor, h.a, h.b
	na.waitPath(60*time.Second, "home-b", "direct")
	nb.waitPath(60*time.Second, "home-a", "direct")
	stA, _, _ := na.status()
	before, _, err := nb.status()
	if err != nil {
		t.Fatal(err)
	}
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("anchor exit code %d", code)
	}

	// Pings, 5 a second, with the anchor gone: 30 s, 10 minutes in make
	// chaos.
	count := int(faultTime(30*time.Second, 10*time.Minute) / (200 * time.Millisecond))
	out, _ := na.Host.Run(w.ctx, "ping", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", before.OverlayIPs[0])
	loss := pingLoss(t, out)
	t.Logf("anchor down: home-a → home-b, %.1f %% of %d pings lost", loss, count)
	if loss > 1 {
		t.Fatalf("direct pair lost %.1f %% of its pings without the anchor:\n%s", loss, out)
	}

	// home-b restarts: same port, and home-a again within 60 s. Meanwhile
	// home-a sends to it, finds its path dead and drops it: it must take
	// home-b back from home-b's handshake, as there is no anchor to
	// signal through.
	if code := nb.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("home-b exit code %d", code)
	}
	na.Host.Run(w.ctx, "ping", "-q", "-c", "8", "-i", "1", "-W", "1", before.OverlayIPs[0])
	if p := na.waitPathOnce("home-b"); p.Path == "direct" {
		t.Fatalf("home-a kept its path to home-b while home-b was down: %+v", p)
	}
	nb.start()
	nb.waitSocket()
	start := time.Now()
	eventually(t, 60*time.Second, func() error {
		_, err := nb.Host.Run(w.ctx, "ping", "-c", "1", "-W", "1", stA.OverlayIPs[0])
		return err
	})
	t.Logf("home-b restarted with the anchor down: reached home-a after %s", time.Since(start).Round(100*time.Millisecond))
	after, _, err := nb.status()
	if err != nil {
		t.Fatal(err)
	}
	if after.ListenPort != before.ListenPort {
		t.Errorf("UDP port %d after the restart, %d before", after.ListenPort, before.ListenPort)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := na.Host.Run(w.ctx, "ping", "-c", "1", "-W", "1", after.OverlayIPs[0])
		return err
	})
	if p := nb.waitPathOnce("home-a"); p.Path != "direct" || !p.Connected {
		t.Errorf("home-b → home-a after its restart: %+v", p)
	}
}

var pingLossRE = regexp.MustCompile(`([0-9.]+)% packet loss`)

func pingLoss(t *testing.T, out string) float64 {
	t.Helper()
	m := pingLossRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no loss figure in ping's output:\n%s", out)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
