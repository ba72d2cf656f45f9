// Package home recognises the home a machine is in: the box its default
// route goes through. Machines behind one box (the same LAN, the same NAT)
// share a home, whatever the box's public address is today.
package home

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// ErrNoGateway is Find's error when the machine has no default route
// through a gateway it has spoken to: no home to recognise yet.
var ErrNoGateway = errors.New("no default gateway with a known link-layer address")

// Find names the machine's home for cluster: a digest of the default
// gateway's address and link-layer (MAC) address, IPv4's first, else
// IPv6's. The digest tells two homes apart without telling anyone what the
// box is.
func Find(cluster string) (string, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		gw, mac, err := gateway(family)
		if err == nil {
			return Fingerprint(cluster, gw, mac), nil
		}
		if !errors.Is(err, ErrNoGateway) {
			return "", err
		}
	}
	return "", ErrNoGateway
}

// Fingerprint is the name of the home behind gateway gw (link-layer
// address mac), in cluster.
func Fingerprint(cluster string, gw netip.Addr, mac net.HardwareAddr) string {
	h := sha256.New()
	fmt.Fprintf(h, "hepto home\x00%s\x00%s\x00%s", cluster, gw.Unmap(), mac)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// gateway is the default route's next hop and its neighbour entry.
func gateway(family int) (netip.Addr, net.HardwareAddr, error) {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst != nil && !isDefault(r.Dst)) || r.Gw == nil {
			continue
		}
		gw, ok := netip.AddrFromSlice(r.Gw)
		if !ok {
			continue
		}
		neighs, err := netlink.NeighList(r.LinkIndex, family)
		if err != nil {
			return netip.Addr{}, nil, fmt.Errorf("neighbours: %w", err)
		}
		for _, n := range neighs {
			if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == gw.Unmap() && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
				return gw.Unmap(), n.HardwareAddr, nil
			}
		}
	}
	return netip.Addr{}, nil, ErrNoGateway
}

func isDefault(p *net.IPNet) bool {
	ones, _ := p.Mask.Size()
	return ones == 0
}
