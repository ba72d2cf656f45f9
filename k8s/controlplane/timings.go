package controlplane

import (
	"time"

	kubecontrolplane "k8s.io/kubernetes/pkg/controlplane"
	controlplaneapiserver "k8s.io/kubernetes/pkg/controlplane/apiserver"
)

// Timings are the control plane's clocks that set its idle traffic
// between control-plane nodes: etcd's raft heartbeat and election
// timeout, the controller-manager's and scheduler's leases, and the
// apiserver's own identity lease and its endpoint in the kubernetes
// Service. hepto's suit home links of 20-100 ms
// RTT and a few kB a minute (docs/architecture.md, "A control plane over
// several homes"); Upstream are Kubernetes' and etcd's defaults, for
// comparison (hepto run --upstream-timings, hidden).
type Timings struct {
	Heartbeat, Election                       time.Duration
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	IdentityLeaseRenew                        time.Duration
	// EndpointReconcile and EndpointTTL: how often each apiserver renews
	// its address in the kubernetes Service's endpoints, and how long
	// it stays there unrenewed.
	EndpointReconcile, EndpointTTL time.Duration
	// ObjectCountPoll: how often each apiserver counts the objects of
	// every resource (--etcd-count-metric-poll-period; 0: never).
	ObjectCountPoll time.Duration
	// WatchLeases: standbys read the election leases from a watch
	// (lock.go), not from the apiserver every RetryPeriod.
	WatchLeases bool
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
// only, which one hepto binary never makes but for an upgrade's minutes);
// each apiserver's endpoint renewed every 30 s, gone 45 s after its
// apiserver (nodes reach the apiservers through their own endpoint,
// which does not wait for it: only pods' in-cluster clients do); and
// neither object counts nor object sizes (SizeBasedListCostEstimate):
// each is a linearizable read of etcd, a round to the leader from a
// follower, for each of some 70 resources each minute on each apiserver,
// three quarters of the requests to etcd of an idle cluster. What goes
// with them: the apiserver_storage_objects metric, and the figures by
// which API Priority and Fairness weighs a LIST (without them, every
// LIST is weighed at the least, as upstream does for an aggregated
// API's).
var HeptoTimings = Timings{
	Heartbeat: time.Second, Election: 5 * time.Second,
	LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 10 * time.Second,
	IdentityLeaseRenew: time.Minute,
	EndpointReconcile:  30 * time.Second, EndpointTTL: 45 * time.Second,
	ObjectCountPoll: 0,
	WatchLeases:     true,
	FeatureGates:    "UnknownVersionInteroperabilityProxy=false,SizeBasedListCostEstimate=false",
}

// UpstreamTimings are etcd's and Kubernetes' defaults.
var UpstreamTimings = Timings{
	Heartbeat: 100 * time.Millisecond, Election: time.Second,
	LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
	IdentityLeaseRenew: 10 * time.Second,
	EndpointReconcile:  10 * time.Second, EndpointTTL: 15 * time.Second,
	ObjectCountPoll: time.Minute,
}

// timings are this control plane's.
func (c *ControlPlane) timings() Timings {
	if c.opts.UpstreamTimings {
		return UpstreamTimings
	}
	return HeptoTimings
}

// featureGateArgs is the --feature-gates flag of the timings, if any.
func featureGateArgs(t Timings) []string {
	if g := t.FeatureGates; g != "" {
		return []string{"--feature-gates=" + g}
	}
	return nil
}

// setAPIServerTimings sets the apiserver's identity lease renewal and its
// endpoint reconciler's clocks, package variables of the apiserver's (one
// apiserver per process; the latter two made variables by hepto's patch).
func (c *ControlPlane) setAPIServerTimings() {
	t := c.timings()
	controlplaneapiserver.IdentityLeaseRenewIntervalPeriod = t.IdentityLeaseRenew
	kubecontrolplane.DefaultEndpointReconcilerInterval = t.EndpointReconcile
	kubecontrolplane.DefaultEndpointReconcilerTTL = t.EndpointTTL
}
