package podnet

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/coreos/go-iptables/iptables"
)

// The kernel delivers a packet addressed to one of the host's addresses
// whatever interface it came in on, so a neighbour on the home LAN could
// route to an overlay address and reach the control port, DNS or metrics
// without going through WireGuard. overlayRules accepts packets to the
// overlay prefixes only from the TUN device, pod veths (both named
// "hep…") and loopback:
//
//	filter INPUT -d OVERLAY -m comment --comment "hepto: overlay only through the tunnel" -j HEPTO-INPUT
//	HEPTO-INPUT -i lo -j RETURN
//	HEPTO-INPUT -i hep+ -j RETURN
//	HEPTO-INPUT -j DROP
const (
	overlayChain   = "HEPTO-INPUT"
	overlayComment = "hepto: overlay only through the tunnel"
)

func overlayJump(p netip.Prefix) []string {
	return []string{"-d", p.String(), "-m", "comment", "--comment", overlayComment, "-j", overlayChain}
}

// overlayRules installs the rules and returns what removes them.
func overlayRules(overlay []netip.Prefix) (func(), error) {
	var undos []func()
	undo := func() {
		for _, u := range undos {
			u()
		}
	}
	for _, p := range overlay {
		proto := iptables.ProtocolIPv4
		if p.Addr().Is6() {
			proto = iptables.ProtocolIPv6
		}
		ipt, err := iptables.NewWithProtocol(proto)
		if err != nil {
			undo()
			return nil, err
		}
		remove := func() { removeOverlayRules(ipt, p) }
		remove() // left by a crash
		undos = append(undos, remove)
		err = errors.Join(
			ipt.NewChain("filter", overlayChain),
			ipt.Append("filter", overlayChain, "-i", "lo", "-j", "RETURN"),
			ipt.Append("filter", overlayChain, "-i", "hep+", "-j", "RETURN"),
			ipt.Append("filter", overlayChain, "-j", "DROP"),
			ipt.Insert("filter", "INPUT", 1, overlayJump(p)...),
		)
		if err != nil {
			undo()
			return nil, fmt.Errorf("overlay rules (%v): %w", p, err)
		}
	}
	return undo, nil
}

func removeOverlayRules(ipt *iptables.IPTables, p netip.Prefix) {
	for {
		if ok, err := ipt.Exists("filter", "INPUT", overlayJump(p)...); err != nil || !ok {
			break
		}
		if ipt.Delete("filter", "INPUT", overlayJump(p)...) != nil {
			break
		}
	}
	ipt.ClearAndDeleteChain("filter", overlayChain)
}
