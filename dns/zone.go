package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// zone is data we answer for with authority: records by owner and type.
type zone struct {
	origin string // lower-case, fully qualified
	wire   []byte
	soa    *dns.SOA
	// names holds every name of the zone, those without records of their
	// own (empty non-terminals) included, so that they get NODATA rather
	// than NXDOMAIN (RFC 8020).
	names map[string]map[uint16][]dns.RR
}

// Refresh, retry and expire mean nothing without secondaries; they are set
// to RFC 1912's usual values.
func newZone(origin, ns string, serial, negTTL uint32) *zone {
	origin = dns.CanonicalName(origin)
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
		Ns:      dns.CanonicalName(ns),
		Mbox:    "hostmaster." + origin,
		Serial:  serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  negTTL,
	}
	z := &zone{origin: origin, wire: wireName(origin), soa: soa, names: map[string]map[uint16][]dns.RR{}}
	z.add(soa)
	return z
}

// add puts rr in the zone, and every name between its owner and the origin.
func (z *zone) add(rr dns.RR) {
	h := rr.Header()
	h.Name = dns.CanonicalName(h.Name)
	h.Class = dns.ClassINET
	if !dns.IsSubDomain(z.origin, h.Name) {
		return
	}
	set, ok := z.names[h.Name]
	if !ok {
		set = map[uint16][]dns.RR{}
		z.names[h.Name] = set
	}
	for _, have := range set[h.Rrtype] {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	set[h.Rrtype] = append(set[h.Rrtype], rr)
	for name := h.Name; name != z.origin; {
		i := strings.IndexByte(name, '.')
		name = name[i+1:]
		if _, ok := z.names[name]; !ok {
			z.names[name] = map[uint16][]dns.RR{}
		}
	}
}

// answer fills m with the zone's answer for name (lower-case) and qtype.
func (z *zone) answer(m *dns.Msg, name string, qtype uint16) {
	m.Authoritative = true
	set, ok := z.names[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{z.soa}
		return
	}
	var rrs []dns.RR
	switch {
	case qtype == dns.TypeANY:
		// RFC 8482 would allow less; a zone this small can afford all.
		for _, s := range set {
			rrs = append(rrs, s...)
		}
	case len(set[qtype]) > 0:
		rrs = append(rrs, set[qtype]...)
	case len(set[dns.TypeCNAME]) > 0:
		// Follow the chain while it stays in the zone; the client's
		// resolver follows it out.
		seen := map[string]bool{name: true}
		for cn := set[dns.TypeCNAME]; len(cn) > 0; {
			rrs = append(rrs, cn...)
			target := dns.CanonicalName(cn[0].(*dns.CNAME).Target)
			next, ok := z.names[target]
			if !ok || seen[target] {
				break
			}
			seen[target] = true
			if len(next[qtype]) > 0 {
				rrs = append(rrs, next[qtype]...)
				break
			}
			cn = next[dns.TypeCNAME]
		}
	}
	if len(rrs) == 0 {
		m.Ns = []dns.RR{z.soa}
		return
	}
	m.Answer = rrs
	// Addresses of in-zone targets save the client a query.
	for _, rr := range rrs {
		var target string
		switch rr := rr.(type) {
		case *dns.SRV:
			target = rr.Target
		case *dns.NS:
			target = rr.Ns
		default:
			continue
		}
		if t, ok := z.names[dns.CanonicalName(target)]; ok {
			m.Extra = append(m.Extra, t[dns.TypeA]...)
			m.Extra = append(m.Extra, t[dns.TypeAAAA]...)
		}
	}
}

// reverseZone is the name under in-addr.arpa or ip6.arpa of prefix p,
// shortened to whole octets (IPv4) or nibbles (IPv6).
func reverseZone(p netip.Prefix) string {
	arpa, err := dns.ReverseAddr(p.Addr().String())
	if err != nil {
		return ""
	}
	labels := dns.SplitDomainName(arpa)
	keep, total := p.Bits()/8, 4
	if p.Addr().Is6() {
		keep, total = p.Bits()/4, 32
	}
	return dns.Fqdn(strings.Join(labels[total-keep:], "."))
}

// reverseAddr reads an address from a complete reverse name.
func reverseAddr(name string) (netip.Addr, bool) {
	name = strings.ToLower(name)
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		labels := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa."), ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
		return a, err == nil
	case strings.HasSuffix(name, ".ip6.arpa."):
		labels := strings.Split(strings.TrimSuffix(name, ".ip6.arpa."), ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			var v byte
			switch c := l[0]; {
			case '0' <= c && c <= '9':
				v = c - '0'
			case 'a' <= c && c <= 'f':
				v = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= v << 4
			} else {
				b[pos/2] |= v
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
