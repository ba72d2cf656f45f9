package controlplane

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/hepto-net/hepto/k8s/component"
)

// The controller-manager and the scheduler run on one control-plane node
// at a time, elected through a Lease as upstream's are (same lease names,
// in kube-system). The election is hepto's own: upstream's ends the
// process when the lease is lost, and the fabric lives in this process.
// The component runs with --leader-elect=false while this node holds the
// lease and stops (its context ends) when it loses it.
//
// Its timings are Timings' (timings.go); a standby reads the lease from a
// watch (lock.go).

// electionNamespace holds the components' leases, as upstream's.
const electionNamespace = "kube-system"

// elected runs run while this node holds the lease named name, as many
// times as it wins it, until ctx ends. The component's state reads
// "standby" while another node holds the lease. run's error (the
// component failed while leading) ends elected, releasing the lease.
func (c *ControlPlane) elected(ctx context.Context, name, kubeconfig string, run func(context.Context) error) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	var lock resourcelock.Interface
	if c.timings().WatchLeases {
		lock = newWatchedLock(ctx, client, electionNamespace, name, c.opts.NodeName, c.timings().LeaseDuration)
	} else if lock, err = resourcelock.New(resourcelock.LeasesResourceLock, electionNamespace, name,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: c.opts.NodeName}); err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	for ctx.Err() == nil {
		c.states.Set(name, component.Standby)
		lead, stop := context.WithCancel(ctx)
		started, done := make(chan struct{}), make(chan error, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   c.timings().LeaseDuration,
			RenewDeadline:   c.timings().RenewDeadline,
			RetryPeriod:     c.timings().RetryPeriod,
			ReleaseOnCancel: true,
			Name:            name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					close(started)
					c.opts.Logger.Info("control plane: leading", "component", name)
					c.states.Set(name, component.Starting)
					err := run(ctx)
					stop() // a component that stopped while leading lets the lease go
					done <- err
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			stop()
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(lead)
		stop()
		// Run returns without waiting for the component: wait here, so
		// that it never runs twice in this process.
		select {
		case <-started:
		default:
			continue // never led: ctx ended while waiting for the lease
		}
		if err := <-done; ctx.Err() != nil {
			return nil
		} else if err != nil {
			return err
		}
		c.opts.Logger.Warn("control plane: lease lost; standing by", "component", name)
	}
	return nil
}
