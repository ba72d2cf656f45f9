package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serve runs s on a loopback UDP and TCP port until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- s.ServePacket(ctx, pc) }()
	go func() { done <- s.ServeStream(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	return pc.LocalAddr().String()
}

// bigUpstream answers big.example. TXT with 40 records of 100 bytes.
func bigUpstream(t testing.TB) *fakeUpstream {
	var rrs []string
	for i := range 40 {
		rrs = append(rrs, fmt.Sprintf("big.example. 300 IN TXT \"%02d%098d\"", i, 0))
	}
	return &fakeUpstream{answer: records(t, rrs...)}
}

// A truncated answer over UDP, then the whole answer over TCP: what every
// stub resolver does.
func TestTruncationTCPRetry(t *testing.T) {
	s := newTestServer(t, bigUpstream(t))
	addr := serve(t, s)
	for _, size := range []uint16{0, 1232, 4096} {
		q := question("big.example.", dns.TypeTXT)
		limit := 512
		if size != 0 {
			q.SetEdns0(size, false)
			limit = min(int(size), maxUDPSize)
		}
		r, n := rawUDP(t, addr, q)
		if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) == 40 || n > limit {
			t.Fatalf("EDNS %d: UDP answer: TC %v, %d records, %d bytes (limit %d)", size, r.Truncated, len(r.Answer), n, limit)
		}
		if (size != 0) != (r.IsEdns0() != nil) {
			t.Fatalf("EDNS %d: OPT in answer: %v", size, r.IsEdns0())
		}
		c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Truncated || len(r.Answer) != 40 {
			t.Fatalf("EDNS %d: TCP answer: TC %v, %d records", size, r.Truncated, len(r.Answer))
		}
	}
}

func TestServeUDPAndTCP(t *testing.T) {
	s := newTestServer(t, &fakeUpstream{answer: records(t, "www.example. 300 IN A 192.0.2.1")})
	addr := serve(t, s)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		for _, name := range []string{"home-a.demo.internal.", "www.example.", "www.example."} {
			r, _, err := c.Exchange(question(name, dns.TypeA), addr)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("%s %s: %v %v", network, name, r, err)
			}
		}
	}
	// TCP pipelining: several queries on one connection, answered in turn.
	conn, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 3 {
		q := question("anchor.demo.internal.", dns.TypeAAAA)
		q.Id = uint16(100 + i)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		r, err := conn.ReadMsg()
		if err != nil || r.Id != uint16(100+i) || len(r.Answer) != 1 {
			t.Fatalf("pipelined %d: %v %v", i, r, err)
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	s := newTestServer(t, &fakeUpstream{answer: records(t)})
	// EDNS version 1: BADVERS, with an OPT of version 0.
	q := question("home-a.demo.internal.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	if r, _ := ask(t, s, q, false); r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || r.IsEdns0().Version() != 0 {
		t.Errorf("EDNS version 1: %v", r)
	}
	// Opcodes other than QUERY: NOTIMP.
	q = question("demo.internal.", dns.TypeSOA)
	q.Opcode = dns.OpcodeNotify
	if r, _ := ask(t, s, q, false); r.Rcode != dns.RcodeNotImplemented || r.Opcode != dns.OpcodeNotify {
		t.Errorf("NOTIFY: %v", r)
	}
	// Two questions: FORMERR.
	q = question("demo.internal.", dns.TypeSOA)
	q.Question = append(q.Question, q.Question[0])
	if r, _ := ask(t, s, q, false); r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v", r)
	}
	// A response is never answered.
	q = question("demo.internal.", dns.TypeSOA)
	q.Response = true
	if r, _ := ask(t, s, q, false); r != nil {
		t.Errorf("answered a response: %v", r)
	}
	// Other classes: REFUSED.
	q = question("version.bind.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	if r, _ := ask(t, s, q, false); r.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS: %v", r)
	}
	// Garbage after a header: FORMERR, header only.
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 'x'}
	resp := serveBytes(s, b, false)
	if len(resp) != 12 || resp[0] != 0x12 || resp[1] != 0x34 || resp[3]&0xf != dns.RcodeFormatError || resp[2]&0x80 == 0 {
		t.Errorf("garbage: %x", resp)
	}
	if resp := serveBytes(s, b[:5], false); resp != nil {
		t.Errorf("answered 5 bytes: %x", resp)
	}
	// A compressed question takes the slow path and is answered all the same.
	q = question("home-a.demo.internal.", dns.TypeA)
	q.Extra = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "home-a.demo.internal.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
	q.Compress = true
	if r, _ := ask(t, s, q, false); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || len(r.Extra) != 0 {
		t.Errorf("compressed query with a record: %v", r)
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	conf := "search lan\nnameserver 192.0.2.53\nnameserver 10.77.0.1\nnameserver 2001:db8::53\nnameserver 192.0.2.53\noptions ndots:1\n"
	if err := writeFile(path, conf); err != nil {
		t.Fatal(err)
	}
	self := []netip.AddrPort{netip.MustParseAddrPort("10.77.0.1:53")}
	ups, err := Upstreams(path, self)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[2001:db8::53]:53")}
	if fmt.Sprint(ups) != fmt.Sprint(want) {
		t.Fatalf("upstreams %v, want %v", ups, want)
	}
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1:53", "192.0.2.1:5353": "192.0.2.1:5353", "[2001:db8::1]:53": "[2001:db8::1]:53", "2001:db8::1": "[2001:db8::1]:53"} {
		if ap, err := ParseAddrPort(in); err != nil || ap.String() != want {
			t.Errorf("ParseAddrPort(%s) = %v, %v", in, ap, err)
		}
	}
	for _, bad := range []string{"", "host:53", "192.0.2.1:x", "192.0.2.1:70000"} {
		if _, err := ParseAddrPort(bad); err == nil {
			t.Errorf("ParseAddrPort(%q) accepted", bad)
		}
	}
}

// rawUDP sends q and returns the answer and its size on the wire.
func rawUDP(t *testing.T, addr string, q *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := q.Pack()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0xffff)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return r, n
}
