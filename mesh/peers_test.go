package mesh

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/tunnel"
)

func testMembership(t *testing.T) (membership.Membership, map[string]membership.Node) {
	t.Helper()
	c, _, err := membership.NewCluster("demo", membership.Networks{})
	if err != nil {
		t.Fatal(err)
	}
	m := membership.Membership{Cluster: "demo", Version: 1}
	nodes := map[string]membership.Node{}
	for i, name := range []string{"anchor", "home-a", "home-b", "home-c"} {
		k, _ := key.NewPrivate()
		n, err := membership.NewNode(c.Networks, i+1, name, k.Public())
		if err != nil {
			t.Fatal(err)
		}
		if name == "anchor" {
			n.Roles, n.Endpoint = []string{membership.RoleAnchor}, "203.0.113.1:51820"
		}
		m.Nodes = append(m.Nodes, n)
		nodes[name] = n
	}
	return m, nodes
}

func peerOf(peers []tunnel.Peer, k key.Public) (tunnel.Peer, bool) {
	for _, p := range peers {
		if p.PublicKey == k {
			return p, true
		}
	}
	return tunnel.Peer{}, false
}

func resolveLiteral(ep string) netip.AddrPort { return netip.MustParseAddrPort(ep) }

func TestWantPeers(t *testing.T) {
	m, n := testMembership(t)
	b := netip.MustParseAddrPort("198.51.100.2:40000")
	paths := map[string]nat.Path{"home-b": {Up: true, Remote: b}}
	peers := wantPeers(m, n["home-a"], paths, nil, resolveLiteral)
	if len(peers) != 3 {
		t.Fatalf("home-a has %d peers, want every other node", len(peers))
	}
	anchor, _ := peerOf(peers, n["anchor"].PublicKey)
	if anchor.Endpoint.String() != "203.0.113.1:51820" || anchor.Keepalive != Keepalive {
		t.Errorf("anchor peer %+v", anchor)
	}
	// home-c has no path of its own: its prefixes go to the anchor.
	for _, p := range n["home-c"].Prefixes() {
		if !slices.Contains(anchor.AllowedIPs, p) {
			t.Errorf("home-c's %v not routed through the anchor", p)
		}
	}
	if c, _ := peerOf(peers, n["home-c"].PublicKey); len(c.AllowedIPs) != 0 || c.Endpoint.IsValid() {
		t.Errorf("home-c without a path has %+v", c)
	}
	// home-b has one: its own prefixes, endpoint, and the keepalive on one end only.
	pb, _ := peerOf(peers, n["home-b"].PublicKey)
	if pb.Endpoint != b || !slices.Equal(pb.AllowedIPs, n["home-b"].Prefixes()) {
		t.Errorf("home-b peer %+v", pb)
	}
	for _, p := range n["home-b"].Prefixes() {
		if slices.Contains(anchor.AllowedIPs, p) {
			t.Errorf("home-b's %v still routed through the anchor", p)
		}
	}
	back := wantPeers(m, n["home-b"], map[string]nat.Path{"home-a": {Up: true, Remote: b}}, nil, resolveLiteral)
	pa, _ := peerOf(back, n["home-a"].PublicKey)
	if (pb.Keepalive == 0) == (pa.Keepalive == 0) {
		t.Errorf("keepalives on both ends or neither: %v %v", pb.Keepalive, pa.Keepalive)
	}

	// An anchor peers with every node, on its own link, with no keepalive.
	for _, p := range wantPeers(m, n["anchor"], nil, nil, resolveLiteral) {
		if p.Keepalive != 0 || len(p.AllowedIPs) != 4 {
			t.Errorf("anchor's peer %+v", p)
		}
	}
}

func TestICEPeers(t *testing.T) {
	m, n := testMembership(t)
	ps := icePeers(m, n["home-a"])
	if len(ps) != 2 {
		t.Fatalf("ICE with %v, want the two other homes", ps)
	}
	for _, p := range ps {
		other := icePeers(m, n[p.Name])
		for _, q := range other {
			if q.Name == "home-a" && q.Controlling == p.Controlling {
				t.Errorf("%s and home-a both control: %v", p.Name, p.Controlling)
			}
		}
	}
}

func TestRTTPacket(t *testing.T) {
	b := rttPacket(rttProbe, 7, 1234*time.Microsecond)
	kind, seq, prev, ok := parseRTTPacket(b)
	if !ok || kind != rttProbe || seq != 7 || prev != 1234*time.Microsecond {
		t.Fatalf("round trip: %v %v %v %v", kind, seq, prev, ok)
	}
	for _, bad := range [][]byte{nil, b[:15], append(append([]byte{}, b...), 0), []byte("hRTX" + string(b[4:])), rttPacket(9, 1, 0)} {
		if _, _, _, ok := parseRTTPacket(bad); ok {
			t.Errorf("accepted %x", bad)
		}
	}
}

func TestRTTChanged(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		prev, now time.Duration
		want      bool
	}{{0, ms, true}, {ms, ms + 500*time.Microsecond, false}, {ms, 51 * ms, true}, {51 * ms, ms, true}, {50 * ms, 60 * ms, false}} {
		if got := changed(c.prev, c.now); got != c.want {
			t.Errorf("changed(%v, %v) = %v", c.prev, c.now, got)
		}
	}
}

// TestRelayFailover: with two anchors, the lower index relays; once it is
// down, the other carries the pathless homes' prefixes; with both down,
// the lower again (nothing better to try).
func TestRelayFailover(t *testing.T) {
	m, n := testMembership(t)
	second := n["home-c"]
	second.Roles, second.Endpoint = []string{membership.RoleAnchor}, "203.0.113.4:51820"
	m.Nodes[3] = second
	relayedBy := func(down map[string]bool) string {
		t.Helper()
		peers := wantPeers(m, n["home-a"], nil, down, resolveLiteral)
		var by string
		for _, name := range []string{"anchor", "home-c"} {
			p, _ := peerOf(peers, n[name].PublicKey)
			if slices.Contains(p.AllowedIPs, n["home-b"].PodCIDRs[0]) {
				if by != "" {
					t.Fatalf("two anchors relay: %s and %s", by, name)
				}
				by = name
			}
		}
		return by
	}
	if by := relayedBy(nil); by != "anchor" {
		t.Fatalf("relay %q with both anchors up", by)
	}
	if by := relayedBy(map[string]bool{"anchor": true}); by != "home-c" {
		t.Fatalf("relay %q with the first anchor down", by)
	}
	if by := relayedBy(map[string]bool{"anchor": true, "home-c": true}); by != "anchor" {
		t.Fatalf("relay %q with both down", by)
	}
}

// TestMeasures: one end of each pair measures its RTT, the one that sends
// no keepalives on it: the anchor towards a home, the lesser key between
// homes (peers.go gives the greater one the keepalives).
func TestMeasures(t *testing.T) {
	_, nodes := testMembership(t)
	for a, na := range nodes {
		for b, nb := range nodes {
			if a == b {
				continue
			}
			if measures(na, nb) == measures(nb, na) {
				t.Errorf("%s and %s: both or neither measure", a, b)
			}
			switch {
			case na.IsAnchor() && !nb.IsAnchor():
				if !measures(na, nb) {
					t.Errorf("the anchor does not measure its link to %s", b)
				}
			case !na.IsAnchor() && !nb.IsAnchor():
				if keepalives := nb.PublicKey.Less(na.PublicKey); measures(na, nb) == keepalives {
					t.Errorf("%s → %s: measures %v, sends keepalives %v", a, b, measures(na, nb), keepalives)
				}
			}
		}
	}
}
