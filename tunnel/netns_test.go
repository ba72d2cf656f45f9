package tunnel

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

var execCommand = exec.Command

// needRoot skips without root; as root, what the test needs must be there.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped without root: creates network namespaces and TUN interfaces")
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: creates network namespaces and TUN interfaces")
	}
	needTool(t, "ip")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Fatal("no /dev/net/tun: ", err)
	}
}

// needTool fails the test when a command is missing (as root: make deps
// installs it), and skips it without root.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("skipped without root, and %s is missing", name)
		}
		t.Fatalf("%s is missing (make deps installs it): %v", name, err)
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execCommand(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS creates a network namespace with a unique name and its loopback up,
// deleted when the test ends.
func newNS(t *testing.T, id, suffix string) string {
	t.Helper()
	name := "ht-" + id + "-" + suffix
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := execCommand("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v %s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func labID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pairLab is two namespaces joined by a veth: a is 198.51.100.1, b is .2.
type pairLab struct {
	a, b       string
	aIP, bIP   string
	aUnderlay6 string
}

func newPairLab(t *testing.T) pairLab {
	t.Helper()
	needRoot(t)
	id := labID()
	l := pairLab{aIP: "198.51.100.1", bIP: "198.51.100.2"}
	// Namespaces are registered first so that their deletion runs last,
	// after the helper processes inside them are gone.
	l.a = newNS(t, id, "a")
	l.b = newNS(t, id, "b")
	run(t, "ip", "-n", l.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", l.b)
	run(t, "ip", "-n", l.a, "addr", "add", l.aIP+"/24", "dev", "veth0")
	run(t, "ip", "-n", l.b, "addr", "add", l.bIP+"/24", "dev", "veth0")
	run(t, "ip", "-n", l.a, "link", "set", "veth0", "up")
	run(t, "ip", "-n", l.b, "link", "set", "veth0", "up")
	return l
}
