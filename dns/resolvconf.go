package dns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/miekg/dns"
)

// DefaultResolvConf is where the node's own resolvers are read at start.
const DefaultResolvConf = "/etc/resolv.conf"

// Upstreams reads the nameservers of a resolv.conf, leaving out those in
// self: the server's own addresses, for a node whose resolv.conf points at
// hepto would forward to itself.
func Upstreams(path string, self []netip.AddrPort) ([]netip.AddrPort, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns: resolvers: %w", err)
	}
	var ups []netip.AddrPort
	for _, s := range cc.Servers {
		ap, err := ParseAddrPort(net.JoinHostPort(s, cc.Port))
		if err != nil {
			continue
		}
		if !slices.Contains(self, ap) && !slices.Contains(ups, ap) {
			ups = append(ups, ap)
		}
	}
	return ups, nil
}

// ParseAddrPort reads IP or IP:PORT (port 53 by default), IPv6 in brackets
// when it has a port; a zone, as in fe80::1%eth0, is kept.
func ParseAddrPort(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dns: address %q: want IP or IP:PORT", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dns: address %q: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dns: address %q: bad port", s)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}
