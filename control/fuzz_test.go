package control

import (
	"bytes"
	"encoding/json"
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

// joinOfSize is a flat join request of exactly n bytes: one long token.
func joinOfSize(n int) string {
	head, tail := `{"token":"hepto1.`, `","public_key":"`+strings.Repeat("A", 42)+`E="}`
	return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
}

// A flat message (no nesting for JSON's depth limit to catch) is refused
// once it is larger than MaxMessage, and accepted up to it.
func TestDecodeSizeBound(t *testing.T) {
	if _, err := DecodeJoinRequest(strings.NewReader(joinOfSize(MaxMessage))); err != nil {
		t.Fatalf("message of MaxMessage bytes refused: %v", err)
	}
	for _, n := range []int{MaxMessage + 1, MaxMessage + 2, MaxMessage + 1000, 2 * MaxMessage} {
		msg := joinOfSize(n)
		if len(msg) != n {
			t.Fatalf("built %d bytes, want %d", len(msg), n)
		}
		_, err := DecodeJoinRequest(strings.NewReader(msg))
		if err == nil {
			t.Fatalf("flat message of %d bytes accepted", n)
		}
		if strings.Contains(err.Error(), "depth") {
			t.Fatalf("refused for depth, not size: %v", err)
		}
	}
	// Leading whitespace is read too.
	if _, err := DecodeJoinRequest(strings.NewReader(strings.Repeat(" ", MaxMessage) + joinOfSize(200))); err == nil {
		t.Fatal("message after MaxMessage bytes of whitespace accepted")
	}
	// So is what follows the message: junk past the limit is refused.
	if _, err := DecodeJoinRequest(strings.NewReader(joinOfSize(200) + strings.Repeat(" ", MaxMessage) + "junk")); err == nil {
		t.Fatal("junk after MaxMessage bytes of trailing whitespace accepted")
	}
}

// valueLen is how many bytes of b the first JSON value takes, found by a
// decoder without limit.
func valueLen(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return -1
	}
	return int(dec.InputOffset())
}

// roundTrip checks that v, encoded, decodes again (with decode) to what
// encodes the same: what a node accepts, it can pass on.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := decode(b)
	if err != nil {
		t.Fatalf("re-encoded %T refused: %v\n%s", v, err, b)
	}
	if b2, _ := json.Marshal(v2); !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed %T:\n%s\n%s", v, b, b2)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"token":"hepto1.a.b","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"home":"0123456789abcdef","zone":"flat"}`))
	f.Add([]byte(`{"kind":"membership","payload":"e30=","sig":"AA=="}`))
	f.Add([]byte(`{"from":"home-a","session":7,"ufrag":"u","pwd":"p","candidates":["candidate:1 1 udp 1 192.168.1.2 4000 typ host"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		accepted := false
		if req, err := DecodeJoinRequest(bytes.NewReader(b)); err == nil {
			accepted = true
			roundTrip(t, req, func(b []byte) (JoinRequest, error) { return DecodeJoinRequest(bytes.NewReader(b)) })
		}
		if rep, err := DecodeHomeReport(bytes.NewReader(b)); err == nil {
			accepted = true
			roundTrip(t, rep, func(b []byte) (HomeReport, error) { return DecodeHomeReport(bytes.NewReader(b)) })
		}
		if m, err := DecodeICEMessage(bytes.NewReader(b)); err == nil {
			accepted = true
			roundTrip(t, m, func(b []byte) (ICEMessage, error) { return DecodeICEMessage(bytes.NewReader(b)) })
		}
		var s membership.Signed
		if err := Decode(bytes.NewReader(b), &s); err == nil {
			accepted = true
			roundTrip(t, s, func(b []byte) (s membership.Signed, err error) { return s, Decode(bytes.NewReader(b), &s) })
		}
		if accepted && valueLen(b) > MaxMessage {
			t.Fatalf("message of %d bytes accepted", valueLen(b))
		}
	})
}
