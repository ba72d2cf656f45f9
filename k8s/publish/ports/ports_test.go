package ports

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse("51820/udp, 3478/TCP,49152-65535")
	if err != nil {
		t.Fatal(err)
	}
	if s := Format(got); s != "51820/udp,3478/tcp,49152-65535/udp" {
		t.Errorf("parsed and formatted: %q", s)
	}
	for _, bad := range []string{"0/udp", "70000/udp", "9-3/udp", "53/sctp", "x/tcp", "-/udp"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("51820/udp,3478/tcp,49152-65535")
	f.Add("1-65535/TCP")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(Format(rs))
		if err != nil || !slices.Equal(again, rs) {
			t.Fatalf("%q → %q → %v %v", s, Format(rs), again, err)
		}
	})
}
