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

// podRules installs, for each family of the overlay (OWN: the node's pod
// range, if any; PODS and SERVICES: the cluster's):
//
//	nat POSTROUTING -s OWN -m comment --comment "hepto: pod traffic" -j HEPTO-POSTROUTING
//	HEPTO-POSTROUTING -o hepto0 -j RETURN       # overlay traffic keeps pod addresses
//	HEPTO-POSTROUTING -d PODS -j RETURN         # so does traffic between pods of the node
//	HEPTO-POSTROUTING -j MASQUERADE             # the rest leaves through the uplink
//	filter FORWARD -m comment --comment "hepto: pod traffic" -j HEPTO-FORWARD (first)
//	HEPTO-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT  # answers
//	HEPTO-FORWARD -i hepto0 -o hepto0 -j ACCEPT # a relay's forwarding
//	HEPTO-FORWARD -i hepto0 -d PODS -j ACCEPT   # to this node's pods
//	HEPTO-FORWARD -i hepto0 -j DROP             # never from the tunnel to the LAN or the Internet
//	HEPTO-FORWARD -i hep+ -s PODS -j ACCEPT     # pods' own traffic (hep+ here: their veths)
//	HEPTO-FORWARD -d PODS -m conntrack --ctstate DNAT ! --ctorigdst SERVICES -j ACCEPT  # published ports
//	HEPTO-FORWARD -d PODS -j DROP               # the LAN reaches no pod, nor a ClusterIP
//	HEPTO-FORWARD -o hepto0 -j DROP             # nor the overlay through this node
//
// The pod rules only where the node has pods. The FORWARD rules let pod
// traffic through hosts whose FORWARD policy is DROP (as Docker sets
// it), and keep a home's LAN out of the pods, the Services and the
// overlay whatever routes a neighbour sets: only a port the user
// published (a hostPort) lets it in. Rules left by a daemon that was
// killed are replaced.
func podRules(tun string, own, cluster, services []netip.Prefix) (func(), error) {
	var undos []func()
	undo := func() {
		for _, u := range undos {
			u()
		}
	}
	for _, proto := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		is4 := proto == iptables.ProtocolIPv4
		pick := func(ps []netip.Prefix) netip.Prefix {
			for _, p := range ps {
				if p.IsValid() && p.Addr().Is4() == is4 {
					return p
				}
			}
			return netip.Prefix{}
		}
		mine, all, svc := pick(own), pick(cluster), pick(services)
		if !all.IsValid() {
			all = mine
		}
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			undo()
			return nil, err
		}
		remove := func() { removePodRules(ipt, mine) }
		remove()
		undos = append(undos, remove)
		var errs []error
		add := func(err error) { errs = append(errs, err) }
		add(ipt.NewChain("filter", podFilterChain))
		add(ipt.Append("filter", podFilterChain, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"))
		add(ipt.Append("filter", podFilterChain, "-i", tun, "-o", tun, "-j", "ACCEPT"))
		if mine.IsValid() {
			add(ipt.Append("filter", podFilterChain, "-i", tun, "-d", all.String(), "-j", "ACCEPT"))
		}
		add(ipt.Append("filter", podFilterChain, "-i", tun, "-j", "DROP"))
		if mine.IsValid() {
			add(ipt.Append("filter", podFilterChain, "-i", "hep+", "-s", all.String(), "-j", "ACCEPT"))
			published := []string{"-d", all.String(), "-m", "conntrack", "--ctstate", "DNAT"}
			if svc.IsValid() {
				published = append(published, "!", "--ctorigdst", svc.String())
			}
			add(ipt.Append("filter", podFilterChain, append(published, "-j", "ACCEPT")...))
			add(ipt.Append("filter", podFilterChain, "-d", all.String(), "-j", "DROP"))
		}
		add(ipt.Append("filter", podFilterChain, "-o", tun, "-j", "DROP"))
		add(ipt.Insert("filter", "FORWARD", 1, filterJump...))
		if mine.IsValid() {
			add(ipt.NewChain("nat", podNATChain))
			add(ipt.Append("nat", podNATChain, "-o", tun, "-j", "RETURN"))
			add(ipt.Append("nat", podNATChain, "-d", all.String(), "-j", "RETURN"))
			add(ipt.Append("nat", podNATChain, "-j", "MASQUERADE"))
			add(ipt.Append("nat", "POSTROUTING", natJump(mine)...))
			add(localnetRule(ipt, is4))
		}
		if err := errors.Join(errs...); err != nil {
			undo()
			return nil, fmt.Errorf("pod rules (%v): %w", proto, err)
		}
	}
	return undo, nil
}

// localnetRule: portmap sets route_localnet for hostPorts on 127.0.0.1,
// which would let a pod send to the host's loopback services (the local
// API, the apiserver endpoint, metrics). As kube-proxy does when it sets
// it, packets for 127.0.0.0/8 from anything but lo are dropped, but for
// the connections a DNAT made.
//
//	filter INPUT -d 127.0.0.0/8 ! -i lo -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "hepto: pod traffic" -j DROP
func localnetRule(ipt *iptables.IPTables, is4 bool) error {
	if !is4 {
		return nil // IPv6 has no route_localnet: ::1 is never routed
	}
	return ipt.Insert("filter", "INPUT", 1, localnetSpec...)
}

var localnetSpec = []string{"-d", "127.0.0.0/8", "!", "-i", "lo", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-m", "comment", "--comment", podRulesComment, "-j", "DROP"}

func natJump(own netip.Prefix) []string {
	return []string{"-s", own.String(), "-m", "comment", "--comment", podRulesComment, "-j", podNATChain}
}

var filterJump = []string{"-m", "comment", "--comment", podRulesComment, "-j", podFilterChain}

func removePodRules(ipt *iptables.IPTables, own netip.Prefix) {
	rules := []struct {
		table, chain string
		spec         []string
	}{{"filter", "FORWARD", filterJump}, {"filter", "INPUT", localnetSpec}}
	if own.IsValid() {
		rules = append(rules, struct {
			table, chain string
			spec         []string
		}{"nat", "POSTROUTING", natJump(own)})
	}
	for _, r := range rules {
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
