package home

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

func TestFingerprint(t *testing.T) {
	gw := netip.MustParseAddr("192.168.1.1")
	mac1, _ := net.ParseMAC("02:00:00:00:00:01")
	mac2, _ := net.ParseMAC("02:00:00:00:00:02")
	a := Fingerprint("c", gw, mac1)
	if len(a) != 16 {
		t.Fatalf("fingerprint %q: want 16 hex digits", a)
	}
	if a != Fingerprint("c", netip.MustParseAddr("::ffff:192.168.1.1"), mac1) {
		t.Error("an IPv4-mapped gateway address names another home")
	}
	for _, other := range []string{Fingerprint("c", gw, mac2), Fingerprint("d", gw, mac1), Fingerprint("c", netip.MustParseAddr("192.168.0.1"), mac1)} {
		if other == a {
			t.Errorf("two homes share the fingerprint %s", a)
		}
	}
}

// Find in a network namespace of its own: a LAN interface, a default
// route through a gateway whose link-layer address is known.
func TestFind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a network namespace")
	}
	name := fmt.Sprintf("hepto-home-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	in := func(args ...string) { ip(append([]string{"-n", name}, args...)...) }
	in("link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
	in("link", "set", "lan0", "up")
	in("link", "set", "lan1", "up")
	in("addr", "add", "192.168.7.2/24", "dev", "lan0")
	find := func() (string, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return "", err
		}
		defer orig.Close()
		ns, err := netns.GetFromName(name)
		if err != nil {
			return "", err
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			return "", err
		}
		defer netns.Set(orig)
		return Find("c")
	}
	if _, err := find(); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("no default route: %v, want ErrNoGateway", err)
	}
	in("route", "add", "default", "via", "192.168.7.1", "dev", "lan0")
	if _, err := find(); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("a gateway never spoken to: %v, want ErrNoGateway", err)
	}
	in("neigh", "replace", "192.168.7.1", "lladdr", "02:00:00:00:07:01", "dev", "lan0", "nud", "permanent")
	got, err := find()
	mac, _ := net.ParseMAC("02:00:00:00:07:01")
	if want := Fingerprint("c", netip.MustParseAddr("192.168.7.1"), mac); err != nil || got != want {
		t.Fatalf("Find: %q %v, want %q", got, err, want)
	}
}
