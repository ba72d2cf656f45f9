package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServe: no packet crashes the server, and no reply is bigger than the
// query allows (512 bytes over UDP, or the EDNS size it states), nor
// malformed, nor given to a response.
func FuzzServe(f *testing.F) {
	up := bigUpstream(f)
	s := New(Config{Domain: "demo.internal", Self: "anchor", Overlay: []netip.Prefix{overlay4, overlay6}, Exchanger: up})
	defer s.Close()
	s.SetNodes(1, testNodes())
	s.SetKubernetes(testKube())
	for _, m := range []*dns.Msg{
		question("home-a.demo.internal.", dns.TypeA),
		question("big.example.", dns.TypeTXT),
		question("2.0.77.10.in-addr.arpa.", dns.TypePTR),
		question("web.default.svc.cluster.local.", dns.TypeA),
		question("_http._tcp.db.default.svc.cluster.local.", dns.TypeSRV),
	} {
		b, _ := m.Pack()
		f.Add(b, false)
		m.SetEdns0(600, true)
		b, _ = m.Pack()
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, req []byte, tcp bool) {
		in := append([]byte(nil), req...)
		resp := serveBytes(s, req, tcp)
		if string(in) != string(req) {
			t.Fatal("the query was modified")
		}
		if resp == nil {
			return
		}
		if len(req) < 12 || req[2]&0x80 != 0 {
			t.Fatalf("replied to %x", req)
		}
		if n, limit := len(resp), allowed(req, tcp); n > limit {
			t.Fatalf("reply of %d bytes to a query that allows %d", n, limit)
		}
		if resp[0] != req[0] || resp[1] != req[1] || resp[2]&0x80 == 0 {
			t.Fatalf("reply header %x to %x", resp[:4], req[:4])
		}
		if err := new(dns.Msg).Unpack(resp); err != nil {
			t.Fatalf("reply does not unpack: %v: %x", err, resp)
		}
	})
}

// allowed is the largest reply a query allows.
func allowed(req []byte, tcp bool) int {
	if tcp {
		return dns.MaxMsgSize
	}
	size := 0
	if q, ok := parseQuery(req, nil); ok && q.edns {
		size = int(q.udpSize)
	} else if m := new(dns.Msg); m.Unpack(req) == nil && m.IsEdns0() != nil {
		size = int(m.IsEdns0().UDPSize())
	}
	return max(size, dns.MinMsgSize)
}
