package publish

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hepto-net/hepto/localapi"
)

// Options configure a node's publisher.
type Options struct {
	Log *slog.Logger
	// Addrs are the node's public addresses now (LocalPublicAddrs).
	Addrs func() ([]netip.Addr, error)
	// Counters count kube-proxy's published ports (nil: not counted).
	Counters *Counters
}

// Publisher serves the Service ports published on this node's public
// addresses with ipMode Proxy, and counts those kube-proxy serves (VIP).
type Publisher struct {
	o  Options
	mu sync.Mutex // guards the maps, not the listeners' I/O
	// proxied and vip by "IP PORT/PROTO".
	proxied map[string]*proxied
	vip     map[string]localapi.Published
}

type proxied struct {
	p   localapi.Published
	fwd forwarder
}

// New makes a publisher; Run serves.
func New(o Options) *Publisher {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Addrs == nil {
		o.Addrs = LocalPublicAddrs
	}
	return &Publisher{o: o, proxied: map[string]*proxied{}, vip: map[string]localapi.Published{}}
}

// recheck is how often the node's addresses are looked at again (a
// renumbered anchor, a home's new IPv6 prefix).
const recheck = 30 * time.Second

// Run follows the Services, read through client (the node's agent
// credentials), until ctx ends; then it closes what it serves.
func (p *Publisher) Run(ctx context.Context, client kubernetes.Interface) error {
	f := informers.NewSharedInformerFactory(client, 0)
	services := f.Core().V1().Services()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	defer p.closeAll()
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced) {
		return nil
	}
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		addrs, err := p.o.Addrs()
		if err != nil {
			p.o.Log.Warn("publish: addresses", "err", err)
		}
		list, _ := services.Lister().List(labels.Everything())
		want := Wanted(list, addrs)
		p.apply(ctx, want)
		if p.o.Counters != nil {
			if err := p.o.Counters.Sync(ctx, p.vipKeys()); err != nil {
				p.o.Log.Warn("publish: counters", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// Entry is one Service port to serve on one of the node's addresses.
type Entry struct {
	localapi.Published
	At     netip.AddrPort // the public address and port
	Target netip.AddrPort // the Service's cluster address and port
}

// Key names an entry: "IP PORT/PROTO".
func (e Entry) Key() string { return fmt.Sprintf("%s %d/%s", e.At.Addr(), e.At.Port(), e.Protocol) }

// Wanted are the entries of the Services published on addrs: the
// status's addresses that are the node's, with each of the Service's
// ports.
func Wanted(services []*corev1.Service, addrs []netip.Addr) map[string]Entry {
	out := map[string]Entry{}
	for _, s := range services {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		header := s.Annotations[ProxyProtocol] == "v2"
		for _, in := range s.Status.LoadBalancer.Ingress {
			a, err := netip.ParseAddr(in.IP)
			if err != nil || !slices.Contains(addrs, a) {
				continue
			}
			proxy := in.IPMode != nil && *in.IPMode == corev1.LoadBalancerIPModeProxy
			cluster := clusterIP(s, a.Is6())
			for _, port := range s.Spec.Ports {
				proto := strings.ToLower(string(port.Protocol))
				if proto == "" {
					proto = "tcp"
				}
				e := Entry{
					Published: localapi.Published{Service: s.Namespace + "/" + s.Name, Protocol: proto, Mode: "vip"},
					At:        netip.AddrPortFrom(a, uint16(port.Port)),
				}
				e.Address = e.At.String()
				if proxy {
					if !cluster.IsValid() {
						continue
					}
					e.Mode = "proxy"
					e.ProxyProtocol = header && proto == "tcp"
					e.Target = netip.AddrPortFrom(cluster, uint16(port.Port))
				}
				out[e.Key()] = e
			}
		}
	}
	return out
}

// clusterIP is the Service's cluster address, of the family asked for if
// it has one.
func clusterIP(s *corev1.Service, v6 bool) netip.Addr {
	var first netip.Addr
	for _, ip := range append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		if a.Is6() == v6 {
			return a
		}
		if !first.IsValid() {
			first = a
		}
	}
	return first
}

// apply starts, retargets and stops the proxied entries; the listeners
// are opened and closed outside the lock.
func (p *Publisher) apply(ctx context.Context, want map[string]Entry) {
	p.mu.Lock()
	var stop []forwarder
	for k, pr := range p.proxied {
		if e, ok := want[k]; !ok || e.Mode != "proxy" {
			stop = append(stop, pr.fwd)
			delete(p.proxied, k)
		}
	}
	var start []Entry
	p.vip = map[string]localapi.Published{}
	for k, e := range want {
		if e.Mode != "proxy" {
			p.vip[k] = e.Published
			continue
		}
		if pr, ok := p.proxied[k]; ok {
			pr.p = e.Published
			pr.fwd.retarget(target{service: e.Service, addr: e.Target, header: e.ProxyProtocol})
			continue
		}
		start = append(start, e)
	}
	p.mu.Unlock()
	for _, f := range stop {
		f.close()
	}
	for _, e := range start {
		t := target{service: e.Service, addr: e.Target, header: e.ProxyProtocol}
		var f forwarder
		var err error
		if e.Protocol == "udp" {
			f, err = listenUDP(e.At, t, p.o.Log)
		} else {
			f, err = listenTCP(ctx, e.At, t, p.o.Log)
		}
		if err != nil {
			p.o.Log.Warn("publish: cannot serve", "service", e.Service, "address", e.Address, "protocol", e.Protocol, "err", err)
			continue
		}
		p.o.Log.Info("publishing", "service", e.Service, "address", e.Address, "protocol", e.Protocol, "proxy_protocol", e.ProxyProtocol)
		p.mu.Lock()
		p.proxied[e.Key()] = &proxied{p: e.Published, fwd: f}
		p.mu.Unlock()
	}
}

func (p *Publisher) vipKeys() map[string]localapi.Published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.vip)
}

func (p *Publisher) closeAll() {
	p.mu.Lock()
	all := p.proxied
	p.proxied = map[string]*proxied{}
	p.mu.Unlock()
	for _, pr := range all {
		pr.fwd.close()
	}
}

// Published lists what the node publishes now, with its traffic, sorted
// by Service and address.
func (p *Publisher) Published(ctx context.Context) []localapi.Published {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	var out []localapi.Published
	for _, pr := range p.proxied {
		e := pr.p
		c := pr.fwd.counts()
		e.Connections, e.Open, e.BytesIn, e.BytesOut = c.Connections, c.Open, c.BytesIn, c.BytesOut
		out = append(out, e)
	}
	vip := maps.Clone(p.vip)
	p.mu.Unlock()
	var counted map[string]Counts
	if p.o.Counters != nil && len(vip) > 0 {
		counted, _ = p.o.Counters.Read(ctx)
	}
	for k, e := range vip {
		c := counted[k]
		e.Connections, e.BytesIn, e.BytesOut = c.Connections, c.BytesIn, c.BytesOut
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b localapi.Published) int {
		return strings.Compare(a.Service+" "+a.Address+" "+a.Protocol, b.Service+" "+b.Address+" "+b.Protocol)
	})
	return out
}
