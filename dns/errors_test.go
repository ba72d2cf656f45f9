package dns

import (
	"testing"

	"github.com/miekg/dns"
)

// Queries that miekg/dns would forgive get FORMERR: two OPT records, or
// fewer records than the header says.
func TestMalformedCountsAreFormErr(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("home-a.demo.internal.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.Extra = append(q.Extra, q.Extra[0])
	twoOPT, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	one := new(dns.Msg)
	one.SetQuestion("home-a.demo.internal.", dns.TypeA)
	short, _ := one.Pack()
	short[11] = 2 // ARCOUNT 2, no additional record
	s := New(Config{Domain: "demo.internal"})
	defer s.Close()
	for name, req := range map[string][]byte{"two OPT records": twoOPT, "ARCOUNT beyond the message": short} {
		plain, reply := s.normalize(req, false)
		if plain != nil || len(reply) < 12 || reply[3]&0xf != dns.RcodeFormatError {
			t.Errorf("%s: plain %v, reply %x, want FORMERR", name, plain != nil, reply)
		}
	}
}
