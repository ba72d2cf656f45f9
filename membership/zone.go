package membership

import (
	"cmp"
	"slices"
	"strconv"
)

// ChooseZone decides node n's zone from what it reports: home, the
// fingerprint of its LAN ("" when it found none), and override, the zone
// its owner gave (hepto run --zone; "" for none). The rules, in order:
//
//  1. an override wins;
//  2. a machine behind the same box as another member joins that member's
//     zone (the earliest to join, so that the choice is stable);
//  3. a node keeps its zone while its LAN is the one it reported before,
//     or when it moved alone (no other member shares its old zone: the
//     whole home got a new box, or moved);
//  4. otherwise it is a new home, named after its first machine.
//
// The zone's name never follows an address: a renumbered home (a new
// public IP, the usual dynamic address) keeps it.
func ChooseZone(members []Node, n Node, home, override string) (zone string, fixed bool) {
	if override != "" {
		return override, true
	}
	others := make([]Node, 0, len(members))
	for _, m := range members {
		if m.Name != n.Name && m.Zone != "" {
			others = append(others, m)
		}
	}
	slices.SortFunc(others, func(a, b Node) int {
		return cmp.Or(a.Joined.Compare(b.Joined), cmp.Compare(a.Name, b.Name))
	})
	if home != "" {
		for _, m := range others {
			if m.Home == home {
				return m.Zone, false
			}
		}
	}
	if n.Zone != "" && !n.ZoneFixed {
		shared := slices.ContainsFunc(others, func(m Node) bool { return m.Zone == n.Zone })
		if home == "" || home == n.Home || !shared {
			return n.Zone, false
		}
	}
	zone = n.Name
	for i := 2; slices.ContainsFunc(others, func(m Node) bool { return m.Zone == zone }); i++ {
		suffix := "-" + strconv.Itoa(i)
		zone = n.Name[:min(len(n.Name), 63-len(suffix))] + suffix
	}
	return zone, false
}
