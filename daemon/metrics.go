package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/tunnel"
)

// metricsService serves Prometheus metrics on the --metrics address: on
// an overlay address through the tunnel (so that netstack mode works too),
// elsewhere through the kernel.
type metricsService struct {
	addr string
	self membership.Node
	tun  *tunnel.Tunnel
	m    *metrics.Metrics
	log  *slog.Logger
	ln   net.Listener
}

func (s *metricsService) Name() string { return "metrics" }

func (s *metricsService) Start(context.Context) error {
	if s.addr == "" {
		return nil
	}
	addr := s.addr
	if port, ok := strings.CutPrefix(addr, "overlay:"); ok {
		// The node's own overlay IPv4 address, unknown before it joins.
		addr = net.JoinHostPort(s.self.OverlayIPs[0].String(), port)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics %q: want IP:PORT or overlay:PORT (%w)", s.addr, err)
	}
	if slices.Contains(s.self.OverlayIPs, ap.Addr()) {
		s.ln, err = s.tun.Listen("tcp", ap)
	} else {
		s.ln, err = net.Listen("tcp", ap.String())
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.log.Info("metrics", "addr", "http://"+ap.String()+"/metrics")
	return nil
}

func (s *metricsService) Run(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	return s.m.Serve(ctx, s.ln)
}
