package dns

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// entry is a packed answer without its OPT record, its question name
// lower-cased and its ID zero, ready to be copied into a reply.
type entry struct {
	msg   []byte
	qEnd  int      // end of the question section
	ttls  []uint16 // offsets of the TTL fields; nil: TTLs stay as they are
	rcode int

	stored     int64 // unix nanoseconds; TTLs count down from here
	expires    int64 // fresh until then
	staleUntil int64 // may be served stale, on upstream failure, until then
	// serveStale is set when the upstream failed to refresh the entry:
	// until then it is served stale at once, without asking again.
	serveStale atomic.Int64
}

// staleTTL is the TTL of a stale answer (RFC 8767 §4 suggests 30 s).
const staleTTL = 30

// newEntry packs m, without its OPT record, for serving. Its TTLs count
// down from now when ttl > 0 (forwarded answers); a zero ttl marks an
// authoritative answer, served as it is.
func newEntry(m *dns.Msg, now time.Time, ttl time.Duration, stale time.Duration) (*entry, error) {
	m = m.Copy()
	m.Id = 0
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if len(m.Question) == 1 {
		m.Question[0].Name = strings.ToLower(m.Question[0].Name)
	}
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		return nil, err
	}
	e := &entry{msg: b, rcode: m.Rcode}
	if len(m.Question) == 1 {
		e.qEnd = 12 + len(wireName(m.Question[0].Name)) + 4
	}
	if ttl > 0 {
		offs, ok := ttlOffsets(b)
		if !ok {
			return nil, errBadPack
		}
		e.ttls = offs
		e.stored = now.UnixNano()
		e.expires = e.stored + int64(ttl)
		e.staleUntil = e.expires + int64(stale)
	}
	return e, nil
}

type packError string

func (e packError) Error() string { return string(e) }

const errBadPack = packError("dns: packed message does not parse")

// size is what an entry counts for in the cache's memory budget.
func (e *entry) size() int { return len(e.msg) + 2*len(e.ttls) + 96 }

// write builds the reply to req (whose fast-path reading is q) into dst:
// req's ID, RD flag and question (with the client's letter case), TTLs
// counted down to now (or set to staleTTL), and an OPT record if req had
// one. It returns nil when the reply would exceed limit.
func (e *entry) write(dst []byte, req []byte, q *query, now int64, stale bool, limit int) []byte {
	n := len(e.msg)
	if q.edns {
		n += 11
	}
	if n > limit || e.qEnd != q.qEnd {
		return nil
	}
	dst = append(dst[:0], e.msg...)
	dst[0], dst[1] = req[0], req[1]
	dst[2] = dst[2]&^1 | req[2]&1
	copy(dst[12:e.qEnd], req[12:q.qEnd])
	if e.ttls != nil {
		elapsed := uint32((now - e.stored) / int64(time.Second))
		for _, off := range e.ttls {
			ttl := binary.BigEndian.Uint32(dst[off:])
			switch {
			case stale:
				ttl = staleTTL
			case ttl > elapsed:
				ttl -= elapsed
			default:
				ttl = 0
			}
			binary.BigEndian.PutUint32(dst[off:], ttl)
		}
	}
	if q.edns {
		var flags byte
		if q.do {
			flags = 0x80
		}
		dst = append(dst, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(ourUDPSize>>8), byte(ourUDPSize&0xff),
			0, 0, flags, 0, 0, 0)
		binary.BigEndian.PutUint16(dst[10:], binary.BigEndian.Uint16(dst[10:])+1)
	}
	return dst
}

// unpack returns the reply to req as a message, for the slow path's
// truncation.
func (e *entry) unpack(req []byte, q *query, now int64, stale bool) (*dns.Msg, error) {
	b := e.write(nil, req, q, now, stale, dns.MaxMsgSize)
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, err
	}
	return m, nil
}
