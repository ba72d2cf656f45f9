package cni

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/cni/netconf"
)

// Check verifies that the attachment still is what ADD made of it: the
// reservation, both ends of the veth, the addresses, the routes.
func Check(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult", "")
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
	}
	atts, err := ipam.Load(conf.IPAMDir())
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot read the address store", err.Error())
	}
	var att ipam.Attachment
	found := false
	for _, a := range atts {
		if a.ContainerID == args.ContainerID && a.IfName == args.IfName {
			att, found = a, true
		}
	}
	if !found {
		return fmt.Errorf("no addresses reserved for %s/%s", args.ContainerID, args.IfName)
	}
	if err := checkPrevResult(prev, args, att.IPs); err != nil {
		return err
	}
	netns, err := openNetns(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()

	hostName := hostVethName(args.ContainerID, args.IfName)
	host, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("host interface %s: %w", hostName, err)
	}
	if err := checkLink(host, conf.MTU); err != nil {
		return err
	}
	for _, ip := range att.IPs {
		rs, err := netlink.RouteListFiltered(family(ip), &netlink.Route{Dst: hostPrefix(ip)}, netlink.RT_FILTER_DST)
		if err != nil || !slices.ContainsFunc(rs, func(r netlink.Route) bool { return r.LinkIndex == host.Attrs().Index }) {
			return fmt.Errorf("no route to %v through %s", ip, hostName)
		}
	}
	return netns.Do(func(ns.NetNS) error {
		pod, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("pod interface %s: %w", args.IfName, err)
		}
		if err := checkLink(pod, conf.MTU); err != nil {
			return err
		}
		if pod.Attrs().ParentIndex != host.Attrs().Index {
			return fmt.Errorf("%s is not the peer of %s", args.IfName, hostName)
		}
		addrs, err := netlink.AddrList(pod, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("addresses of %s: %w", args.IfName, err)
		}
		routes, err := netlink.RouteList(pod, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("routes of %s: %w", args.IfName, err)
		}
		for _, ip := range att.IPs {
			if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IPNet.String() == hostPrefix(ip).String() }) {
				return fmt.Errorf("%s lacks %v", args.IfName, hostPrefix(ip))
			}
			gw := gatewayFor(ip)
			if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return isDefault(r, ip) && r.Gw.Equal(gw.AsSlice()) }) {
				return fmt.Errorf("%s has no default route via %v", args.IfName, gw)
			}
		}
		return nil
	})
}

// checkPrevResult checks that prevResult lists the pod's interface with the
// reserved addresses.
func checkPrevResult(prev *current.Result, args *skel.CmdArgs, want []netip.Addr) error {
	idx := slices.IndexFunc(prev.Interfaces, func(i *current.Interface) bool {
		return i.Name == args.IfName && i.Sandbox == args.Netns
	})
	if idx < 0 {
		return fmt.Errorf("prevResult lists no interface %s in %s", args.IfName, args.Netns)
	}
	var got []netip.Addr
	for _, c := range prev.IPs {
		if c.Interface != nil && *c.Interface == idx {
			if a, ok := netip.AddrFromSlice(c.Address.IP); ok {
				got = append(got, a.Unmap())
			}
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("prevResult has addresses %v, the reservation %v", got, want)
	}
	return nil
}

func checkLink(l netlink.Link, mtu int) error {
	a := l.Attrs()
	if l.Type() != "veth" {
		return fmt.Errorf("%s is a %s, not a veth", a.Name, l.Type())
	}
	if a.Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down", a.Name)
	}
	if a.MTU != mtu {
		return fmt.Errorf("%s has mtu %d, want %d", a.Name, a.MTU, mtu)
	}
	return nil
}

func isDefault(r netlink.Route, ip netip.Addr) bool {
	if r.Family != 0 && r.Family != family(ip) {
		return false
	}
	if r.Dst == nil {
		return (r.Gw.To4() != nil) == ip.Is4()
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0 && (r.Dst.IP.To4() != nil) == ip.Is4()
}
