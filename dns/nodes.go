package dns

import (
	"net/netip"

	"github.com/miekg/dns"
)

// Node is a machine of the cluster as DNS sees it: NODE.<domain> has its
// addresses, and each address a PTR record back to the name.
type Node struct {
	Name  string
	Addrs []netip.Addr
}

// TTLs of node names. Addresses follow the address plan and do not move
// while a node is a member; a node that joins is found within the
// negative TTL.
const (
	nodeTTL    = 60
	nodeNegTTL = 30
)

// nodeZone is the node names and their reverse records.
type nodeZone struct {
	fwd      *zone
	ptr      map[netip.Addr]string
	prefixes []netip.Prefix // overlay prefixes: their reverse names are ours
	rev      map[netip.Prefix]*zone
}

func buildNodes(domain, self string, serial uint64, nodes []Node, prefixes []netip.Prefix) *nodeZone {
	origin := dns.CanonicalName(domain)
	ns := origin
	if self != "" {
		ns = self + "." + origin
	}
	nz := &nodeZone{
		fwd:      newZone(origin, ns, uint32(serial), nodeNegTTL),
		ptr:      map[netip.Addr]string{},
		prefixes: prefixes,
		rev:      map[netip.Prefix]*zone{},
	}
	nz.fwd.add(&dns.NS{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNS, Ttl: nodeTTL}, Ns: ns})
	for _, n := range nodes {
		name := dns.CanonicalName(n.Name + "." + origin)
		for _, a := range n.Addrs {
			a = a.Unmap()
			nz.fwd.add(addrRR(name, a, nodeTTL))
			nz.ptr[a] = name
		}
	}
	for _, p := range prefixes {
		if rz := reverseZone(p.Masked()); rz != "" {
			nz.rev[p] = newZone(rz, ns, uint32(serial), nodeNegTTL)
		}
	}
	return nz
}

// addrRR is an A or AAAA record.
func addrRR(name string, a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()}
}

// reverse answers a reverse name of an overlay address; ok is false for
// any other address.
func (nz *nodeZone) reverse(m *dns.Msg, name string, a netip.Addr, qtype uint16) bool {
	for _, p := range nz.prefixes {
		if !p.Contains(a) {
			continue
		}
		rz := nz.rev[p]
		if rz == nil {
			return false
		}
		m.Authoritative = true
		target, ok := nz.ptr[a]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{rz.soa}
		case qtype == dns.TypePTR || qtype == dns.TypeANY:
			m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: nodeTTL}, Ptr: target}}
		default:
			m.Ns = []dns.RR{rz.soa}
		}
		return true
	}
	return false
}
