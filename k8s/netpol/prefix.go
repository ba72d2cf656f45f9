package netpol

import (
	"net/netip"
	"sort"
)

// subtract is p less the addresses of ex, as disjoint prefixes: p is
// halved until each half is inside an exception (dropped) or clear of all.
func subtract(p netip.Prefix, ex []netip.Prefix) []netip.Prefix {
	p = p.Masked()
	overlaps := false
	for _, e := range ex {
		e = e.Masked()
		if e.Addr().Is4() != p.Addr().Is4() || !e.Overlaps(p) {
			continue
		}
		if e.Bits() <= p.Bits() {
			return nil // e covers p
		}
		overlaps = true
	}
	if !overlaps {
		return []netip.Prefix{p}
	}
	lo, hi := halves(p)
	return append(subtract(lo, ex), subtract(hi, ex)...)
}

// halves are p's two prefixes one bit longer.
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	b := p.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hi, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(p.Addr(), bits), netip.PrefixFrom(hi, bits)
}

// normalize masks ps, sorts them and drops those inside another: the
// result has no two overlapping prefixes, as an nftables interval set
// needs.
func normalize(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	ms := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		ms[i] = p.Masked()
	}
	sort.Slice(ms, func(i, j int) bool {
		if c := ms[i].Addr().Compare(ms[j].Addr()); c != 0 {
			return c < 0
		}
		return ms[i].Bits() < ms[j].Bits()
	})
	out := ms[:1]
	for _, p := range ms[1:] {
		// Sorted by first address, a prefix overlaps the last one kept
		// only if it lies inside it.
		if last := out[len(out)-1]; last.Addr().Is4() == p.Addr().Is4() && last.Overlaps(p) {
			continue
		}
		out = append(out, p)
	}
	return out
}
