package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/hepto-net/hepto/dns"
	"github.com/hepto-net/hepto/membership"
)

// DNSConfig configures the node's DNS server (package dns). It always
// listens on the node's overlay addresses, port 53.
type DNSConfig struct {
	Disable bool
	// Listen are more addresses (IP:PORT) to answer on, outside the
	// overlay; DefaultDNSListen unless set.
	Listen []string
	// Upstreams are the resolvers other names are forwarded to (IP or
	// IP:PORT); default: the nameservers of /etc/resolv.conf at start.
	Upstreams []string
	// KubeDomain is the Kubernetes zone; default cluster.local.
	KubeDomain string
}

// DefaultDNSListen: loopback, for the node's own programs. Never the
// Internet side.
var DefaultDNSListen = []string{"127.0.0.1:53"}

// dnsState is the daemon's DNS server, once started.
type dnsState struct {
	srv atomic.Pointer[dns.Server]
}

// serveDNS answers DNS on the overlay addresses and the configured ones
// until ctx ends. An address it cannot listen on is logged and skipped:
// names are a convenience, the node works without them.
func (d *Daemon) serveDNS(ctx context.Context) error {
	cfg := d.cfg.DNS
	if cfg.Disable {
		return nil
	}
	listen := cfg.Listen
	if listen == nil {
		listen = DefaultDNSListen
	}
	var extra, self []netip.AddrPort
	for _, ip := range d.self.OverlayIPs {
		self = append(self, netip.AddrPortFrom(ip, 53))
	}
	for _, s := range listen {
		ap, err := dns.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("--dns-listen: %w", err)
		}
		extra = append(extra, ap)
	}
	ups, err := d.dnsUpstreams(cfg, append(self, extra...))
	if err != nil {
		return err
	}
	if len(ups) == 0 {
		d.log.Warn("dns: no upstream resolver: names outside the cluster will fail")
	}
	dm := dns.NewMetrics()
	if d.metrics != nil {
		if err := dm.Register(d.metrics.Registry); err != nil {
			return fmt.Errorf("dns metrics: %w", err)
		}
	}
	srv := dns.New(dns.Config{
		Domain:     d.cluster.Domain,
		Self:       d.self.Name,
		Overlay:    []netip.Prefix{d.cluster.Networks.OverlayV4, d.cluster.Networks.OverlayV6},
		KubeDomain: cfg.KubeDomain,
		Upstreams:  ups,
		Logger:     d.log,
		Metrics:    dm,
	})
	defer srv.Close()
	d.dns.srv.Store(srv)
	d.mu.Lock()
	m := d.members
	d.mu.Unlock()
	d.updateDNS(m)

	var wg sync.WaitGroup
	serve := func(what string, ap netip.AddrPort, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				d.log.Warn("dns: "+what, "addr", ap, "err", err)
			}
		}()
	}
	var addrs []netip.AddrPort
	for i, ap := range append(self, extra...) {
		overlay := i < len(self)
		var pc net.PacketConn
		var ln net.Listener
		var err error
		if overlay {
			pc, err = d.tun.ListenPacket("udp", ap)
		} else {
			pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		}
		if err != nil {
			d.log.Warn("dns: cannot listen", "addr", ap, "err", err)
			continue
		}
		if overlay {
			ln, err = d.tun.Listen("tcp", ap)
		} else {
			ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		}
		if err != nil {
			pc.Close()
			d.log.Warn("dns: cannot listen", "addr", ap, "err", err)
			continue
		}
		addrs = append(addrs, ap)
		serve("udp", ap, func() error { return srv.ServePacket(ctx, pc) })
		serve("tcp", ap, func() error { return srv.ServeStream(ctx, ln) })
	}
	d.log.Info("dns: serving", "domain", d.cluster.Domain, "addrs", addrs, "upstreams", ups)
	wg.Wait()
	return nil
}

func (d *Daemon) dnsUpstreams(cfg DNSConfig, self []netip.AddrPort) ([]netip.AddrPort, error) {
	if len(cfg.Upstreams) == 0 {
		ups, err := dns.Upstreams(dns.DefaultResolvConf, self)
		if err != nil {
			d.log.Warn("dns: no resolv.conf", "err", err)
		}
		return ups, nil
	}
	var ups []netip.AddrPort
	for _, s := range cfg.Upstreams {
		ap, err := dns.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream: %w", err)
		}
		ups = append(ups, ap)
	}
	return ups, nil
}

// updateDNS gives the DNS server the names of m's nodes. Callers need not
// serialize: the server keeps the newest membership version.
func (d *Daemon) updateDNS(m membership.Membership) {
	srv := d.dns.srv.Load()
	if srv == nil {
		return
	}
	nodes := make([]dns.Node, 0, len(m.Nodes))
	for _, n := range m.Nodes {
		nodes = append(nodes, dns.Node{Name: n.Name, Addrs: n.OverlayIPs})
	}
	srv.SetNodes(m.Version, nodes)
}
