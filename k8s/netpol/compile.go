package netpol

import (
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Input is what Compile reads: the cluster's pods, namespaces and
// policies, and the node whose pods the plan is for.
type Input struct {
	Node       string
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
	Policies   []*networkingv1.NetworkPolicy
}

// Compile is the plan of in.Node: for each of its pods that a policy
// isolates, the traffic the policies allow, as the NetworkPolicy API
// defines it. Pods with the host's network are neither isolated nor
// peers: their address is the node's. A selector that does not parse
// selects nothing (the apiserver validates them).
func Compile(in Input) Plan {
	c := compiler{namespaces: map[string]*corev1.Namespace{}, policies: map[string][]*networkingv1.NetworkPolicy{},
		selectors: map[*metav1.LabelSelector]labels.Selector{}, peers: map[ruleKey]peerSet{}}
	for _, p := range in.Pods {
		if live(p) {
			c.pods = append(c.pods, p)
		}
	}
	for _, ns := range in.Namespaces {
		c.namespaces[ns.Name] = ns
	}
	for _, pol := range in.Policies {
		c.policies[pol.Namespace] = append(c.policies[pol.Namespace], pol)
	}
	var plan Plan
	for _, p := range c.pods {
		if p.Spec.NodeName != in.Node {
			continue
		}
		if r := c.podRules(p); r.Ingress != nil || r.Egress != nil {
			plan.Pods = append(plan.Pods, r)
		}
	}
	sort.Slice(plan.Pods, func(i, j int) bool { return plan.Pods[i].Key < plan.Pods[j].Key })
	return plan
}

type compiler struct {
	pods       []*corev1.Pod // live ones
	namespaces map[string]*corev1.Namespace
	policies   map[string][]*networkingv1.NetworkPolicy // by namespace
	// What does not depend on the target pod, worked out once: each
	// selector parsed, each rule's peers.
	selectors map[*metav1.LabelSelector]labels.Selector
	peers     map[ruleKey]peerSet
}

// ruleKey names one rule of one policy.
type ruleKey struct {
	pol    *networkingv1.NetworkPolicy
	egress bool
	i      int
}

// peerSet is what a rule's peers match: any peer, or pods and addresses.
type peerSet struct {
	any   bool
	pods  []*corev1.Pod
	addrs []netip.Prefix
}

// live tells a pod that has addresses of its own and may use them.
func live(p *corev1.Pod) bool {
	return !p.Spec.HostNetwork && len(p.Status.PodIPs) > 0 &&
		p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func podIPs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func (c *compiler) podRules(p *corev1.Pod) PodRules {
	r := PodRules{Key: p.Namespace + "/" + p.Name, IPs: podIPs(p)}
	for _, pol := range c.policies[p.Namespace] {
		if !c.selects(&pol.Spec.PodSelector, p.Labels) {
			continue
		}
		ingress, egress := policyTypes(pol)
		if ingress {
			if r.Ingress == nil {
				r.Ingress = &Rules{}
			}
			for i, rule := range pol.Spec.Ingress {
				peers := c.peerSet(ruleKey{pol, false, i}, rule.From)
				r.Ingress.Clauses = append(r.Ingress.Clauses, c.clauses(peers, rule.Ports, p, false)...)
			}
		}
		if egress {
			if r.Egress == nil {
				r.Egress = &Rules{}
			}
			for i, rule := range pol.Spec.Egress {
				peers := c.peerSet(ruleKey{pol, true, i}, rule.To)
				r.Egress.Clauses = append(r.Egress.Clauses, c.clauses(peers, rule.Ports, p, true)...)
			}
		}
	}
	return r
}

// policyTypes are the directions pol isolates: its policyTypes, or by
// default ingress, and egress when it has egress rules.
func policyTypes(pol *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(pol.Spec.PolicyTypes) == 0 {
		return true, len(pol.Spec.Egress) > 0
	}
	for _, t := range pol.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// selects tells whether s matches l; a selector that does not parse
// matches nothing.
func (c *compiler) selects(s *metav1.LabelSelector, l map[string]string) bool {
	sel, ok := c.selectors[s]
	if !ok {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(s); err != nil {
			sel = labels.Nothing()
		}
		c.selectors[s] = sel
	}
	return sel.Matches(labels.Set(l))
}

// peerSet is what a rule's peers match (none: any peer).
func (c *compiler) peerSet(k ruleKey, peers []networkingv1.NetworkPolicyPeer) peerSet {
	if ps, ok := c.peers[k]; ok {
		return ps
	}
	ps := peerSet{any: len(peers) == 0}
	var blocks []netip.Prefix
	for _, peer := range peers {
		if peer.IPBlock != nil {
			blocks = append(blocks, ipBlock(peer.IPBlock)...)
			continue
		}
		ps.pods = append(ps.pods, c.selectPods(k.pol.Namespace, peer)...)
	}
	ps.addrs = normalize(append(blocks, hostPrefixes(ps.pods)...))
	c.peers[k] = ps
	return ps
}

// clauses are one rule's: its peers times its ports (none: any port of
// any protocol). A named port is the target pod's for ingress, and each
// destination pod's own for egress: there it splits the peers by the
// number it names, and matches no ipBlock.
func (c *compiler) clauses(peers peerSet, ports []networkingv1.NetworkPolicyPort, target *corev1.Pod, egress bool) []Clause {
	anyPeer, pods, addrs := peers.any, peers.pods, peers.addrs
	if len(ports) == 0 {
		if !anyPeer && len(addrs) == 0 {
			return nil
		}
		return []Clause{{Any: anyPeer, Peers: addrs}}
	}
	var out []Clause
	for _, port := range ports {
		proto := "tcp"
		if port.Protocol != nil {
			proto = strings.ToLower(string(*port.Protocol))
		}
		switch {
		case port.Port == nil:
			out = append(out, Clause{Any: anyPeer, Peers: addrs, Proto: proto})
		case port.Port.Type == intstr.Int:
			p := uint16(port.Port.IntVal)
			end := p
			if port.EndPort != nil && uint16(*port.EndPort) > p {
				end = uint16(*port.EndPort)
			}
			out = append(out, Clause{Any: anyPeer, Peers: addrs, Proto: proto, Port: p, EndPort: end})
		case !egress:
			if n, ok := namedPort(target, port.Port.StrVal, proto); ok {
				out = append(out, Clause{Any: anyPeer, Peers: addrs, Proto: proto, Port: n, EndPort: n})
			}
		default:
			dests := pods
			if anyPeer {
				dests = c.pods
			}
			byPort := map[uint16][]*corev1.Pod{}
			for _, d := range dests {
				if n, ok := namedPort(d, port.Port.StrVal, proto); ok {
					byPort[n] = append(byPort[n], d)
				}
			}
			for n, ds := range byPort {
				out = append(out, Clause{Peers: normalize(hostPrefixes(ds)), Proto: proto, Port: n, EndPort: n})
			}
		}
	}
	// A clause with peers that match no address allows nothing.
	kept := out[:0]
	for _, cl := range out {
		if cl.Any || len(cl.Peers) > 0 {
			kept = append(kept, cl)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Port < kept[j].Port })
	return kept
}

// selectPods are the live pods a peer's selectors choose: those of the
// policy's namespace, or of the namespaces its namespaceSelector chooses.
func (c *compiler) selectPods(ns string, peer networkingv1.NetworkPolicyPeer) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range c.pods {
		if peer.NamespaceSelector == nil {
			if p.Namespace != ns {
				continue
			}
		} else {
			n, ok := c.namespaces[p.Namespace]
			if !ok || !c.selects(peer.NamespaceSelector, n.Labels) {
				continue
			}
		}
		if peer.PodSelector != nil && !c.selects(peer.PodSelector, p.Labels) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// namedPort is the number of the container port of p called name, for
// proto; sidecars (restartable init containers) count.
func namedPort(p *corev1.Pod, name, proto string) (uint16, bool) {
	containers := p.Spec.Containers
	for _, ic := range p.Spec.InitContainers {
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			containers = append(containers[:len(containers):len(containers)], ic)
		}
	}
	for _, ct := range containers {
		for _, cp := range ct.Ports {
			pp := cp.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if cp.Name == name && strings.EqualFold(string(pp), proto) {
				return uint16(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

func hostPrefixes(pods []*corev1.Pod) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range pods {
		for _, a := range podIPs(p) {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// ipBlock is a block's CIDR less its exceptions; one that does not parse
// is empty.
func ipBlock(b *networkingv1.IPBlock) []netip.Prefix {
	p, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return nil
	}
	var ex []netip.Prefix
	for _, e := range b.Except {
		if q, err := netip.ParsePrefix(e); err == nil {
			ex = append(ex, q)
		}
	}
	return subtract(p, ex)
}
