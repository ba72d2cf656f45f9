package k8s

import (
	"context"
	"fmt"

	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/k8s/netpol"
)

// runNetworkPolicy enforces the cluster's NetworkPolicies on this node's
// pods (package netpol), with the node's agent credentials. Its state is
// running once the first table is in the kernel; an error (no nft) is a
// failed component, and the fabric goes on.
func (n *Node) runNetworkPolicy(ctx context.Context) error {
	if err := n.certsReady.Wait(ctx); err != nil {
		return nil
	}
	cs, err := n.agentClient()
	if err != nil {
		return fmt.Errorf("network policy: %w", err)
	}
	return netpol.Run(ctx, netpol.Options{
		Client: cs,
		Node:   n.o.NodeName,
		Log:    n.log.With("part", compNetpol),
		Applied: func(netpol.Plan) {
			n.states.SetLive(ctx, compNetpol, component.Running)
		},
		// Pods go unchecked until a write succeeds: status says so.
		Failed: func(err error) {
			n.states.SetLive(ctx, compNetpol, "failed: "+err.Error())
		},
	})
}
