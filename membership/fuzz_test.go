package membership

import (
	"encoding/json"
	"testing"
	"time"
)

func FuzzParseToken(f *testing.F) {
	c, sk := testCluster(f, "demo")
	_, s := testToken(f, c, sk, time.Now().Add(time.Hour))
	f.Add(s)
	f.Add(s[:len(s)/2])
	f.Add(TokenPrefix + "e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		// Whatever parses must be complete and re-check cleanly.
		if tok.validate() != nil {
			t.Fatalf("invalid token accepted: %+v", tok)
		}
		_ = tok.Check(c, time.Now())
	})
}

func FuzzOpenMembership(f *testing.F) {
	c, sk := testCluster(f, "demo")
	s, _ := SignMembership(sk.PrivateKey, Membership{Cluster: "demo", Version: 1})
	b, _ := json.Marshal(s)
	f.Add(b)
	f.Add([]byte(`{"kind":"membership","payload":"e30=","sig":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Signed
		if json.Unmarshal(b, &s) != nil {
			return
		}
		if _, err := OpenMembership(s, c); err == nil && s.Kind != KindMembership {
			t.Fatal("wrong kind accepted")
		}
	})
}
