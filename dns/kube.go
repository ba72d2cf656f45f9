package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Kubernetes is what the Kubernetes DNS specification
// (https://github.com/kubernetes/dns/blob/master/docs/specification.md,
// version 1.1.0) makes names of. A watcher of the API server (package
// dns/kubewatch) builds it; the server answers from the last one given to
// SetKubernetes.
type Kubernetes struct {
	Services  []KubeService
	Endpoints []KubeEndpoint
	Pods      []KubePod
}

// KubeService is a Service: with cluster IPs, headless (none), or an
// ExternalName.
type KubeService struct {
	Namespace, Name string
	ClusterIPs      []netip.Addr
	ExternalName    string
	Ports           []KubePort
	// PublishNotReady: not-ready endpoints get records too.
	PublishNotReady bool
}

// KubePort is a port of a service or of an endpoint.
type KubePort struct {
	Name     string
	Protocol string // TCP, UDP or SCTP
	Port     uint16
}

// KubeEndpoint is one endpoint of a service (from its EndpointSlices).
type KubeEndpoint struct {
	Namespace, Service string
	Hostname           string
	Addresses          []netip.Addr
	Ready              bool
	Ports              []KubePort
}

// KubePod is a pod's addresses, for NAME.<namespace>.pod.<zone> records.
type KubePod struct {
	Namespace string
	IPs       []netip.Addr
}

// Kubernetes names change as pods come and go: short TTLs, as CoreDNS's.
const (
	kubeTTL     = 5
	kubeVersion = "1.1.0"
)

// kubeZone is the Kubernetes zone and the PTR records of its addresses.
type kubeZone struct {
	fwd *zone
	ptr map[netip.Addr][]string
}

func buildKube(domain string, k *Kubernetes) *kubeZone {
	origin := dns.CanonicalName(domain)
	kz := &kubeZone{fwd: newZone(origin, "ns.dns."+origin, 1, kubeTTL), ptr: map[netip.Addr][]string{}}
	z := kz.fwd
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: kubeTTL}
	}
	z.add(&dns.NS{Hdr: hdr(origin, dns.TypeNS), Ns: "ns.dns." + origin})
	z.add(&dns.TXT{Hdr: hdr("dns-version."+origin, dns.TypeTXT), Txt: []string{kubeVersion}})
	z.names["svc."+origin] = map[uint16][]dns.RR{}
	z.names["pod."+origin] = map[uint16][]dns.RR{}
	addPTR := func(a netip.Addr, name string) {
		a = a.Unmap()
		for _, have := range kz.ptr[a] {
			if have == name {
				return
			}
		}
		kz.ptr[a] = append(kz.ptr[a], name)
	}
	srv := func(p KubePort, svcName, target string, weight uint16) {
		if p.Name == "" || p.Port == 0 {
			return
		}
		name := "_" + strings.ToLower(p.Name) + "._" + strings.ToLower(p.Protocol) + "." + svcName
		z.add(&dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: 0, Weight: weight, Port: p.Port, Target: target})
	}
	byService := map[string][]KubeEndpoint{}
	for _, e := range k.Endpoints {
		key := e.Namespace + "/" + e.Service
		byService[key] = append(byService[key], e)
	}
	for _, s := range k.Services {
		if !validLabel(s.Name) || !validLabel(s.Namespace) {
			continue
		}
		name := s.Name + "." + s.Namespace + ".svc." + origin
		switch {
		case s.ExternalName != "":
			z.add(&dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: dns.Fqdn(s.ExternalName)})
		case len(s.ClusterIPs) > 0:
			for _, ip := range s.ClusterIPs {
				z.add(addrRR(name, ip.Unmap(), kubeTTL))
				addPTR(ip, name)
			}
			for _, p := range s.Ports {
				srv(p, name, name, 100)
			}
		default: // headless: the ready endpoints; none, no name (NXDOMAIN, 2.4.1)
			var ready []KubeEndpoint
			for _, e := range byService[s.Namespace+"/"+s.Name] {
				if len(e.Addresses) > 0 && (e.Ready || s.PublishNotReady) {
					ready = append(ready, e)
				}
			}
			targets := make([]string, len(ready))
			hosts := map[string]bool{}
			for i, e := range ready {
				host := e.Hostname
				if !validLabel(host) {
					host = dashed(e.Addresses[0])
				}
				targets[i] = host + "." + name
				hosts[host] = true
			}
			// Equal shares of 100 among the endpoints' names (an endpoint
			// of each family under one hostname counts once).
			weight := uint16(max(1, 100/max(1, len(hosts))))
			for i, e := range ready {
				target := targets[i]
				for _, a := range e.Addresses {
					z.add(addrRR(name, a.Unmap(), kubeTTL))
					z.add(addrRR(target, a.Unmap(), kubeTTL))
					addPTR(a, target)
				}
				for _, p := range e.Ports {
					srv(p, name, target, weight)
				}
			}
		}
	}
	for _, p := range k.Pods {
		if !validLabel(p.Namespace) {
			continue
		}
		for _, ip := range p.IPs {
			ip = ip.Unmap()
			z.add(addrRR(dashed(ip)+"."+p.Namespace+".pod."+origin, ip, kubeTTL))
		}
	}
	return kz
}

// dashed is an address as a DNS label: 10-1-2-3, fd00--1.
func dashed(a netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(a.Unmap().String())
}

// validLabel accepts what Kubernetes accepts as DNS label names.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0 && i < len(s)-1) {
			return false
		}
	}
	return true
}

// reverse answers the PTR records of Kubernetes addresses; ok is false for
// addresses it does not know.
func (kz *kubeZone) reverse(m *dns.Msg, name string, a netip.Addr, qtype uint16) bool {
	targets, ok := kz.ptr[a]
	if !ok {
		return false
	}
	m.Authoritative = true
	if qtype != dns.TypePTR && qtype != dns.TypeANY {
		return true
	}
	for _, t := range targets {
		m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: kubeTTL}, Ptr: t})
	}
	return true
}
