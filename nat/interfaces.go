package nat

import (
	"net"
	"net/netip"
	"slices"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// hostNet is the host's network as ICE sees it, without the overlay: an
// address of the TUN device or of a pod range must never become a
// candidate, or ICE would find a path through WireGuard itself.
type hostNet struct {
	transport.Net
	skipIfaces []string
	skip       []netip.Prefix
}

func newHostNet(n transport.Net, skipIfaces []string, skip []netip.Prefix) (*hostNet, error) {
	if n == nil {
		var err error
		if n, err = stdnet.NewNet(); err != nil {
			return nil, err
		}
	}
	return &hostNet{Net: n, skipIfaces: skipIfaces, skip: skip}, nil
}

func (h *hostNet) keepIface(name string) bool { return !slices.Contains(h.skipIfaces, name) }

func (h *hostNet) keepIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range h.skip {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Interfaces lists the host's interfaces minus the skipped ones and
// addresses.
func (h *hostNet) Interfaces() ([]*transport.Interface, error) {
	all, err := h.Net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []*transport.Interface
	for _, ifc := range all {
		if !h.keepIface(ifc.Name) {
			continue
		}
		addrs, _ := ifc.Addrs()
		kept := transport.NewInterface(ifc.Interface)
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !h.keepIP(ipn.IP) {
				continue
			}
			kept.AddAddress(a)
		}
		out = append(out, kept)
	}
	return out, nil
}
