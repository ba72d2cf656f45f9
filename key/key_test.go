package key

import "testing"

func TestRoundTrip(t *testing.T) {
	k, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublic(k.Public().String())
	if err != nil || p != k.Public() {
		t.Fatalf("round trip: %v %v", p, err)
	}
	if _, err := ParsePublic("AAAA"); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := ParsePublic(k.Public().String() + "AAAA"); err == nil {
		t.Fatal("long key accepted")
	}
}
