package dns

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestForwardCache(t *testing.T) {
	up := &fakeUpstream{answer: records(t, "www.example. 300 IN A 192.0.2.1", "www.example. 300 IN AAAA 2001:db8::1")}
	s := newTestServer(t, up)
	for i := range 3 {
		r, _ := ask(t, s, question("WWW.example.", dns.TypeA), false)
		if !slices.Equal(answers(r), []string{"192.0.2.1"}) || r.Authoritative || !r.RecursionAvailable {
			t.Fatalf("query %d: %v", i, r)
		}
		if r.Question[0].Name != "WWW.example." {
			t.Fatalf("question echoed as %q", r.Question[0].Name)
		}
	}
	if n := up.asked.Load(); n != 1 {
		t.Fatalf("upstream asked %d times for one name, want once", n)
	}
	if q := up.lastAsk; q.Question[0].Name != "www.example." || !q.RecursionDesired || q.IsEdns0() == nil {
		t.Fatalf("upstream query: %v", q)
	}
	// Another type and DNSSEC OK are other answers.
	ask(t, s, question("www.example.", dns.TypeAAAA), false)
	do := question("www.example.", dns.TypeA)
	do.SetEdns0(1232, true)
	r, _ := ask(t, s, do, false)
	if opt := r.IsEdns0(); opt == nil || !opt.Do() {
		t.Fatalf("DO not echoed: %v", r)
	}
	if n := up.asked.Load(); n != 3 {
		t.Fatalf("upstream asked %d times, want 3", n)
	}
}

func TestCacheTTL(t *testing.T) {
	for _, tc := range []struct {
		name string
		rrs  []string
		ns   []string
		rc   int
		want time.Duration
	}{
		{"positive: smallest TTL", []string{"a. 300 IN A 192.0.2.1", "a. 60 IN A 192.0.2.2"}, nil, dns.RcodeSuccess, 60 * time.Second},
		{"positive: capped", []string{"a. 86400 IN A 192.0.2.1"}, nil, dns.RcodeSuccess, maxCacheTTL * time.Second},
		{"NXDOMAIN: SOA MINIMUM", nil, []string{"a. 3600 IN SOA ns. h. 1 1 1 1 120"}, dns.RcodeNameError, 120 * time.Second},
		{"NXDOMAIN: SOA TTL", nil, []string{"a. 30 IN SOA ns. h. 1 1 1 1 120"}, dns.RcodeNameError, 30 * time.Second},
		{"NODATA: SOA", nil, []string{"a. 3600 IN SOA ns. h. 1 1 1 1 3600"}, dns.RcodeSuccess, 900 * time.Second},
		{"NXDOMAIN without SOA: not kept", nil, nil, dns.RcodeNameError, 0},
		{"SERVFAIL: not kept", nil, nil, dns.RcodeServerFailure, 0},
	} {
		r := new(dns.Msg)
		r.Rcode = tc.rc
		for _, s := range tc.rrs {
			rr, _ := dns.NewRR(s)
			r.Answer = append(r.Answer, rr)
		}
		for _, s := range tc.ns {
			rr, _ := dns.NewRR(s)
			r.Ns = append(r.Ns, rr)
		}
		if got := cacheTTL(r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		for _, rr := range append(r.Answer, r.Ns...) {
			if tc.want > 0 && time.Duration(rr.Header().Ttl)*time.Second > tc.want {
				t.Errorf("%s: %v not capped", tc.name, rr)
			}
		}
	}
}

func TestNegativeCache(t *testing.T) {
	up := &fakeUpstream{answer: records(t)}
	s := newTestServer(t, up)
	for range 2 {
		r, _ := ask(t, s, question("nothing.example.", dns.TypeA), false)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Ttl > 60 {
			t.Fatalf("negative answer: %v", r)
		}
	}
	if n := up.asked.Load(); n != 1 {
		t.Fatalf("NXDOMAIN not cached: upstream asked %d times", n)
	}
	up.set(func(q *dns.Msg) (*dns.Msg, error) {
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeServerFailure)
		return r, nil
	})
	for range 2 {
		if r, _ := ask(t, s, question("fails.example.", dns.TypeA), false); r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("SERVFAIL: %v", r)
		}
	}
	if n := up.asked.Load(); n != 3 {
		t.Fatalf("SERVFAIL cached: upstream asked %d times, want 3", n)
	}
}

func TestTTLCountsDown(t *testing.T) {
	up := &fakeUpstream{answer: records(t, "www.example. 300 IN A 192.0.2.1")}
	s := newTestServer(t, up)
	ask(t, s, question("www.example.", dns.TypeA), false)
	// Age the entry by 100 s.
	e := s.cache.get(mustKey(t, question("www.example.", dns.TypeA)))
	e.stored -= int64(100 * time.Second)
	r, _ := ask(t, s, question("www.example.", dns.TypeA), false)
	if ttl := r.Answer[0].Header().Ttl; ttl < 199 || ttl > 200 {
		t.Fatalf("TTL after 100 s: %d", ttl)
	}
}

func mustKey(t testing.TB, m *dns.Msg) []byte {
	b, _ := m.Pack()
	q, ok := parseQuery(b, nil)
	if !ok {
		t.Fatalf("parseQuery(%v) failed", m)
	}
	return q.key
}

func TestServeStale(t *testing.T) {
	up := &fakeUpstream{answer: records(t, "www.example. 1 IN A 192.0.2.1")}
	s := New(Config{Domain: "demo.internal", Exchanger: up, StaleFor: 2 * time.Second})
	defer s.Close()
	ask(t, s, question("www.example.", dns.TypeA), false)
	time.Sleep(1100 * time.Millisecond)
	up.set(func(*dns.Msg) (*dns.Msg, error) { return nil, errors.New("upstream down") })
	for i := range 3 {
		r, _ := ask(t, s, question("www.example.", dns.TypeA), false)
		if !slices.Equal(answers(r), []string{"192.0.2.1"}) || r.Answer[0].Header().Ttl != staleTTL {
			t.Fatalf("stale answer %d: %v", i, r)
		}
	}
	if n := up.asked.Load(); n != 2 {
		t.Fatalf("upstream asked %d times, want 2: once, then once more before serving stale", n)
	}
	// Past StaleFor, no answer is better than a wrong one.
	time.Sleep(2 * time.Second)
	if r, _ := ask(t, s, question("www.example.", dns.TypeA), false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("past stale: %v", r)
	}
	// The upstream is back: fresh answers again.
	up.set(records(t, "www.example. 60 IN A 192.0.2.9"))
	if r, _ := ask(t, s, question("www.example.", dns.TypeA), false); !slices.Equal(answers(r), []string{"192.0.2.9"}) {
		t.Fatalf("after recovery: %v", r)
	}
}

func TestCacheBounded(t *testing.T) {
	up := &fakeUpstream{answer: func(q *dns.Msg) (*dns.Msg, error) {
		r := new(dns.Msg)
		r.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 300 IN TXT " + fmt.Sprintf("%q", string(make([]byte, 200))))
		r.Answer = []dns.RR{rr}
		return r, nil
	}}
	s := New(Config{Domain: "demo.internal", Exchanger: up, CacheBytes: 64 << 10})
	defer s.Close()
	for i := range 2000 {
		ask(t, s, question(fmt.Sprintf("n%d.example.", i), dns.TypeTXT), false)
	}
	if b, n := s.cache.bytes.Load(), s.cache.count.Load(); b > 64<<10 || n == 0 || n >= 2000 {
		t.Fatalf("cache holds %d bytes in %d entries; budget %d", b, n, 64<<10)
	}
	var sum int
	for i := range s.cache.shards {
		sh := &s.cache.shards[i]
		for k, e := range sh.m {
			sum += e.size() + len(k)
		}
	}
	if int64(sum) != s.cache.bytes.Load() {
		t.Fatalf("cache accounts %d bytes, holds %d", s.cache.bytes.Load(), sum)
	}
}

func TestConcurrentMissesMerge(t *testing.T) {
	release := make(chan struct{})
	up := &fakeUpstream{}
	rec := records(t, "slow.example. 60 IN A 192.0.2.1")
	up.set(func(q *dns.Msg) (*dns.Msg, error) { <-release; return rec(q) })
	s := newTestServer(t, up)
	done := make(chan *dns.Msg)
	for range 10 {
		go func() {
			r, _ := ask(t, s, question("slow.example.", dns.TypeA), false)
			done <- r
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	for range 10 {
		if r := <-done; !slices.Equal(answers(r), []string{"192.0.2.1"}) {
			t.Fatalf("merged answer: %v", r)
		}
	}
	if n := up.asked.Load(); n != 1 {
		t.Fatalf("10 concurrent misses asked upstream %d times", n)
	}
}
