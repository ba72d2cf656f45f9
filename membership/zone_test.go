package membership

import (
	"testing"
	"time"
)

func TestChooseZone(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	node := func(name string, joined int, home, zone string) Node {
		return Node{Name: name, Joined: t0.Add(time.Duration(joined) * time.Hour), Home: home, Zone: zone}
	}
	a1 := node("a1", 1, "lan-a", "a1")
	a2 := node("a2", 2, "lan-a", "a1")
	b := node("b", 3, "lan-b", "b")
	members := []Node{b, a2, a1}
	for _, c := range []struct {
		name           string
		n              Node
		home, override string
		want           string
		fixed          bool
	}{
		{"new machine behind a known box joins that home", node("a3", 4, "", ""), "lan-a", "", "a1", false},
		{"new machine behind a new box is a new home", node("c", 4, "", ""), "lan-c", "", "c", false},
		{"no fingerprint: a new home", node("c", 4, "", ""), "", "", "c", false},
		{"the owner's zone wins", node("a3", 4, "", ""), "lan-a", "flat", "flat", true},
		{"restart, same LAN: same zone", b, "lan-b", "", "b", false},
		{"no fingerprint this time: the zone stays", b, "", "", "b", false},
		{"a home alone behind a new box keeps its zone", b, "lan-b2", "", "b", false},
		{"a machine that moved out of a shared home gets its own", a2, "lan-z", "", "a2", false},
		{"a machine that moved into another home joins it", a2, "lan-b", "", "b", false},
		{"an override dropped: found again from the LAN", Node{Name: "a3", Zone: "flat", ZoneFixed: true}, "lan-a", "", "a1", false},
		{"a name taken as a zone gets a suffix", node("a1", 9, "", ""), "lan-q", "", "a1-2", false},
	} {
		ms := append([]Node{c.n}, members...)
		if c.n.Name == "a1" && c.n.Joined.After(t0.Add(5*time.Hour)) {
			ms = []Node{c.n, node("old", 0, "lan-a", "a1")} // another member holds zone a1
		}
		zone, fixed := ChooseZone(ms, c.n, c.home, c.override)
		if zone != c.want || fixed != c.fixed {
			t.Errorf("%s: zone %q fixed %v, want %q %v", c.name, zone, fixed, c.want, c.fixed)
		}
	}
}
