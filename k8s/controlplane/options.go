// Package controlplane runs a Kubernetes control plane inside hepto's
// process: embedded etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, each a supervisor.Service run through the component's
// own Run function with hepto's context.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"
)

// Default ports. The apiserver's is Kubernetes' usual one; the others are
// the components' defaults, bound to loopback only.
const (
	DefaultAPIServerPort         = 6443
	DefaultEtcdClientPort        = 2379 // https://127.0.0.1:2379, client certificates required
	DefaultEtcdPeerPort          = 2380 // loopback until etcd has peers
	DefaultControllerManagerPort = 10257
	DefaultSchedulerPort         = 10259
)

// Options configure the control plane.
type Options struct {
	// DataDir holds everything the control plane writes: etcd's data,
	// issued certificates, kubeconfigs (see Layout).
	DataDir string
	// PKIDir holds the cluster's CAs and service-account key; default
	// DataDir/pki.
	PKIDir string
	// NodeName names this control-plane node (etcd member name).
	NodeName string
	// AdvertiseAddresses are the node's addresses (overlay IPv4 and IPv6).
	// The first is the apiserver's advertised address; all are in its
	// serving certificate.
	AdvertiseAddresses []netip.Addr
	// BindAddresses are where kube-apiserver listens besides loopback
	// (127.0.0.1 and ::1, always); default AdvertiseAddresses.
	BindAddresses []netip.Addr
	// ServiceCIDRs: one range per family (dual stack: IPv4 first or IPv6
	// first, at most two).
	ServiceCIDRs []netip.Prefix
	// ClusterCIDRs: the pods' ranges, for information only (node ranges
	// come from hepto's membership; the node IPAM controller is off).
	ClusterCIDRs []netip.Prefix

	// Ports; zero means the default.
	APIServerPort         int
	EtcdClientPort        int
	EtcdPeerPort          int
	ControllerManagerPort int
	SchedulerPort         int

	// Logger gets the components' lines (through klog, process-wide, set
	// by the first component.RouteKlog: k8s.New's, or this New's).
	Logger *slog.Logger
	// ComponentLogLevel is the least level of the components' lines that
	// reach Logger; nil means Warn: at Info the apiserver alone writes
	// hundreds of lines at each start.
	ComponentLogLevel slog.Leveler
	// Join asks another control-plane node to let this one into the
	// control plane; nil for the node that starts the cluster. It returns
	// ErrFirst when no other control-plane node exists.
	Join func(ctx context.Context, peerURL string) (Joined, error)
	// UpstreamTimings runs etcd, the leases and the apiserver with
	// upstream's default timings instead of hepto's (timings.go), to
	// compare them.
	UpstreamTimings bool
	// LeafValidity is how long the components' certificates last (0:
	// pki.LeafValidity, a year); they are issued again every third of it.
	LeafValidity time.Duration
}

// Eviction timings, chosen for homes (docs/architecture.md, "A home goes
// dark"): endpoints of a dark home leave within a minute, its pods run
// elsewhere within three. A kubelet renews its node lease every quarter
// of NodeLease: every 15 s (upstream: 10), so a node is marked unknown
// after two renewals missed, not three, for a third fewer writes through
// etcd between homes.
const (
	NodeMonitorGrace = 40 * time.Second
	PodEvictionAfter = 2 * time.Minute
	NodeLease        = time.Minute
)

// withDefaults fills in defaults and checks the options.
func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		return o, errors.New("control plane: no data directory")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return o, fmt.Errorf("control plane: %w", err)
	}
	o.DataDir = abs
	if o.PKIDir == "" {
		o.PKIDir = filepath.Join(o.DataDir, "pki")
	}
	if o.NodeName == "" {
		return o, errors.New("control plane: no node name")
	}
	if len(o.AdvertiseAddresses) == 0 {
		return o, errors.New("control plane: no advertise address")
	}
	for _, a := range o.AdvertiseAddresses {
		if !a.IsValid() || a.IsUnspecified() {
			return o, fmt.Errorf("control plane: bad advertise address %v", a)
		}
	}
	if o.BindAddresses == nil {
		o.BindAddresses = o.AdvertiseAddresses
	}
	if len(o.ServiceCIDRs) == 0 || len(o.ServiceCIDRs) > 2 {
		return o, fmt.Errorf("control plane: %d service ranges, want one or two (one per family)", len(o.ServiceCIDRs))
	}
	if len(o.ServiceCIDRs) == 2 && o.ServiceCIDRs[0].Addr().Is4() == o.ServiceCIDRs[1].Addr().Is4() {
		return o, errors.New("control plane: two service ranges of the same family")
	}
	// The kubernetes service's endpoint is the advertised address, in the
	// primary (first) service family.
	if o.AdvertiseAddresses[0].Unmap().Is4() != o.ServiceCIDRs[0].Addr().Unmap().Is4() {
		return o, errors.New("control plane: the first advertise address and the first service range must be of one family")
	}
	for _, p := range []*int{&o.APIServerPort, &o.EtcdClientPort, &o.EtcdPeerPort, &o.ControllerManagerPort, &o.SchedulerPort} {
		if *p < 0 || *p > 65535 {
			return o, fmt.Errorf("control plane: bad port %d", *p)
		}
	}
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&o.APIServerPort, DefaultAPIServerPort)
	def(&o.EtcdClientPort, DefaultEtcdClientPort)
	def(&o.EtcdPeerPort, DefaultEtcdPeerPort)
	def(&o.ControllerManagerPort, DefaultControllerManagerPort)
	def(&o.SchedulerPort, DefaultSchedulerPort)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ComponentLogLevel == nil {
		o.ComponentLogLevel = slog.LevelWarn
	}
	return o, nil
}
