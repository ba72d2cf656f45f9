// Package podnet readies a TUN-mode node's kernel for the overlay and its
// pods: forwarding, the overlay firewall, routes and iptables rules for the
// node's pod ranges, and the CNI configuration for the container runtime.
// The other nodes' pod ranges are routed into the TUN device with their
// allowed IPs, by the tunnel.
package podnet

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/hepto-net/hepto/membership"
)

// Options configure the service.
type Options struct {
	Tun      string              // the TUN device
	Networks membership.Networks // the cluster's address plan
	Pods     []netip.Prefix      // this node's pod ranges
	Relay    bool                // an anchor: forwards between nodes without a path of their own
	MTU      int                 // the overlay's MTU, for pods' interfaces
	// ConfDirs are where the CNI configuration goes ("" entries skipped).
	// StateDir is hepto's state directory, named in it for the plugin.
	ConfDirs []ConfDir
	StateDir string
	Logger   *slog.Logger
}

// Service holds the rules and routes while it runs, and removes them when
// it stops. The CNI configuration stays, for the runtime to delete pods
// with while the daemon is down (the plugin's STATUS then says it is not
// ready).
type Service struct {
	o    Options
	undo []func()
}

// New returns the service.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{o: o}
}

func (s *Service) Name() string { return "podnet" }

// Start sets everything up; on failure it leaves nothing behind.
func (s *Service) Start(context.Context) error {
	s.undo = nil
	if err := s.start(); err != nil {
		s.stop()
		return err
	}
	return nil
}

func (s *Service) start() error {
	o := s.o
	if o.Relay || len(o.Pods) > 0 {
		if err := enableForwarding(); err != nil {
			return err
		}
	}
	nets := o.Networks
	// A firewall that is not there is a start failure: without it, a
	// neighbour on the home's LAN reaches the overlay, the pods and the
	// Services.
	undo, err := overlayRules([]netip.Prefix{nets.OverlayV4, nets.OverlayV6})
	if err != nil {
		return fmt.Errorf("overlay firewall: %w", err)
	}
	s.undo = append(s.undo, undo)
	if len(o.Pods) > 0 {
		undoRoutes, err := ownPodRoutes(o.Pods)
		if err != nil {
			return err
		}
		s.undo = append(s.undo, undoRoutes)
	}
	undo, err = podRules(o.Tun, o.Pods, []netip.Prefix{nets.PodsV4, nets.PodsV6}, nets.Services())
	if err != nil {
		return fmt.Errorf("forwarding firewall: %w", err)
	}
	s.undo = append(s.undo, undo)
	if len(o.Pods) == 0 {
		return nil
	}
	stateDir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return err
	}
	for _, d := range o.ConfDirs {
		if d.Dir == "" {
			continue
		}
		if err := writeConfList(d, stateDir, o.MTU, o.Pods); err != nil {
			return fmt.Errorf("cni configuration: %w", err)
		}
		o.Logger.Info("pod network configuration written", "file", filepath.Join(d.Dir, CNIConfFile), "pods", o.Pods, "chained", len(d.Chain))
	}
	return nil
}

// Run holds the set-up until ctx ends, then removes it.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	s.stop()
	return nil
}

func (s *Service) stop() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}
