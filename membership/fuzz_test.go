package membership

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
)

// fixedCluster has a fixed key, so that the corpus under testdata/fuzz
// holds tokens and memberships it signed.
func fixedCluster(t testing.TB) (Cluster, SigningKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	nets := DefaultNetworks(netip.MustParsePrefix("fd12:3456:789a::/48")).withDefaults()
	if err := nets.Validate(); err != nil {
		t.Fatal(err)
	}
	return Cluster{Name: "demo", Domain: "demo.internal", PublicKey: priv.Public().(ed25519.PublicKey), Networks: nets},
		SigningKey{PrivateKey: priv}
}

func fixedKey(b byte) key.Private {
	var k key.Private
	for i := range k {
		k[i] = b
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

// fixedTokens are the tokens the fixed cluster signed, in text form.
func fixedTokens(t testing.TB) []string {
	c, sk := fixedCluster(t)
	base := Token{ID: "0011223344556677", Cluster: "demo", ClusterKey: c.PublicKey, Name: "home-a",
		Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), JoinKey: fixedKey(1), JoinIP: c.Networks.JoinAddr(42),
		Anchors: []Anchor{{Name: "anchor", Endpoint: "203.0.113.1:51820", PublicKey: fixedKey(2).Public(),
			OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.1")}}}}
	expired := base
	expired.Name, expired.Expires = "home-b", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []string
	for _, tok := range []Token{base, expired} {
		s, err := tok.Encode(sk.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// fixedMemberships are memberships the fixed cluster signed.
func fixedMemberships(t testing.TB) []Signed {
	c, sk := fixedCluster(t)
	var nodes []Node
	for i, name := range []string{"anchor", "home-a"} {
		n, err := NewNode(c.Networks, i+1, name, fixedKey(byte(10+i)).Public())
		if err != nil {
			t.Fatal(err)
		}
		n.Joined = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		nodes = append(nodes, n)
	}
	var out []Signed
	for _, m := range []Membership{{Cluster: "demo", Version: 1}, {Cluster: "demo", Version: 7, Nodes: nodes}} {
		s, err := SignMembership(sk.PrivateKey, m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// tokenParts decodes a token's payload and signature, independently of ParseToken.
func tokenParts(s string) (payload, sig []byte, ok bool) {
	p, g, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(s), TokenPrefix), ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	sig, err2 := base64.RawURLEncoding.DecodeString(g)
	return payload, sig, ok && err1 == nil && err2 == nil
}

func encodeToken(payload, sig []byte) string {
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Changing any one byte of a signed token makes it unparseable.
func TestTokenForgeryRefused(t *testing.T) {
	for _, s := range fixedTokens(t) {
		if _, err := ParseToken(s); err != nil {
			t.Fatalf("signed token refused: %v", err)
		}
		payload, sig, ok := tokenParts(s)
		if !ok {
			t.Fatal("cannot split the token")
		}
		for _, part := range [][]byte{payload, sig} {
			for i := range part {
				for _, x := range []byte{0x01, 0x80} {
					part[i] ^= x
					forged := encodeToken(payload, sig)
					part[i] ^= x
					if tok, err := ParseToken(forged); err == nil {
						t.Fatalf("token with byte %d changed accepted: %+v", i, tok)
					}
				}
			}
		}
	}
}

// Changing any one byte of a signed membership, or its kind, makes it refused.
func TestMembershipForgeryRefused(t *testing.T) {
	c, _ := fixedCluster(t)
	for _, s := range fixedMemberships(t) {
		if _, err := OpenMembership(s, c); err != nil {
			t.Fatalf("signed membership refused: %v", err)
		}
		for _, part := range [][]byte{s.Payload, s.Sig} {
			for i := range part {
				part[i] ^= 0x01
				_, err := OpenMembership(s, c)
				part[i] ^= 0x01
				if err == nil {
					t.Fatalf("membership with byte %d changed accepted", i)
				}
			}
		}
		for _, kind := range []string{KindNode, KindToken, KindCluster, "Membership", ""} {
			f := s
			f.Kind = kind
			if _, err := OpenMembership(f, c); err == nil {
				t.Fatalf("membership signed as %q accepted", kind)
			}
		}
	}
}

// FuzzParseToken: only tokens the cluster signed parse, and a parsed token
// encodes to one that parses to the same.
func FuzzParseToken(f *testing.F) {
	c, sk := fixedCluster(f)
	signed := map[string]bool{}
	for _, s := range fixedTokens(f) {
		payload, sig, _ := tokenParts(s)
		signed[string(payload)+"\x00"+string(sig)] = true
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	f.Add(TokenPrefix + "e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if !tok.ClusterKey.Equal(c.PublicKey) {
			// Signed by the key it names, but not this cluster's.
			if tok.Check(c, now) == nil {
				t.Fatalf("token of another key passes the cluster's check: %+v", tok)
			}
			return
		}
		payload, sig, ok := tokenParts(s)
		if !ok || !signed[string(payload)+"\x00"+string(sig)] {
			t.Fatalf("token the cluster never signed accepted: %q", s)
		}
		again, err := tok.Encode(sk.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		tok2, err := ParseToken(again)
		if err != nil {
			t.Fatalf("re-encoded token refused: %v", err)
		}
		if a, b := mustJSON(t, tok), mustJSON(t, tok2); !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the token:\n%s\n%s", a, b)
		}
		if err := tok.Check(c, now); err != nil && !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("signed token of this cluster fails its check: %v", err)
		}
	})
}

// FuzzOpenMembership: a membership as it comes off the wire opens only if
// the cluster signed it, and opens the same after a round trip.
func FuzzOpenMembership(f *testing.F) {
	c, sk := fixedCluster(f)
	signed := map[string]bool{}
	for _, s := range fixedMemberships(f) {
		signed[string(s.Payload)+"\x00"+string(s.Sig)] = true
		f.Add(mustJSON(f, s))
	}
	f.Add([]byte(`{"kind":"membership","payload":"e30=","sig":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Signed
		if json.Unmarshal(b, &s) != nil {
			return
		}
		m, err := OpenMembership(s, c)
		if err != nil {
			return
		}
		if s.Kind != KindMembership || !signed[string(s.Payload)+"\x00"+string(s.Sig)] {
			t.Fatalf("membership the cluster never signed accepted: %s", b)
		}
		var s2 Signed
		if err := json.Unmarshal(mustJSON(t, s), &s2); err != nil {
			t.Fatal(err)
		}
		m2, err := OpenMembership(s2, c)
		if err != nil {
			t.Fatalf("re-encoded membership refused: %v", err)
		}
		resigned, err := SignMembership(sk.PrivateKey, m)
		if err != nil {
			t.Fatal(err)
		}
		m3, err := OpenMembership(resigned, c)
		if err != nil {
			t.Fatalf("re-signed membership refused: %v", err)
		}
		if a, b2, b3 := mustJSON(t, m), mustJSON(t, m2), mustJSON(t, m3); !bytes.Equal(a, b2) || !bytes.Equal(a, b3) {
			t.Fatalf("round trip changed the membership:\n%s\n%s\n%s", a, b2, b3)
		}
	})
}

// FuzzOpenSet: a set as it comes off the wire opens only if each of its
// node records and removals was signed by the cluster, and merging it with
// itself or with the fixed sets never fails nor depends on the order.
func FuzzOpenSet(f *testing.F) {
	c, sk := fixedCluster(f)
	signed := map[string]bool{}
	var fixed []Signed
	for _, s := range fixedMemberships(f) {
		m, _ := OpenMembership(s, c)
		for _, n := range m.Nodes {
			e, err := Sign(sk.PrivateKey, KindNode, n)
			if err != nil {
				f.Fatal(err)
			}
			fixed = append(fixed, e)
		}
		if len(m.Nodes) > 1 {
			t, err := SignTombstone(sk.PrivateKey, m.Nodes[1], "anchor", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
			if err != nil {
				f.Fatal(err)
			}
			fixed = append(fixed, t)
		}
		fixed = append(fixed, s)
	}
	for _, e := range fixed {
		signed[string(e.Payload)+"\x00"+string(e.Sig)] = true
		f.Add(mustJSON(f, NewSet(e)))
	}
	f.Add(mustJSON(f, NewSet(fixed...)))
	f.Add([]byte(`{"entries":[{"kind":"tombstone","payload":"e30=","sig":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Set
		if json.Unmarshal(b, &s) != nil {
			return
		}
		m, err := Open(s, c)
		if err != nil {
			return
		}
		for _, e := range s.Entries {
			known := e.Kind == KindNode || e.Kind == KindTombstone || e.Kind == KindMembership
			if known && !signed[string(e.Payload)+"\x00"+string(e.Sig)] {
				t.Fatalf("entry the cluster never signed accepted: %s", b)
			}
		}
		m1, err1 := Open(Merge(s, NewSet(fixed...)), c)
		m2, err2 := Open(Merge(NewSet(fixed...), s, s), c)
		if err1 != nil || err2 != nil {
			t.Fatalf("merge of valid sets failed: %v %v", err1, err2)
		}
		if a, b := mustJSON(t, m1), mustJSON(t, m2); !bytes.Equal(a, b) {
			t.Fatalf("merge depends on the order:\n%s\n%s", a, b)
		}
		if len(m.Nodes) > len(s.Entries)*2+2 {
			t.Fatalf("more nodes than entries: %d", len(m.Nodes))
		}
	})
}
