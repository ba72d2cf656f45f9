package dns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestNodeNames(t *testing.T) {
	s := newTestServer(t, &fakeUpstream{answer: records(t)})
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"home-a.demo.internal.", dns.TypeA, dns.RcodeSuccess, []string{"10.77.0.2"}},
		{"Home-A.Demo.Internal.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd12:3456:789a::2"}},
		{"anchor.demo.internal.", dns.TypeA, dns.RcodeSuccess, []string{"10.77.0.1"}},
		{"nobody.demo.internal.", dns.TypeA, dns.RcodeNameError, nil},
		{"x.home-a.demo.internal.", dns.TypeA, dns.RcodeNameError, nil},
		{"home-a.demo.internal.", dns.TypeMX, dns.RcodeSuccess, nil},
		{"2.0.77.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"home-a.demo.internal."}},
		{"9.0.77.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"home-a.demo.internal."}},
		{"demo.internal.", dns.TypeNS, dns.RcodeSuccess, []string{"demo.internal.\t60\tIN\tNS\tanchor.demo.internal."}},
	} {
		// Twice: computed, then from the remembered packed answer.
		for i := range 2 {
			r, _ := ask(t, s, question(tc.name, tc.qtype), false)
			if r == nil || r.Rcode != tc.rcode || !r.Authoritative || !slices.Equal(answers(r), tc.want) {
				t.Fatalf("%s %s (#%d): got %v", tc.name, dns.TypeToString[tc.qtype], i, r)
			}
			if r.Question[0].Name != tc.name {
				t.Errorf("question %q echoed as %q", tc.name, r.Question[0].Name)
			}
			if len(tc.want) == 0 {
				if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].Header().Ttl != nodeNegTTL {
					t.Errorf("%s: negative answer without its SOA: %v", tc.name, r.Ns)
				}
			}
		}
	}
}

func TestNodeUpdates(t *testing.T) {
	s := newTestServer(t, &fakeUpstream{answer: records(t)})
	a := func(name string) []string {
		r, _ := ask(t, s, question(name+".demo.internal.", dns.TypeA), false)
		return answers(r)
	}
	if got := a("home-b"); got != nil {
		t.Fatalf("home-b before joining: %v", got)
	}
	nodes := append(testNodes(), Node{Name: "home-b", Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.3")}})
	s.SetNodes(2, nodes)
	if got := a("home-b"); !slices.Equal(got, []string{"10.77.0.3"}) {
		t.Fatalf("home-b after joining: %v", got)
	}
	s.SetNodes(1, testNodes()) // older: ignored
	if got := a("home-b"); !slices.Equal(got, []string{"10.77.0.3"}) {
		t.Fatalf("an older membership took over: %v", got)
	}
	nodes[2].Addrs[0] = netip.MustParseAddr("10.77.0.4")
	s.SetNodes(3, nodes[1:])
	if got := a("home-b"); !slices.Equal(got, []string{"10.77.0.4"}) {
		t.Fatalf("home-b after its change: %v", got)
	}
	if got := a("anchor"); got != nil {
		t.Fatalf("anchor after leaving: %v", got)
	}
	r, _ := ask(t, s, question("demo.internal.", dns.TypeSOA), false)
	if soa, ok := r.Answer[0].(*dns.SOA); !ok || soa.Serial != 3 {
		t.Fatalf("SOA serial is not the membership version: %v", r.Answer)
	}
}

func TestReverseZone(t *testing.T) {
	for p, want := range map[string]string{
		"10.77.0.0/16":          "77.10.in-addr.arpa.",
		"10.77.0.0/20":          "77.10.in-addr.arpa.",
		"fd12:3456:789a::/64":   "0.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa.",
		"fd12:3456:789a::/48":   "a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa.",
		"192.168.1.0/24":        "1.168.192.in-addr.arpa.",
		"fd12:3456:789a:1::/66": "1.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa.",
	} {
		if got := reverseZone(netip.MustParsePrefix(p)); got != want {
			t.Errorf("reverseZone(%s) = %s, want %s", p, got, want)
		}
	}
	for _, a := range []string{"10.77.0.2", "fd12:3456:789a::2", "::1", "1.2.3.4"} {
		addr := netip.MustParseAddr(a)
		arpa, _ := dns.ReverseAddr(a)
		if got, ok := reverseAddr(arpa); !ok || got != addr {
			t.Errorf("reverseAddr(%s) = %v %v", arpa, got, ok)
		}
	}
	for _, bad := range []string{"1.2.3.in-addr.arpa.", "x.1.2.3.in-addr.arpa.", "01.2.3.4.in-addr.arpa.", "g.ip6.arpa."} {
		if a, ok := reverseAddr(bad); ok {
			t.Errorf("reverseAddr(%s) = %v", bad, a)
		}
	}
}
