package k8s

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hepto-net/hepto/k8s/publish"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/nat"
)

// LoadBalancerClass is the class of the Services hepto publishes through
// the anchors: those of type LoadBalancer that name it, or no class.
const LoadBalancerClass = "hepto.net/anchors"

// siteLive is how recently a site's node lease must have been seen
// renewed (every 15 s) for the site to be published on: a stopped anchor
// leaves the Services' addresses within siteLive and a check (5 s). A
// lease already there when the controller starts counts as renewed then.
const siteLive = 22 * time.Second

// site is a node that can carry published Services: an anchor, or a home
// with global IPv6 (for the Services that ask for it).
type site struct {
	name     string
	anchor   bool
	addrs    []netip.Addr
	reserved []ports.Range // ports it needs itself on those addresses
	live     bool
}

// sites are the nodes that can publish: those with a Node (kube-proxy
// carries the traffic there) and public addresses. An anchor's address
// and port come from its signed endpoint, the rest from its Node's
// annotations; a home has only its global IPv6 there.
func sites(members []membership.Node, nodes []*corev1.Node, renewed map[string]time.Time, now time.Time) []site {
	byName := map[string]*corev1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	var out []site
	for _, m := range members {
		node := byName[m.Name]
		if node == nil {
			continue
		}
		s := site{name: m.Name, anchor: m.IsAnchor(), live: now.Sub(renewed[m.Name]) <= siteLive}
		if s.anchor {
			s.reserved = append(s.reserved, ports.Range{Proto: "udp", Min: nat.ServerPort, Max: nat.ServerPort},
				ports.Range{Proto: "tcp", Min: nat.ServerPort, Max: nat.ServerPort})
			if host, port, err := net.SplitHostPort(m.Endpoint); err == nil {
				if a, err := netip.ParseAddr(host); err == nil {
					s.addrs = append(s.addrs, a.Unmap())
				}
				if p, err := strconv.ParseUint(port, 10, 16); err == nil {
					s.reserved = append(s.reserved, ports.Range{Proto: "udp", Min: uint16(p), Max: uint16(p)})
				}
			}
		}
		for _, f := range strings.Split(node.Annotations[publish.PublicIPs], ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(f))
			if err != nil || !publish.Public(a) || (!s.anchor && !a.Is6()) || slices.Contains(s.addrs, a) {
				continue
			}
			s.addrs = append(s.addrs, a)
		}
		if r, err := ports.Parse(node.Annotations[publish.ReservedPorts]); err == nil {
			s.reserved = append(s.reserved, r...)
		}
		if len(s.addrs) > 0 {
			slices.SortFunc(s.addrs, netip.Addr.Compare)
			out = append(out, s)
		}
	}
	return out
}

// decision is what one Service's status should say.
type decision struct {
	service *corev1.Service
	ingress []corev1.LoadBalancerIngress
	cond    metav1.Condition
}

func refused(reason, format string, args ...any) metav1.Condition {
	return metav1.Condition{Type: "Published", Status: metav1.ConditionFalse, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// decide publishes the Services of type LoadBalancer of hepto's class
// (or none) on the live anchors' addresses (those it names, if it names
// some), and for those asking, on the global IPv6 of the homes running
// its pods (endpoints: Service → nodes). Oldest first: a port that a site
// needs itself, or that an older Service has on the same address, is
// refused, saying why.
func decide(services []*corev1.Service, sites []site, endpoints map[string][]string) []decision {
	var ours []*corev1.Service
	for _, s := range services {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && (s.Spec.LoadBalancerClass == nil || *s.Spec.LoadBalancerClass == LoadBalancerClass) {
			ours = append(ours, s)
		}
	}
	slices.SortFunc(ours, func(a, b *corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	taken := map[string]string{} // "203.0.113.1 8080/tcp": the Service that has it
	var out []decision
	for _, s := range ours {
		key := s.Namespace + "/" + s.Name
		d := decision{service: s}
		if v := s.Annotations[publish.ProxyProtocol]; v != "" && v != "v2" {
			d.cond = refused("BadAnnotation", "%s is %q: the one version is v2", publish.ProxyProtocol, v)
			out = append(out, d)
			continue
		}
		targets := targetSites(s, sites, endpoints[key])
		if len(targets) == 0 {
			d.cond = refused("NoAnchor", "no live anchor to publish on%s", namedAnchors(s))
			out = append(out, d)
			continue
		}
		want := servicePorts(s)
		if site, port, ok := reservedOn(targets, want); ok {
			d.cond = refused("PortReserved", "port %s is %s's own (WireGuard and ICE, STUN, TURN's relays): choose another", port, site)
			out = append(out, d)
			continue
		}
		var claims []string
		conflict := ""
		for _, t := range targets {
			for _, a := range t.addrs {
				for _, p := range want {
					c := a.String() + " " + p.String()
					if taken[c] != "" && conflict == "" {
						conflict = fmt.Sprintf("port %s on %s is published already, by the older Service %s", p, a, taken[c])
					}
					claims = append(claims, c)
				}
			}
		}
		if conflict != "" {
			d.cond = refused("PortTaken", "%s", conflict)
			out = append(out, d)
			continue
		}
		for _, c := range claims {
			taken[c] = key
		}
		var names []string
		for _, t := range targets {
			names = append(names, t.name)
			for _, a := range t.addrs {
				mode := ipMode(s, a)
				d.ingress = append(d.ingress, corev1.LoadBalancerIngress{IP: a.String(), IPMode: &mode})
			}
		}
		slices.SortFunc(d.ingress, func(x, y corev1.LoadBalancerIngress) int {
			return netip.MustParseAddr(x.IP).Compare(netip.MustParseAddr(y.IP))
		})
		d.cond = metav1.Condition{Type: "Published", Status: metav1.ConditionTrue, Reason: "Anchors",
			Message: fmt.Sprintf("published on %s", strings.Join(names, ", "))}
		out = append(out, d)
	}
	return out
}

// targetSites are the live sites a Service goes on: the anchors (those
// it names, if any), and the homes running its pods when it asks for
// their IPv6.
func targetSites(s *corev1.Service, sites []site, podNodes []string) []site {
	var named []string
	for _, f := range strings.Split(s.Annotations[publish.Anchors], ",") {
		if f = strings.TrimSpace(f); f != "" {
			named = append(named, f)
		}
	}
	homes := s.Annotations[publish.HomeIPv6] == "true"
	// Local without the PROXY protocol: kube-proxy serves only the pods
	// of its own node, so only the anchors running one publish.
	local := s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal && s.Annotations[publish.ProxyProtocol] == ""
	var out []site
	for _, t := range sites {
		switch {
		case !t.live:
		case t.anchor && (len(named) == 0 || slices.Contains(named, t.name)) && (!local || slices.Contains(podNodes, t.name)):
			out = append(out, t)
		case !t.anchor && homes && slices.Contains(podNodes, t.name):
			out = append(out, t)
		}
	}
	return out
}

func namedAnchors(s *corev1.Service) string {
	if a := s.Annotations[publish.Anchors]; a != "" {
		return " among " + a
	}
	return ""
}

// servicePorts are a Service's ports as ranges of one port.
func servicePorts(s *corev1.Service) []ports.Range {
	var out []ports.Range
	for _, p := range s.Spec.Ports {
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, ports.Range{Proto: proto, Min: uint16(p.Port), Max: uint16(p.Port)})
	}
	return out
}

// reservedOn tells a port that one of the sites needs itself.
func reservedOn(sites []site, want []ports.Range) (string, ports.Range, bool) {
	for _, t := range sites {
		for _, p := range want {
			for _, r := range t.reserved {
				if r.Has(p.Proto, p.Min) {
					return t.name, p, true
				}
			}
		}
	}
	return "", ports.Range{}, false
}

// ipMode tells who serves address a for the Service: kube-proxy (VIP),
// which keeps the visitor's address only for pods on the same node
// (externalTrafficPolicy Local), or hepto's proxy (Proxy), which sends it
// in the PROXY protocol header when asked, and carries IPv6 to a Service
// that has no IPv6 address of its own.
func ipMode(s *corev1.Service, a netip.Addr) corev1.LoadBalancerIPMode {
	if s.Annotations[publish.ProxyProtocol] != "" {
		return corev1.LoadBalancerIPModeProxy
	}
	family := corev1.IPv4Protocol
	if a.Is6() {
		family = corev1.IPv6Protocol
	}
	if !slices.Contains(s.Spec.IPFamilies, family) {
		return corev1.LoadBalancerIPModeProxy
	}
	return corev1.LoadBalancerIPModeVIP
}
