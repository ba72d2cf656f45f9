package membership

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// The Services' ranges: part of a new plan, defaulted for a cluster made
// before them, and refused when they overlap the others or are too large.
func TestServiceRanges(t *testing.T) {
	ula := netip.MustParsePrefix("fd12:3456:789a::/48")
	n := DefaultNetworks(ula).withDefaults()
	want := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd12:3456:789a:300::/112")}
	if got := n.Services(); got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("services %v, want %v", got, want)
	}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	// A plan of an earlier version, without the fields.
	b, _ := json.Marshal(n)
	old := strings.NewReplacer(`,"services_v4":"10.96.0.0/16"`, "", `,"services_v6":"fd12:3456:789a:300::/112"`, "").Replace(string(b))
	if old == string(b) {
		t.Fatalf("the plan's JSON has no services fields: %s", b)
	}
	var o Networks
	if err := json.Unmarshal([]byte(old), &o); err != nil {
		t.Fatal(err)
	}
	if got := o.Services(); got[0] != want[0] || got[1] != want[1] {
		t.Errorf("an earlier plan's services %v, want the defaults %v", got, want)
	}
	for _, c := range []struct {
		name   string
		v4, v6 string
	}{
		{"IPv4 over the pods", "10.78.0.0/16", ""},
		{"IPv6 over the overlay", "", "fd12:3456:789a::/112"},
		{"IPv4 too large", "10.0.0.0/8", ""},
		{"IPv6 too large", "", "fd12:3456:789a:300::/64"},
		{"families swapped", "", "10.96.0.0/16"},
	} {
		bad := n
		if c.v4 != "" {
			bad.ServicesV4 = netip.MustParsePrefix(c.v4)
		}
		if c.v6 != "" {
			bad.ServicesV6 = netip.MustParsePrefix(c.v6)
		}
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
