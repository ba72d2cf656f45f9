package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// Debian's coturn serves as an extra TURN server (--turn, --turn-secret):
// it accepts the nodes' TURN REST credentials and gives them relays.
func TestCoturnAsExtraServer(t *testing.T) {
	if _, err := exec.LookPath("turnserver"); err != nil {
		t.Fatal("coturn not installed (Debian package coturn; make deps installs it)")
	}
	w := newWorld(t)
	a := w.anchor("anchor", w.publicHost("anchor"))
	ct := w.publicHost("coturn")
	const secret = "lab-secret"
	logPath := filepath.Join(w.dir, "coturn.log")
	ip := ct.IPv4.String()
	if _, err := ct.Start(w.ctx, logPath, "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint",
		"--listening-ip="+ip, "--relay-ip="+ip, "--listening-port=3478", "--min-port=50000", "--max-port=50999",
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=lab", "--log-file=stdout", "--simple-log", "--verbose"); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--turn", "turn:" + ip + ":3478?transport=udp", "--turn-secret", secret}
	h1 := w.home("home-1", lab.HomeOptions{NAT: lab.Symmetric})
	h2 := w.home("home-2", lab.HomeOptions{NAT: lab.Symmetric})
	n1 := w.join("home-1", h1.Machines[0], a, flags...)
	n2 := w.join("home-2", h2.Machines[0], a, flags...)
	n1.waitPath(60*time.Second, "home-2", "relay")
	st, _, _ := n2.status()
	if err := n1.ping(st.OverlayIPs[0], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- coturn log\n%s", b)
		}
	})
	eventually(t, 10*time.Second, func() error {
		b, _ := os.ReadFile(logPath)
		if !strings.Contains(string(b), "ALLOCATE processed, success") {
			return os.ErrNotExist
		}
		return nil
	})
	b, _ := os.ReadFile(logPath)
	for _, name := range []string{"home-1", "home-2"} {
		if !strings.Contains(string(b), ":"+name) {
			t.Errorf("coturn never saw %s's credentials", name)
		}
	}
}
