package publish

import (
	"net"
	"net/netip"
	"slices"
)

// nonPublic are the ranges that are never on the Internet beside those
// netip knows (private, loopback, link-local): shared address space
// (carrier-grade NAT) and IPv6's discard and translation prefixes.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("64:ff9b::/96"),
}

// Public tells whether a can be reached from the Internet: a global
// unicast address outside the private and shared ranges. The
// documentation ranges count as public: the lab's Internet uses them.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	return !slices.ContainsFunc(nonPublic, func(p netip.Prefix) bool { return p.Contains(a) })
}

// LocalPublicAddrs are this machine's public addresses, on any interface
// (the overlay's are private).
func LocalPublicAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if ip := p.Addr().Unmap(); Public(ip) && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}
