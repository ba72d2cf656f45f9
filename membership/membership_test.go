package membership

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
)

func testCluster(t testing.TB, name string) (Cluster, SigningKey) {
	t.Helper()
	c, sk, err := NewCluster(name, Networks{})
	if err != nil {
		t.Fatal(err)
	}
	return c, sk
}

func testToken(t testing.TB, c Cluster, sk SigningKey, expires time.Time) (Token, string) {
	t.Helper()
	jk, _ := key.NewPrivate()
	ak, _ := key.NewPrivate()
	id, jid, _ := NewTokenID()
	tok := Token{
		ID: id, Cluster: c.Name, ClusterKey: c.PublicKey, Name: "home-a", Expires: expires,
		JoinKey: jk, JoinIP: c.Networks.JoinAddr(jid),
		Anchors: []Anchor{{Name: "anchor", Endpoint: "203.0.113.1:51820", PublicKey: ak.Public(), OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.1")}}},
	}
	s, err := tok.Encode(sk.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tok, s
}

func TestNetworksPlan(t *testing.T) {
	c, _ := testCluster(t, "demo")
	n := c.Networks
	if n.OverlayV4 != DefaultOverlayV4 || n.OverlayV6.Bits() != 64 || n.PodsV6.Bits() != 56 || !n.OverlayV6.Addr().Is6() {
		t.Fatalf("defaults: %+v", n)
	}
	ips, pods, err := n.Node(3)
	if err != nil {
		t.Fatal(err)
	}
	if ips[0].String() != "10.77.0.3" || pods[0].String() != "10.78.3.0/24" {
		t.Fatalf("node 3: %v %v", ips, pods)
	}
	if !n.OverlayV6.Contains(ips[1]) || !n.PodsV6.Contains(pods[1].Addr()) || pods[1].Bits() != 64 {
		t.Fatalf("node 3 v6: %v %v", ips, pods)
	}
	if _, _, err := n.Node(0); err == nil {
		t.Fatal("index 0 accepted")
	}
	if n.MaxNodes() != 254 {
		t.Fatalf("max nodes %d", n.MaxNodes())
	}
	if j := n.JoinAddr(7); !n.OverlayV6.Contains(j) || j == ips[1] {
		t.Fatalf("join addr %v", j)
	}
	bad := n
	bad.PodsV4 = netip.MustParsePrefix("10.77.0.0/16")
	if bad.Validate() == nil {
		t.Fatal("overlapping plan accepted")
	}
}

func TestTokenRoundTrip(t *testing.T) {
	c, sk := testCluster(t, "demo")
	want, s := testToken(t, c, sk, time.Now().Add(time.Hour))
	got, err := ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.JoinKey != want.JoinKey || got.JoinIP != want.JoinIP || got.Name != "home-a" {
		t.Fatalf("got %+v", got)
	}
	if err := got.Check(c, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestTokenBad(t *testing.T) {
	c, sk := testCluster(t, "demo")
	other, osk := testCluster(t, "other")
	_, good := testToken(t, c, sk, time.Now().Add(time.Hour))
	_, expired := testToken(t, c, sk, time.Now().Add(-time.Minute))
	_, foreign := testToken(t, other, osk, time.Now().Add(time.Hour))

	for name, s := range map[string]string{
		"truncated": good[:len(good)-10],
		"garbage":   TokenPrefix + "not-base64!!.zz",
		"flipped":   good[:20] + string(good[20]^1) + good[21:],
		"empty":     "",
		"no-dot":    TokenPrefix + "abc",
	} {
		if _, err := ParseToken(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseToken("hello"); err == nil || !strings.Contains(err.Error(), "not a hepto join token") {
		t.Errorf("wrong paste: %v", err)
	}
	tok, err := ParseToken(expired)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Check(c, time.Now()); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired: %v", err)
	}
	tok, _ = ParseToken(foreign)
	if err := tok.Check(c, time.Now()); err == nil || !strings.Contains(err.Error(), `cluster "other"`) {
		t.Errorf("foreign: %v", err)
	}
}

func TestMembershipSigned(t *testing.T) {
	c, sk := testCluster(t, "demo")
	k, _ := key.NewPrivate()
	n, err := NewNode(c.Networks, 1, "anchor", k.Public())
	if err != nil {
		t.Fatal(err)
	}
	m := Membership{Cluster: "demo", Version: 1, Nodes: []Node{n}}
	s, err := SignMembership(sk.PrivateKey, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenMembership(s, c)
	if err != nil || got.Version != 1 || got.Nodes[0].Name != "anchor" {
		t.Fatalf("open: %+v %v", got, err)
	}
	tampered := s
	tampered.Payload = []byte(strings.Replace(string(s.Payload), `"version":1`, `"version":9`, 1))
	if _, err := OpenMembership(tampered, c); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	other, _ := testCluster(t, "other")
	if _, err := OpenMembership(s, other); err == nil {
		t.Fatal("other cluster's key accepted")
	}
	// A record that breaks the address plan is refused even when signed.
	n.OverlayIPs[0] = netip.MustParseAddr("10.77.0.9")
	s, _ = SignMembership(sk.PrivateKey, Membership{Cluster: "demo", Version: 2, Nodes: []Node{n}})
	if _, err := OpenMembership(s, c); err == nil {
		t.Fatal("record outside the plan accepted")
	}
	// A token is never taken for a membership.
	_, ts := testToken(t, c, sk, time.Now().Add(time.Hour))
	tok, _ := ParseToken(ts)
	st, _ := Sign(sk.PrivateKey, KindToken, tok)
	st.Kind = KindMembership
	if _, err := OpenMembership(st, c); err == nil {
		t.Fatal("token accepted as membership")
	}
}
