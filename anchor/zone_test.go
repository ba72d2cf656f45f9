package anchor

import (
	"testing"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
)

// Machines behind one box share a zone from admission on; a report that
// changes nothing signs nothing.
func TestZones(t *testing.T) {
	a, _ := newAnchor(t)
	admit := func(name, home string) {
		t.Helper()
		tok := issue(t, a, name)
		k, _ := key.NewPrivate()
		if _, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k.Public(), HomeReport: control.HomeReport{Home: home}}, tok.JoinIP); err != nil {
			t.Fatal(err)
		}
	}
	admit("a1", "aaaa")
	admit("a2", "aaaa")
	admit("b", "bbbb")
	zone := func(name string) string {
		n, _ := a.o.Store.Current().Find(name)
		return n.Zone
	}
	if zone("a1") != "a1" || zone("a2") != "a1" || zone("b") != "b" {
		t.Fatalf("zones a1 %q a2 %q b %q, want a1 a1 b", zone("a1"), zone("a2"), zone("b"))
	}
	entries := len(a.o.Store.Set().Entries)
	if _, err := a.SetHome("b", control.HomeReport{Home: "bbbb"}); err != nil {
		t.Fatal(err)
	}
	if n := len(a.o.Store.Set().Entries); n != entries {
		t.Errorf("an unchanged report signed %d entries", n-entries)
	}
	// b's owner names its zone; then b moves in with the a machines.
	if n, err := a.SetHome("b", control.HomeReport{Home: "bbbb", Zone: "flat"}); err != nil || n.Zone != "flat" || !n.ZoneFixed || n.Revision != 1 {
		t.Fatalf("override: %+v %v", n, err)
	}
	if n, err := a.SetHome("b", control.HomeReport{Home: "aaaa"}); err != nil || n.Zone != "a1" || n.ZoneFixed {
		t.Fatalf("moved: %+v %v", n, err)
	}
	if _, err := a.SetHome("nobody", control.HomeReport{}); err == nil {
		t.Error("a report for a non-member accepted")
	}
}
