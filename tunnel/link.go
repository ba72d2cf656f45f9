package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hepto-net/hepto/key"
)

// kernelLink is the TUN interface as the kernel sees it.
type kernelLink struct {
	name  string
	index int
	own   []netip.Prefix
	log   *slog.Logger
}

func setupLink(name string, addrs []netip.Prefix, log *slog.Logger) (*kernelLink, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", name, err)
	}
	k := &kernelLink{name: name, index: link.Attrs().Index, own: addrs, log: log}
	for _, p := range addrs {
		if p.Addr().Is6() {
			// Hosts that disable IPv6 by default would refuse the address.
			sysctl(log, "/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", "0")
			break
		}
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if p.Addr().Is6() {
			// No duplicate address detection: the address is usable at once.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(link, a); err != nil {
			return nil, fmt.Errorf("add address %v to %s: %w", p, name, err)
		}
	}
	// A relay forwards from the TUN back into it: no ICMP redirects for that.
	sysctl(log, "/proc/sys/net/ipv4/conf/"+name+"/send_redirects", "0")
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", name, err)
	}
	return k, nil
}

func sysctl(log *slog.Logger, path, value string) {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		log.Warn("cannot set sysctl", "path", path, "value", value, "err", err)
	}
}

// RouteProtocol marks the routes the tunnel installs (ip route show proto 104).
const RouteProtocol = 104

// syncRoutes makes the routes via the interface match the peers' allowed IPs.
func (k *kernelLink) syncRoutes(peers []Peer, self key.Public) error {
	want := map[netip.Prefix]bool{}
	for _, p := range peers {
		if p.PublicKey == self {
			continue
		}
		for _, ip := range p.AllowedIPs {
			ip = ip.Masked()
			if k.isOwn(ip) {
				continue
			}
			want[ip] = true
		}
	}
	have, err := k.routes()
	if err != nil {
		return err
	}
	var errs []error
	for dst := range want {
		if err := netlink.RouteReplace(k.route(dst)); err != nil {
			errs = append(errs, fmt.Errorf("route %v via %s: %w", dst, k.name, err))
		}
	}
	for _, dst := range have {
		if !want[dst] {
			if err := netlink.RouteDel(k.route(dst)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("remove route %v: %w", dst, err))
			}
		}
	}
	k.log.Debug("routes synced", "interface", k.name, "routes", len(want))
	return errors.Join(errs...)
}

// isOwn tells prefixes the kernel already routes for our addresses: a route
// for them through the tunnel would take over or shadow the local ones.
func (k *kernelLink) isOwn(p netip.Prefix) bool {
	for _, o := range k.own {
		if p == o.Masked() || (p.IsSingleIP() && p.Addr() == o.Addr()) {
			return true
		}
	}
	return false
}

func (k *kernelLink) route(dst netip.Prefix) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: k.index,
		Dst:       prefixToIPNet(dst),
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
	}
	if dst.Addr().Is4() {
		r.Scope = netlink.SCOPE_LINK
	}
	return r
}

// routes lists the routes we installed through the interface.
func (k *kernelLink) routes() ([]netip.Prefix, error) {
	filter := &netlink.Route{LinkIndex: k.index, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter,
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", k.name, err)
	}
	out := make([]netip.Prefix, 0, len(rs))
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		if p, ok := ipNetToPrefix(r.Dst); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// remove waits for the kernel to drop the interface once the TUN file is
// closed, and deletes it if that does not happen; its routes go with it.
func (k *kernelLink) remove() error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		link, err := netlink.LinkByIndex(k.index)
		if err != nil || link.Attrs().Name != k.name {
			return nil
		}
		if time.Now().After(deadline) {
			if err := netlink.LinkDel(link); err != nil {
				return fmt.Errorf("tunnel: delete %s: %w", k.name, err)
			}
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if a.Is4In6() || (a.Is4() && bits == 128) {
		ones -= 96
	}
	return netip.PrefixFrom(a.Unmap(), ones), true
}
