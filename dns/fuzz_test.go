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

// allowed is the largest reply a query allows, read from the query by
// RFC 1035 and RFC 6891 alone: 64 KiB over TCP; over UDP the size its OPT
// records (owner the root, in the additional section) state, the smallest
// if several, at least 512; 512 without one or when the query cannot be
// walked. Records missing at the end are not a reason for 512.
func allowed(req []byte, tcp bool) int {
	if tcp {
		return 65535
	}
	const floor = 512
	if len(req) < 12 {
		return floor
	}
	count := func(i int) int { return int(req[i])<<8 | int(req[i+1]) }
	qd, rrs, ar := count(4), count(6)+count(8), count(10)
	off := 12
	skipName := func() bool {
		for off < len(req) {
			l := int(req[off])
			switch {
			case l == 0:
				off++
				return true
			case l&0xc0 == 0xc0:
				off += 2
				return off <= len(req)
			case l&0xc0 != 0:
				return false
			}
			off += 1 + l
		}
		return false
	}
	for range qd {
		if !skipName() || off+4 > len(req) {
			return floor
		}
		off += 4
	}
	size, opts := 65535, 0
	for i := range rrs + ar {
		if off == len(req) {
			break // fewer records than counted, as lenient parsers take it
		}
		start := off
		if !skipName() || off+10 > len(req) {
			return floor
		}
		typ, class, rdlen := count(off), count(off+2), count(off+8)
		off += 10 + rdlen
		if off > len(req) {
			return floor
		}
		if typ == 41 { // OPT
			if i < rrs || off-start-10-rdlen != 1 || req[start] != 0 {
				return floor // OPT outside the additional section, or not owned by the root
			}
			opts++
			size = min(size, class)
		}
	}
	if opts == 0 {
		return floor
	}
	return max(size, floor)
}

func TestAllowed(t *testing.T) {
	q := func(size uint16) []byte {
		m := question("home-a.demo.internal.", dns.TypeA)
		if size > 0 {
			m.SetEdns0(size, false)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		req  []byte
		tcp  bool
		want int
	}{
		{q(0), false, 512}, {q(100), false, 512}, {q(600), false, 600}, {q(4096), false, 4096},
		{q(600), true, 65535}, {q(600)[:20], false, 512}, {nil, false, 512},
	} {
		if got := allowed(c.req, c.tcp); got != c.want {
			t.Errorf("allowed(%x, %v) = %d, want %d", c.req, c.tcp, got, c.want)
		}
	}
}
