package dns

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The fast path allocates nothing: the point of keeping answers packed.
func TestFastPathAllocs(t *testing.T) {
	s := newTestServer(t, &fakeUpstream{answer: records(t, "www.example. 300 IN A 192.0.2.1")})
	for _, name := range []string{"home-a.demo.internal.", "www.example."} {
		q := question(name, dns.TypeA)
		q.SetEdns0(1232, false)
		b, _ := q.Pack()
		serveBytes(s, b, false) // computes and remembers the answer
		out, key := make([]byte, 0, 1500), make([]byte, 0, 264)
		allocs := testing.AllocsPerRun(100, func() {
			if _, ok := s.fast(b, false, out, key, time.Now()); !ok {
				t.Fatalf("%s: not on the fast path", name)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations a query", name, allocs)
		}
	}
}

func BenchmarkFastPath(b *testing.B) {
	s := newTestServer(b, &fakeUpstream{answer: records(b, "www.example. 300 IN A 192.0.2.1")})
	q := question("www.example.", dns.TypeA)
	q.SetEdns0(1232, false)
	req, _ := q.Pack()
	serveBytes(s, req, false)
	out, key := make([]byte, 0, 1500), make([]byte, 0, 264)
	for b.Loop() {
		s.fast(req, false, out, key, time.Now())
	}
}
