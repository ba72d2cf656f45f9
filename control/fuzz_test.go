package control

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hepto-net/hepto/membership"
)

func TestDecodeJoinRequest(t *testing.T) {
	good := `{"token":"hepto1.x.y","public_key":"` + strings.Repeat("A", 42) + `E="}`
	if _, err := DecodeJoinRequest(strings.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "{", `{"token":""}`, good + "{}", `{"token":"x","public_key":"short"}`, strings.Repeat("[", MaxMessage+10)} {
		if _, err := DecodeJoinRequest(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %.40q", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"token":"hepto1.a.b","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"kind":"membership","payload":"e30=","sig":"AA=="}`))
	f.Add([]byte(`{"from":"home-a","session":7,"ufrag":"u","pwd":"p","candidates":["candidate:1 1 udp 1 192.168.1.2 4000 typ host"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := DecodeJoinRequest(bytes.NewReader(b)); err == nil && (req.Token == "" || req.PublicKey.IsZero()) {
			t.Fatal("incomplete join request accepted")
		}
		if m, err := DecodeICEMessage(bytes.NewReader(b)); err == nil && (m.From == "" || len(m.Candidates) > maxCandidates) {
			t.Fatal("bad ICE message accepted")
		}
		var s membership.Signed
		_ = Decode(bytes.NewReader(b), &s)
	})
}
