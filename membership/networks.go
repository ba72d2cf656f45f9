package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// Networks is the cluster's address plan, fixed at init. Node n (1, 2, ...)
// gets the n-th address of each overlay prefix and the n-th sub-prefix of
// each pod prefix.
type Networks struct {
	OverlayV4 netip.Prefix `json:"overlay_v4"`
	OverlayV6 netip.Prefix `json:"overlay_v6"`
	PodsV4    netip.Prefix `json:"pods_v4"`
	PodsV6    netip.Prefix `json:"pods_v6"`
	PodBitsV4 int          `json:"pod_bits_v4"` // prefix length of one node's pod range
	PodBitsV6 int          `json:"pod_bits_v6"`
	// Kubernetes Services' cluster IPs; a cluster made before they were
	// part of the plan has the defaults (see Services).
	ServicesV4 netip.Prefix `json:"services_v4,omitzero"`
	ServicesV6 netip.Prefix `json:"services_v6,omitzero"`
}

// Defaults stay clear of carrier-grade NAT (100.64.0.0/10), of home LANs
// (192.168.0.0/16, and the 10.0.x.0/24 some boxes use) and of Docker's
// 172.17.0.0/16.
var (
	DefaultOverlayV4  = netip.MustParsePrefix("10.77.0.0/16")
	DefaultPodsV4     = netip.MustParsePrefix("10.78.0.0/16")
	DefaultServicesV4 = netip.MustParsePrefix("10.96.0.0/16")
)

// defaultServicesV6 is <ULA /48>:300::/112, beside the overlay (:0::/64)
// and the pods (:100::/56).
func defaultServicesV6(overlayV6 netip.Prefix) netip.Prefix {
	b := overlayV6.Masked().Addr().As16()
	b[6], b[7] = 0x03, 0x00
	return netip.PrefixFrom(netip.AddrFrom16(b), 112)
}

// Services are the Services' ranges, IPv4 then IPv6.
func (n Networks) Services() []netip.Prefix {
	v4, v6 := n.ServicesV4, n.ServicesV6
	if !v4.IsValid() {
		v4 = DefaultServicesV4
	}
	if !v6.IsValid() {
		v6 = defaultServicesV6(n.OverlayV6)
	}
	return []netip.Prefix{v4.Masked(), v6.Masked()}
}

// DefaultNetworks is the default plan under a ULA /48.
func DefaultNetworks(ula netip.Prefix) Networks {
	b := ula.Masked().Addr().As16()
	overlay := netip.PrefixFrom(netip.AddrFrom16(b), 64)
	b[6] = 0x01 // <ula>:100::/56
	pods := netip.PrefixFrom(netip.AddrFrom16(b), 56)
	return Networks{OverlayV4: DefaultOverlayV4, OverlayV6: overlay, PodsV4: DefaultPodsV4, PodsV6: pods, PodBitsV4: 24, PodBitsV6: 64,
		ServicesV4: DefaultServicesV4, ServicesV6: defaultServicesV6(overlay)}
}

func (n Networks) withDefaults() Networks {
	if !n.OverlayV4.IsValid() {
		n.OverlayV4 = DefaultOverlayV4
	}
	if !n.PodsV4.IsValid() {
		n.PodsV4 = DefaultPodsV4
	}
	if n.PodBitsV4 == 0 {
		n.PodBitsV4 = 24
	}
	if n.PodBitsV6 == 0 {
		n.PodBitsV6 = 64
	}
	n.OverlayV4, n.OverlayV6 = n.OverlayV4.Masked(), n.OverlayV6.Masked()
	n.PodsV4, n.PodsV6 = n.PodsV4.Masked(), n.PodsV6.Masked()
	svc := n.Services()
	n.ServicesV4, n.ServicesV6 = svc[0], svc[1]
	return n
}

// Validate checks families, sizes and overlaps.
func (n Networks) Validate() error {
	for _, c := range []struct {
		name string
		p    netip.Prefix
		v4   bool
	}{{"overlay_v4", n.OverlayV4, true}, {"pods_v4", n.PodsV4, true}, {"overlay_v6", n.OverlayV6, false}, {"pods_v6", n.PodsV6, false}} {
		if !c.p.IsValid() || c.p.Addr().Is4() != c.v4 {
			return fmt.Errorf("address plan: %s %v is not a valid IPv%s prefix", c.name, c.p, map[bool]string{true: "4", false: "6"}[c.v4])
		}
	}
	if n.OverlayV4.Overlaps(n.PodsV4) || n.OverlayV6.Overlaps(n.PodsV6) {
		return errors.New("address plan: overlay and pod prefixes overlap")
	}
	svc := n.Services()
	if !svc[0].Addr().Is4() || !svc[1].Addr().Is6() {
		return errors.New("address plan: services_v4 must be IPv4 and services_v6 IPv6")
	}
	for _, p := range []netip.Prefix{n.OverlayV4, n.PodsV4, n.OverlayV6, n.PodsV6} {
		if p.Overlaps(svc[0]) || p.Overlaps(svc[1]) {
			return fmt.Errorf("address plan: the Services' ranges %v overlap %v", svc, p)
		}
	}
	// The apiserver allocates cluster IPs from at most 2^20 addresses.
	if svc[0].Bits() < 12 || svc[0].Bits() > 28 || svc[1].Bits() < 108 || svc[1].Bits() > 120 {
		return fmt.Errorf("address plan: the Services' ranges %v must be /12 to /28 (IPv4) and /108 to /120 (IPv6)", svc)
	}
	if n.PodBitsV4 < n.PodsV4.Bits() || n.PodBitsV4 > 30 || n.PodBitsV6 < n.PodsV6.Bits() || n.PodBitsV6 > 120 {
		return errors.New("address plan: per-node pod prefix length does not fit the pod prefix")
	}
	if n.OverlayV6.Bits() > 64 {
		return errors.New("address plan: overlay_v6 must be a /64 or larger (joining nodes use its upper half)")
	}
	if n.MaxNodes() < 2 {
		return errors.New("address plan: room for fewer than two nodes")
	}
	return nil
}

// MaxNodes is how many nodes the plan has room for.
func (n Networks) MaxNodes() int {
	m := 1 << 20
	for _, bits := range []int{32 - n.OverlayV4.Bits(), 128 - n.OverlayV6.Bits(), n.PodBitsV4 - n.PodsV4.Bits(), n.PodBitsV6 - n.PodsV6.Bits()} {
		if bits < 20 && (1<<bits)-2 < m {
			m = (1 << bits) - 2
		}
	}
	return m
}

// Node returns node n's overlay addresses and pod ranges.
func (n Networks) Node(index int) (overlay []netip.Addr, pods []netip.Prefix, err error) {
	if index < 1 || index > n.MaxNodes() {
		return nil, nil, fmt.Errorf("node index %d outside the address plan (1..%d)", index, n.MaxNodes())
	}
	overlay = []netip.Addr{offset(n.OverlayV4.Addr(), uint64(index), 0), offset(n.OverlayV6.Addr(), uint64(index), 0)}
	pods = []netip.Prefix{
		netip.PrefixFrom(offset(n.PodsV4.Addr(), uint64(index), 32-n.PodBitsV4), n.PodBitsV4),
		netip.PrefixFrom(offset(n.PodsV6.Addr(), uint64(index), 128-n.PodBitsV6), n.PodBitsV6),
	}
	return overlay, pods, nil
}

// JoinAddr is the temporary overlay address of a joining node: the top
// half of the IPv6 overlay prefix's last /96, never a node's address.
func (n Networks) JoinAddr(id uint32) netip.Addr {
	b := n.OverlayV6.Addr().As16()
	b[8], b[9], b[10], b[11] = 0xff, 0xff, 0xff, 0xff
	binary.BigEndian.PutUint32(b[12:], id)
	return netip.AddrFrom16(b)
}

// offset adds v<<shift to a.
func offset(a netip.Addr, v uint64, shift int) netip.Addr {
	x := new(big.Int).SetBytes(a.AsSlice())
	x.Add(x, new(big.Int).Lsh(new(big.Int).SetUint64(v), uint(shift)))
	out := make([]byte, len(a.AsSlice()))
	x.FillBytes(out)
	r, _ := netip.AddrFromSlice(out)
	return r
}
