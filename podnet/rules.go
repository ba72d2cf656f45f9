package podnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hepto-net/hepto/tunnel"
)

// Chains of the pod rules, in the nat and filter tables, each jumped to from
// the built-in chain by one rule with this comment.
const (
	podNATChain     = "HEPTO-POSTROUTING"
	podFilterChain  = "HEPTO-FORWARD"
	podRulesComment = "hepto: pod traffic"
)

// ownPodRoutes makes the node's own pod ranges unreachable but for the
// pods' own routes (/32, /128, more specific): without them, a packet for a
// free address of the range would follow the default route out of the
// uplink.
func ownPodRoutes(own []netip.Prefix) (func(), error) {
	var routes []*netlink.Route
	undo := func() {
		for _, r := range routes {
			netlink.RouteDel(r)
		}
	}
	for _, p := range own {
		r := &netlink.Route{
			Dst:      &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Type:     unix.RTN_UNREACHABLE,
			Protocol: tunnel.RouteProtocol,
			Table:    unix.RT_TABLE_MAIN,
		}
		if err := netlink.RouteReplace(r); err != nil {
			undo()
			return nil, fmt.Errorf("route for pod range %v: %w", p, err)
		}
		routes = append(routes, r)
	}
	return undo, nil
}

// podRules installs, for each family of the node's pod ranges:
//
//	nat POSTROUTING -s OWN -m comment --comment "hepto: pod traffic" -j HEPTO-POSTROUTING
//	HEPTO-POSTROUTING -o hepto0 -j RETURN       # overlay traffic keeps pod addresses
//	HEPTO-POSTROUTING -d PODS -j RETURN         # so does traffic between pods of the node
//	HEPTO-POSTROUTING -j MASQUERADE             # the rest leaves through the uplink
//	filter FORWARD -m comment --comment "hepto: pod traffic" -j HEPTO-FORWARD (first)
//	HEPTO-FORWARD -s PODS -j ACCEPT, -d PODS -j ACCEPT
//
// OWN is the node's pod range, PODS the cluster's. The FORWARD rules let pod
// traffic through hosts whose FORWARD policy is DROP (as Docker sets it).
// Rules left by a daemon that was killed are replaced.
func podRules(tun string, own, cluster []netip.Prefix) (func(), error) {
	var undos []func()
	undo := func() {
		for _, u := range undos {
			u()
		}
	}
	for _, p := range own {
		proto, all := iptables.ProtocolIPv4, netip.Prefix{}
		if p.Addr().Is6() {
			proto = iptables.ProtocolIPv6
		}
		for _, c := range cluster {
			if c.Addr().Is4() == p.Addr().Is4() {
				all = c
			}
		}
		if !all.IsValid() {
			all = p
		}
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			undo()
			return nil, err
		}
		remove := func() { removePodRules(ipt, p) }
		remove()
		undos = append(undos, remove)
		err = errors.Join(
			ipt.NewChain("nat", podNATChain),
			ipt.Append("nat", podNATChain, "-o", tun, "-j", "RETURN"),
			ipt.Append("nat", podNATChain, "-d", all.String(), "-j", "RETURN"),
			ipt.Append("nat", podNATChain, "-j", "MASQUERADE"),
			ipt.Append("nat", "POSTROUTING", natJump(p)...),
			ipt.NewChain("filter", podFilterChain),
			ipt.Append("filter", podFilterChain, "-s", all.String(), "-j", "ACCEPT"),
			ipt.Append("filter", podFilterChain, "-d", all.String(), "-j", "ACCEPT"),
			ipt.Insert("filter", "FORWARD", 1, filterJump...),
		)
		if err != nil {
			undo()
			return nil, fmt.Errorf("pod rules (%v): %w", p, err)
		}
	}
	return undo, nil
}

func natJump(own netip.Prefix) []string {
	return []string{"-s", own.String(), "-m", "comment", "--comment", podRulesComment, "-j", podNATChain}
}

var filterJump = []string{"-m", "comment", "--comment", podRulesComment, "-j", podFilterChain}

func removePodRules(ipt *iptables.IPTables, own netip.Prefix) {
	for _, r := range []struct {
		table, chain string
		spec         []string
	}{{"nat", "POSTROUTING", natJump(own)}, {"filter", "FORWARD", filterJump}} {
		for {
			if ok, err := ipt.Exists(r.table, r.chain, r.spec...); err != nil || !ok {
				break
			}
			if ipt.Delete(r.table, r.chain, r.spec...) != nil {
				break
			}
		}
	}
	ipt.ClearAndDeleteChain("nat", podNATChain)
	ipt.ClearAndDeleteChain("filter", podFilterChain)
}
