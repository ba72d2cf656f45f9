package dns

import (
	"encoding/binary"
	"time"

	"github.com/miekg/dns"
)

// normalize deals with a query the fast reader could not read: it returns
// either the reply to send (an error), or the query packed plainly (one
// question, no compression, at most an OPT record) for the usual path, or
// neither when the message deserves no reply.
func (s *Server) normalize(req []byte, tcp bool) (plain, reply []byte) {
	if len(req) < 12 || req[2]&0x80 != 0 {
		// Too short to reply to, or a response: never answer those.
		return nil, nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(req); err != nil || !wellFormed(req, m) {
		return nil, headerError(req, dns.RcodeFormatError)
	}
	opt := m.IsEdns0()
	limit := dns.MinMsgSize
	switch {
	case tcp:
		limit = dns.MaxMsgSize
	case opt != nil:
		limit = clampUDP(opt.UDPSize())
	}
	var rcode int
	switch {
	case m.Opcode != dns.OpcodeQuery:
		rcode = dns.RcodeNotImplemented
	case len(m.Question) != 1 || len(m.Answer) > 0 || len(m.Ns) > 0:
		rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		rcode = dns.RcodeBadVers
	default:
		p := &dns.Msg{MsgHdr: m.MsgHdr, Question: m.Question}
		if opt != nil {
			p.SetEdns0(opt.UDPSize(), opt.Do())
		}
		b, err := p.Pack()
		if err != nil {
			return nil, headerError(req, dns.RcodeFormatError)
		}
		return b, nil
	}
	r := new(dns.Msg)
	r.SetRcode(m, rcode)
	if opt != nil {
		r.SetEdns0(ourUDPSize, opt.Do())
	}
	r.Truncate(limit)
	b, err := r.Pack()
	if err != nil || len(b) > limit {
		return nil, headerError(req, rcode&0xf)
	}
	return nil, b
}

// headerError is a reply of a header alone, for queries that cannot be
// read further.
func headerError(req []byte, rcode int) []byte {
	b := make([]byte, 12)
	copy(b, req[:2])
	b[2] = 0x80 | req[2]&0x79 // QR, the query's opcode and RD
	b[3] = byte(rcode & 0xf)
	return b
}

func (s *Server) formErr(req []byte, start time.Time) []byte {
	if len(req) < 12 || req[2]&0x80 != 0 {
		return nil
	}
	b := headerError(req, dns.RcodeFormatError)
	s.done(b, kindError, start)
	return b
}

// wellFormed checks what miekg/dns forgives: fewer records than the header
// counts, and more than one OPT record (RFC 6891 6.1.1).
func wellFormed(req []byte, m *dns.Msg) bool {
	count := func(i int) int { return int(binary.BigEndian.Uint16(req[4+2*i:])) }
	if len(m.Question) != count(0) || len(m.Answer) != count(1) || len(m.Ns) != count(2) || len(m.Extra) != count(3) {
		return false
	}
	opts := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	return opts <= 1
}
