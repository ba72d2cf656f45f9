package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/cni/netconf"
)

// Add gives the pod a veth with an address of each of the node's pod ranges.
func Add(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	netns, err := openNetns(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()

	st, err := ipam.Open(conf.IPAMDir())
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot open the address store", err.Error())
	}
	att, fresh, err := st.Acquire(args.ContainerID, args.IfName, conf.PodCIDRs)
	if err == nil {
		err = st.Commit()
	}
	st.Close()
	if errors.Is(err, ipam.ErrExhausted) {
		// Clears up when pods go: the runtime may try again.
		return types.NewError(types.ErrTryAgainLater, "pod range exhausted", err.Error())
	}
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot reserve addresses", err.Error())
	}

	res, err := attach(conf, args, netns, att)
	if err != nil {
		// Addresses reserved by an earlier ADD stay until DEL: the interface
		// that failed here may be that earlier ADD's, and still in use.
		if fresh {
			if rerr := release(conf, args.ContainerID, args.IfName); rerr != nil {
				err = fmt.Errorf("%w (and %v)", err, rerr)
			}
		}
		return err
	}
	out, err := chain(conf.PrevResult, res)
	if err != nil {
		return err
	}
	return types.PrintResult(out, conf.CNIVersion)
}

// openNetns opens CNI_NETNS, refusing the plugin's own namespace: set up as
// a pod's, the node's would lose its routes.
func openNetns(path string) (ns.NetNS, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is not a network namespace", err.Error())
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(n.Fd()), &a) == nil && unix.Stat("/proc/thread-self/ns/net", &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
		n.Close()
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is the plugin's own network namespace", path)
	}
	return n, nil
}

// attach makes the veth pair, its addresses, routes and neighbours. On
// failure it removes what it made.
func attach(conf *netconf.Conf, args *skel.CmdArgs, netns ns.NetNS, att ipam.Attachment) (*current.Result, error) {
	hostName := hostVethName(args.ContainerID, args.IfName)
	mac := podMAC(att.IPs)
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()

	// One request makes both ends, the pod's straight in its namespace.
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.HardwareAddr, la.Flags = hostName, conf.MTU, hostMAC, net.FlagUp
	veth := &netlink.Veth{LinkAttrs: la, PeerName: args.IfName, PeerHardwareAddr: mac,
		PeerNamespace: netlink.NsFd(int(netns.Fd())), PeerTxQLen: -1}
	if err := h.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, taken(netns, args.IfName, hostName)
		}
		return nil, fmt.Errorf("create veth %s: %w", hostName, err)
	}
	done := false
	defer func() {
		if !done {
			h.LinkDel(veth)
		}
	}()

	if err := netns.Do(func(ns.NetNS) error { return podSide(args.IfName, att.IPs) }); err != nil {
		return nil, err
	}
	if err := hostSide(h, veth, mac, att.IPs); err != nil {
		return nil, err
	}
	done = true

	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: hostName, Mac: hostMAC.String(), Mtu: conf.MTU},
			{Name: args.IfName, Mac: mac.String(), Mtu: conf.MTU, Sandbox: args.Netns},
		},
	}
	for _, ip := range att.IPs {
		gw := gatewayFor(ip)
		res.IPs = append(res.IPs, &current.IPConfig{Interface: current.Int(1), Address: *hostPrefix(ip), Gateway: gw.AsSlice()})
		res.Routes = append(res.Routes, &types.Route{Dst: *defaultDst(ip), GW: gw.AsSlice()})
	}
	return res, nil
}

// taken says which name of the pair exists already.
func taken(netns ns.NetNS, ifname, hostName string) error {
	inPod := false
	netns.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName(ifname)
		inPod = err == nil
		return nil
	})
	if inPod {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME is taken",
			fmt.Sprintf("the container already has an interface %s", ifname))
	}
	return fmt.Errorf("host interface %s exists already", hostName)
}

// podSide runs in the pod's namespace.
func podSide(ifname string, ips []netip.Addr) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink in the pod: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("pod interface %s: %w", ifname, err)
	}
	idx := l.Attrs().Index
	for _, ip := range ips {
		a := &netlink.Addr{IPNet: hostPrefix(ip)}
		if ip.Is6() {
			// The address is the pod's alone: usable at once.
			a.Flags = unix.IFA_F_NODAD
		}
		err := h.AddrAdd(l, a)
		if ip.Is6() && errors.Is(err, unix.EACCES) && enableIPv6(ifname) == nil {
			err = h.AddrAdd(l, a)
		}
		if err != nil {
			return fmt.Errorf("add %v to %s: %w", ip, ifname, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", ifname, err)
	}
	for _, ip := range ips {
		gw := gatewayFor(ip)
		if err := h.NeighSet(neighbour(idx, gw, hostMAC)); err != nil {
			return fmt.Errorf("gateway %v on %s: %w", gw, ifname, err)
		}
		r := &netlink.Route{LinkIndex: idx, Dst: defaultDst(ip), Gw: gw.AsSlice(), Flags: int(netlink.FLAG_ONLINK)}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("default route via %v: %w", gw, err)
		}
	}
	return nil
}

// hostSide routes the pod's addresses to its veth.
func hostSide(h *netlink.Handle, veth *netlink.Veth, mac net.HardwareAddr, ips []netip.Addr) error {
	idx := veth.Attrs().Index
	for _, ip := range ips {
		r := &netlink.Route{LinkIndex: idx, Dst: hostPrefix(ip)}
		if ip.Is4() {
			r.Scope = netlink.SCOPE_LINK
		}
		err := h.RouteAdd(r)
		if ip.Is6() && err != nil && enableIPv6(veth.Name) == nil {
			// A host that disables IPv6 by default has it off on new links.
			err = h.RouteAdd(r)
		}
		if err != nil {
			return fmt.Errorf("route %v to %s: %w", ip, veth.Name, err)
		}
		if err := h.NeighSet(neighbour(idx, ip, mac)); err != nil {
			return fmt.Errorf("neighbour %v on %s: %w", ip, veth.Name, err)
		}
	}
	return nil
}

func enableIPv6(ifname string) error {
	return os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("0"), 0o644)
}

// chain appends this plugin's result to the one of plugins before it.
func chain(prev types.Result, res *current.Result) (*current.Result, error) {
	if prev == nil {
		return res, nil
	}
	p, err := current.NewResultFromResult(prev)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
	}
	shift := len(p.Interfaces)
	for _, ip := range res.IPs {
		ip.Interface = current.Int(*ip.Interface + shift)
	}
	p.Interfaces = append(p.Interfaces, res.Interfaces...)
	p.IPs = append(p.IPs, res.IPs...)
	p.Routes = append(p.Routes, res.Routes...)
	return p, nil
}
