package dns

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// query is what the fast path reads from a request without unpacking it.
type query struct {
	rd, cd  bool
	qEnd    int // end of the question section
	qtype   uint16
	qclass  uint16
	edns    bool
	do      bool
	udpSize uint16
	name    []byte // the question's name, wire format, lower-cased (in key)
	key     []byte // name, type, class and the flags that change an answer
}

// Flags of a key: answers differ with them.
const (
	keyDO = 1 << iota
	keyCD
)

// parseQuery reads a plain query: one question, no answer or authority
// records, at most an OPT record of version 0 in the additional section,
// and no compression in the question. Anything else is left to the slow
// path, which unpacks it fully. key is reused as the key's storage.
func parseQuery(b []byte, key []byte) (q query, ok bool) {
	if len(b) < 12 || b[2]&0x80 != 0 || (b[2]>>3)&0xf != dns.OpcodeQuery {
		return q, false
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q, false
	}
	ar := binary.BigEndian.Uint16(b[10:])
	if ar > 1 {
		return q, false
	}
	q.rd = b[2]&1 != 0
	q.cd = b[3]&0x10 != 0
	key = key[:0]
	off := 12
	for {
		if off >= len(b) {
			return q, false
		}
		l := int(b[off])
		if l == 0 {
			key = append(key, 0)
			off++
			break
		}
		if l&0xc0 != 0 || off+1+l > len(b) || len(key)+1+l > 254 {
			return q, false
		}
		key = append(key, byte(l))
		for _, c := range b[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		off += 1 + l
	}
	q.name = key
	if off+4 > len(b) {
		return q, false
	}
	q.qtype = binary.BigEndian.Uint16(b[off:])
	q.qclass = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	q.qEnd = off
	if ar == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = extended
		// RCODE, version, flags; then its options, which we ignore.
		if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT || b[off+6] != 0 {
			return q, false
		}
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(b[off+3:])
		q.do = b[off+7]&0x80 != 0
		off += 11 + int(binary.BigEndian.Uint16(b[off+9:]))
	}
	if off != len(b) {
		return q, false
	}
	var flags byte
	if q.do {
		flags |= keyDO
	}
	if q.cd {
		flags |= keyCD
	}
	key = append(key, byte(q.qtype>>8), byte(q.qtype), byte(q.qclass>>8), byte(q.qclass), flags)
	q.name = key[:len(q.name)]
	q.key = key
	return q, true
}

// limit is the largest answer a query allows: 512 bytes over UDP without
// EDNS, the advertised size with it (never under 512, RFC 6891 §6.2.5, and
// never over what we are willing to send), 64 KiB over TCP.
func (q *query) limit(tcp bool) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case !q.edns:
		return dns.MinMsgSize
	}
	return clampUDP(q.udpSize)
}

func clampUDP(size uint16) int {
	return min(max(int(size), dns.MinMsgSize), maxUDPSize)
}

// inZone says whether the wire-format name ends with the wire-format zone,
// at a label boundary.
func inZone(name, zone []byte) bool {
	if len(zone) == 0 {
		return false
	}
	for off := 0; off < len(name); {
		if len(name)-off == len(zone) {
			return string(name[off:]) == string(zone)
		}
		if len(name)-off < len(zone) {
			return false
		}
		off += 1 + int(name[off])
	}
	return false
}

// wireName is a name in wire format, lower-cased, for inZone.
func wireName(name string) []byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.CanonicalName(name), buf, 0, nil, false)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// ttlOffsets finds the TTL field of every record of a packed message, so a
// cached answer's TTLs can be counted down without unpacking it.
func ttlOffsets(b []byte) ([]uint16, bool) {
	if len(b) < 12 || len(b) > 0xffff {
		return nil, false
	}
	qd := int(binary.BigEndian.Uint16(b[4:]))
	rr := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	off := 12
	skipName := func() bool {
		for off < len(b) {
			l := int(b[off])
			switch {
			case l == 0:
				off++
				return true
			case l&0xc0 == 0xc0:
				off += 2
				return off <= len(b)
			case l&0xc0 != 0:
				return false
			}
			off += 1 + l
		}
		return false
	}
	for range qd {
		if !skipName() {
			return nil, false
		}
		off += 4
	}
	offs := make([]uint16, 0, rr)
	for range rr {
		if !skipName() || off+10 > len(b) {
			return nil, false
		}
		offs = append(offs, uint16(off+4))
		off += 10 + int(binary.BigEndian.Uint16(b[off+8:]))
	}
	return offs, off == len(b)
}
