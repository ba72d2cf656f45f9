package cni

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Each pod has a veth pair and no bridge: the node routes every pod address
// to its veth (/32, /128), and the pod routes everything to a gateway
// address that nobody holds. Neighbour entries are static on both sides, so
// that the link needs no ARP or neighbour discovery (and no proxy ARP), and
// works the moment it is up.
var (
	gateway4 = netip.MustParseAddr("169.254.1.1")
	gateway6 = netip.MustParseAddr("fe80::1")
	// hostMAC is every host-side veth's address: each veth is a link of
	// its own, so one fixed address is enough, and the pod knows it in
	// advance.
	hostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
)

// hostVethName names the host side of an attachment: "hep" and 12 hex
// digits of a hash of the container ID and interface name, so that DEL and
// GC find it from those alone.
func hostVethName(containerID, ifname string) string {
	h := fnv.New64a()
	h.Write([]byte(containerID + "\x00" + ifname))
	return "hep" + hex.EncodeToString(binary.BigEndian.AppendUint64(nil, h.Sum64())[:6])
}

// podMAC is a locally administered address made from the pod's address:
// 0a:58 and its IPv4 address, or the end of its IPv6 address.
func podMAC(ips []netip.Addr) net.HardwareAddr {
	var tail [4]byte
	for _, ip := range ips {
		if ip.Is4() {
			tail = ip.As4()
			break
		}
		b := ip.As16()
		copy(tail[:], b[12:])
	}
	return net.HardwareAddr{0x0a, 0x58, tail[0], tail[1], tail[2], tail[3]}
}

func gatewayFor(ip netip.Addr) netip.Addr {
	if ip.Is4() {
		return gateway4
	}
	return gateway6
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func hostPrefix(ip netip.Addr) *net.IPNet {
	return &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(ip.BitLen(), ip.BitLen())}
}

func defaultDst(ip netip.Addr) *net.IPNet {
	return &net.IPNet{IP: make(net.IP, ip.BitLen()/8), Mask: net.CIDRMask(0, ip.BitLen())}
}

// neighbour is a permanent entry: ip is at mac on the link.
func neighbour(index int, ip netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       family(ip),
		State:        netlink.NUD_PERMANENT,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// deleteLink removes a link by name; a missing one is no error.
func deleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}
