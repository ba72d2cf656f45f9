package netpol

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"sigs.k8s.io/knftables"
)

// Table is the nftables table (family inet) that holds the node's
// policies.
const Table = "hepto-netpol"

// The verdict maps: a pod address to the jump to its chain.
const (
	ingressV4 = "ingress-v4"
	ingressV6 = "ingress-v6"
	egressV4  = "egress-v4"
	egressV6  = "egress-v6"
)

// write puts into tx the whole table for plan, replacing the last one in
// the same transaction, so that a pod is never unchecked in between.
//
// Base chains: forward (pod to pod, on this node or through the tunnel)
// and input (a pod to its node's own addresses). After conntrack's
// established and related traffic, a packet from a pod with egress rules
// jumps to its egress chain, which returns when a clause allows it and
// drops it otherwise; then a packet to a pod with ingress rules jumps to
// its ingress chain, which accepts or drops. The node's own traffic to its
// pods (probes) takes the output hook, where nothing is checked.
func write(tx *knftables.Transaction, plan Plan) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("NetworkPolicy of this node's pods")})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("NetworkPolicy of this node's pods")})
	for _, m := range []struct{ name, key string }{
		{ingressV4, "ipv4_addr"}, {ingressV6, "ipv6_addr"}, {egressV4, "ipv4_addr"}, {egressV6, "ipv6_addr"},
	} {
		tx.Add(&knftables.Map{Name: m.name, Type: m.key + " : verdict"})
	}
	base := func(name string, hook knftables.BaseChainHook) {
		tx.Add(&knftables.Chain{Name: name, Type: knftables.PtrTo(knftables.FilterType),
			Hook: knftables.PtrTo(hook), Priority: knftables.PtrTo(knftables.FilterPriority)})
	}
	base("forward", knftables.ForwardHook)
	base("input", knftables.InputHook)
	rules := map[string][]string{
		"forward": {
			"ct state established,related accept",
			"ip saddr vmap @" + egressV4, "ip6 saddr vmap @" + egressV6,
			"ip daddr vmap @" + ingressV4, "ip6 daddr vmap @" + ingressV6,
		},
		"input": {
			"ct state established,related accept",
			// Neighbour discovery: a pod without it reaches nothing.
			"icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept",
			"ip saddr vmap @" + egressV4, "ip6 saddr vmap @" + egressV6,
		},
	}
	for _, chain := range []string{"forward", "input"} {
		for _, r := range rules[chain] {
			tx.Add(&knftables.Rule{Chain: chain, Rule: r})
		}
	}
	seen := map[string]bool{} // map/address: one pod per address
	for _, p := range plan.Pods {
		if p.Ingress != nil {
			chain := chainName("in", p.Key)
			podChain(tx, chain, p.Key, p.Ingress, "saddr", "accept")
			elements(tx, seen, p.IPs, ingressV4, ingressV6, chain)
		}
		if p.Egress != nil {
			chain := chainName("out", p.Key)
			podChain(tx, chain, p.Key, p.Egress, "daddr", "return")
			elements(tx, seen, p.IPs, egressV4, egressV6, chain)
		}
	}
}

// chainName is a pod's chain in one direction: a hash of its key, as a
// key may be longer than a chain name and hold any character.
func chainName(dir, key string) string {
	h := sha256.Sum256([]byte(key))
	return dir + "-" + hex.EncodeToString(h[:8])
}

// podChain is one pod's chain: a rule per clause and family, with
// verdict when it matches, and drop after the last.
func podChain(tx *knftables.Transaction, chain, key string, r *Rules, peer, verdict string) {
	comment := key
	if len(comment) > knftables.CommentLengthMax {
		comment = comment[:knftables.CommentLengthMax]
	}
	tx.Add(&knftables.Chain{Name: chain, Comment: &comment})
	for _, c := range r.Clauses {
		for _, rule := range clauseRules(c, peer, verdict) {
			tx.Add(&knftables.Rule{Chain: chain, Rule: rule})
		}
	}
	tx.Add(&knftables.Rule{Chain: chain, Rule: "drop"})
}

// clauseRules are a clause's rules: one per address family with peers, or
// one for both when any peer will do.
func clauseRules(c Clause, peer, verdict string) []string {
	match := ""
	if c.Proto != "" {
		match = "meta l4proto " + c.Proto
		switch {
		case c.Port != 0 && c.EndPort > c.Port:
			match += fmt.Sprintf(" th dport %d-%d", c.Port, c.EndPort)
		case c.Port != 0:
			match += fmt.Sprintf(" th dport %d", c.Port)
		}
	}
	if c.Any {
		return []string{strings.TrimSpace(match + " " + verdict)}
	}
	var v4, v6 []string
	for _, p := range c.Peers {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	var out []string
	for _, f := range []struct {
		family string
		addrs  []string
	}{{"ip", v4}, {"ip6", v6}} {
		if len(f.addrs) == 0 {
			continue
		}
		r := fmt.Sprintf("%s %s { %s }", f.family, peer, strings.Join(f.addrs, ", "))
		if match != "" {
			r += " " + match
		}
		out = append(out, r+" "+verdict)
	}
	return out
}

// elements map each of ips to chain, in the map of its family.
func elements(tx *knftables.Transaction, seen map[string]bool, ips []netip.Addr, v4, v6, chain string) {
	for _, a := range ips {
		m := v4
		if a.Is6() {
			m = v6
		}
		if seen[m+"/"+a.String()] {
			continue
		}
		seen[m+"/"+a.String()] = true
		tx.Add(&knftables.Element{Map: m, Key: []string{a.String()}, Value: []string{"jump " + chain}})
	}
}
