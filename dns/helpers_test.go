package dns

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeUpstream answers from a function and counts the questions it gets.
type fakeUpstream struct {
	mu      sync.Mutex
	answer  func(q *dns.Msg) (*dns.Msg, error)
	asked   atomic.Int64
	lastAsk *dns.Msg
}

func (f *fakeUpstream) Exchange(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
	f.asked.Add(1)
	f.mu.Lock()
	f.lastAsk = q
	answer := f.answer
	f.mu.Unlock()
	return answer(q)
}

func (f *fakeUpstream) set(a func(q *dns.Msg) (*dns.Msg, error)) {
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
}

// records answers every question with the records rrs (in zone-file form)
// whose type matches, NXDOMAIN with a SOA when none does.
func records(t testing.TB, rrs ...string) func(q *dns.Msg) (*dns.Msg, error) {
	var parsed []dns.RR
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, rr)
	}
	return func(q *dns.Msg) (*dns.Msg, error) {
		r := new(dns.Msg)
		r.SetReply(q)
		for _, rr := range parsed {
			if h := rr.Header(); dns.CanonicalName(h.Name) == dns.CanonicalName(q.Question[0].Name) && h.Rrtype == q.Question[0].Qtype {
				r.Answer = append(r.Answer, dns.Copy(rr))
			}
		}
		if len(r.Answer) == 0 {
			r.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("example. 3600 IN SOA ns.example. h.example. 1 3600 600 86400 60")
			r.Ns = []dns.RR{soa}
		}
		return r, nil
	}
}

var (
	overlay4 = netip.MustParsePrefix("10.77.0.0/16")
	overlay6 = netip.MustParsePrefix("fd12:3456:789a::/64")
)

func testNodes() []Node {
	return []Node{
		{Name: "anchor", Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fd12:3456:789a::1")}},
		{Name: "home-a", Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd12:3456:789a::2")}},
	}
}

func newTestServer(t testing.TB, up Exchanger) *Server {
	s := New(Config{Domain: "demo.internal", Self: "anchor", Overlay: []netip.Prefix{overlay4, overlay6}, Exchanger: up})
	s.SetNodes(1, testNodes())
	t.Cleanup(func() { s.Close() })
	return s
}

// ask sends m to s as a client on tcp or udp would, through the fast and
// slow paths, and returns the reply (nil: none) and its size.
func ask(t testing.TB, s *Server, m *dns.Msg, tcp bool) (*dns.Msg, int) {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	resp := serveBytes(s, b, tcp)
	if resp == nil {
		return nil, 0
	}
	r := new(dns.Msg)
	if err := r.Unpack(resp); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return r, len(resp)
}

func serveBytes(s *Server, b []byte, tcp bool) []byte {
	start := time.Now()
	if resp, ok := s.fast(b, tcp, nil, make([]byte, 0, 264), start); ok {
		return resp
	}
	return s.slow(b, tcp, start)
}

func question(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	return m
}

func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		case *dns.CNAME:
			out = append(out, "CNAME "+rr.Target)
		case *dns.SRV:
			out = append(out, rr.String()[len(rr.Hdr.String()):])
		case *dns.TXT:
			out = append(out, rr.Txt...)
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
