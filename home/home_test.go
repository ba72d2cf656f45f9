package home

import (
	"net"
	"net/netip"
	"testing"
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
