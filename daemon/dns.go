package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/hepto-net/hepto/dns"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/tunnel"
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

// dnsService answers DNS on the overlay addresses and the configured ones.
// An address it cannot listen on is logged and skipped: names are a
// convenience, the node works without them.
type dnsService struct {
	cfg   DNSConfig
	n     *node
	tun   *tunnel.Tunnel
	m     *metrics.Metrics
	log   *slog.Logger
	dm    *dns.Metrics
	dmErr error

	mu   sync.Mutex
	srv  *dns.Server     // the running server
	kube *dns.Kubernetes // the latest Kubernetes zone, for a server after a restart
}

// SetKubernetes hands the Kubernetes zone (from dns/kubewatch) to the
// running server, and to the next one after a restart.
func (s *dnsService) SetKubernetes(k *dns.Kubernetes) {
	s.mu.Lock()
	s.kube = k
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.SetKubernetes(k)
	}
}

func newDNS(cfg DNSConfig, n *node, tun *tunnel.Tunnel, m *metrics.Metrics, log *slog.Logger) *dnsService {
	s := &dnsService{cfg: cfg, n: n, tun: tun, m: m, log: log, dm: dns.NewMetrics()}
	if !cfg.Disable {
		s.dmErr = s.dm.Register(m.Registry)
	}
	return s
}

func (s *dnsService) Name() string { return "dns" }

func (s *dnsService) Run(ctx context.Context) error {
	cfg := s.cfg
	if cfg.Disable {
		return nil
	}
	if s.dmErr != nil {
		return fmt.Errorf("dns metrics: %w", s.dmErr)
	}
	listen := cfg.Listen
	if listen == nil {
		listen = DefaultDNSListen
	}
	var extra, self []netip.AddrPort
	for _, ip := range s.n.self.OverlayIPs {
		self = append(self, netip.AddrPortFrom(ip, 53))
	}
	for _, a := range listen {
		ap, err := dns.ParseAddrPort(a)
		if err != nil {
			return fmt.Errorf("--dns-listen: %w", err)
		}
		extra = append(extra, ap)
	}
	ups, err := s.upstreams(append(self, extra...))
	if err != nil {
		return err
	}
	if len(ups) == 0 {
		s.log.Warn("dns: no upstream resolver: names outside the cluster will fail")
	}
	nets := s.n.cluster.Networks
	srv := dns.New(dns.Config{
		Domain:     s.n.cluster.Domain,
		Self:       s.n.self.Name,
		Overlay:    []netip.Prefix{nets.OverlayV4, nets.OverlayV6},
		KubeDomain: cfg.KubeDomain,
		Upstreams:  ups,
		Logger:     s.log,
		Metrics:    s.dm,
	})
	defer srv.Close()
	s.mu.Lock()
	s.srv = srv
	if s.kube != nil {
		srv.SetKubernetes(s.kube)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.srv = nil
		s.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	serve := func(what string, ap netip.AddrPort, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				s.log.Warn("dns: "+what, "addr", ap, "err", err)
			}
		}()
	}
	var addrs []netip.AddrPort
	for i, ap := range append(self, extra...) {
		pc, ln, err := s.listen(ap, i < len(self))
		if err != nil {
			s.log.Warn("dns: cannot listen", "addr", ap, "err", err)
			continue
		}
		addrs = append(addrs, ap)
		serve("udp", ap, func() error { return srv.ServePacket(ctx, pc) })
		serve("tcp", ap, func() error { return srv.ServeStream(ctx, ln) })
	}
	s.log.Info("dns: serving", "domain", s.n.cluster.Domain, "addrs", addrs, "upstreams", ups)

	changes, cancel := s.n.store.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
			m := s.n.store.Current()
			nodes := make([]dns.Node, 0, len(m.Nodes))
			for _, n := range m.Nodes {
				nodes = append(nodes, dns.Node{Name: n.Name, Addrs: n.OverlayIPs})
			}
			srv.SetNodes(m.Version, nodes)
		}
	}
}

// listen opens UDP and TCP on ap: in the overlay, or through the kernel.
func (s *dnsService) listen(ap netip.AddrPort, overlay bool) (net.PacketConn, net.Listener, error) {
	var pc net.PacketConn
	var ln net.Listener
	var err error
	if overlay {
		pc, err = s.tun.ListenPacket("udp", ap)
	} else {
		pc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	}
	if err != nil {
		return nil, nil, err
	}
	if overlay {
		ln, err = s.tun.Listen("tcp", ap)
	} else {
		ln, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
	}
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, ln, nil
}

func (s *dnsService) upstreams(self []netip.AddrPort) ([]netip.AddrPort, error) {
	cfg := s.cfg
	if len(cfg.Upstreams) == 0 {
		ups, err := dns.Upstreams(dns.DefaultResolvConf, self)
		if err != nil {
			s.log.Warn("dns: no resolv.conf", "err", err)
		}
		return ups, nil
	}
	var ups []netip.AddrPort
	for _, u := range cfg.Upstreams {
		ap, err := dns.ParseAddrPort(u)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream: %w", err)
		}
		ups = append(ups, ap)
	}
	return ups, nil
}
