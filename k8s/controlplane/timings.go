package controlplane

import (
	"time"

	controlplaneapiserver "k8s.io/kubernetes/pkg/controlplane/apiserver"
)

// Timings are the control plane's clocks that set its idle traffic
// between control-plane nodes: etcd's raft heartbeat and election
// timeout, the controller-manager's and scheduler's leases, and the
// apiserver's own identity lease. hepto's suit home links of 20-100 ms
// RTT and a few kB a minute (docs/architecture.md, "A control plane over
// several homes"); Upstream are Kubernetes' and etcd's defaults, for
// comparison (hepto run --upstream-timings, hidden).
type Timings struct {
	Heartbeat, Election                       time.Duration
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	IdentityLeaseRenew                        time.Duration
	// FeatureGates for the apiserver, the controller-manager and the
	// scheduler (one registry per process: the same for all).
	FeatureGates string
}

// HeptoTimings: a heartbeat a second (ten times fewer than upstream's
// 100 ms), an election after 5 (etcd's least ratio), so a lost leader is
// replaced within 5-10 s; leases renewed every 10 s, taken over within
// 30-40 s; the apiserver's identity lease renewed every minute (it lasts
// an hour); and no peer proxy between apiservers (its endpoint leases,
// renewed every 10 s by each apiserver, serve mixed-version clusters
// only, which one hepto binary never makes but for an upgrade's minutes).
var HeptoTimings = Timings{
	Heartbeat: time.Second, Election: 5 * time.Second,
	LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 10 * time.Second,
	IdentityLeaseRenew: time.Minute,
	FeatureGates:       "UnknownVersionInteroperabilityProxy=false",
}

// UpstreamTimings are etcd's and Kubernetes' defaults.
var UpstreamTimings = Timings{
	Heartbeat: 100 * time.Millisecond, Election: time.Second,
	LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
	IdentityLeaseRenew: 10 * time.Second,
}

// timings are this control plane's.
func (c *ControlPlane) timings() Timings {
	if c.opts.UpstreamTimings {
		return UpstreamTimings
	}
	return HeptoTimings
}

// featureGateArgs is the --feature-gates flag of the timings, if any.
func (c *ControlPlane) featureGateArgs() []string {
	if g := c.timings().FeatureGates; g != "" {
		return []string{"--feature-gates=" + g}
	}
	return nil
}

// setIdentityLeaseRenew sets the apiserver's identity lease renewal, a
// package variable of the apiserver's (one apiserver per process).
func (c *ControlPlane) setIdentityLeaseRenew() {
	controlplaneapiserver.IdentityLeaseRenewIntervalPeriod = c.timings().IdentityLeaseRenew
}
