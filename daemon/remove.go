package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
)

// etcdRemoveTimeout bounds one control-plane node's answer.
const etcdRemoveTimeout = 30 * time.Second

// removeEtcdMember removes a control-plane node's etcd member before the
// node leaves the cluster, through the first other control-plane node
// that answers (by index). A removal that would lose etcd's quorum is
// refused, and so is one that no control-plane node can make: the node
// stays. A control protocol call: the anchor needs no Kubernetes of its own.
func removeEtcdMember(ctx context.Context, client *control.Client, members []membership.Node, node membership.Node) error {
	if !node.IsControlPlane() {
		return nil
	}
	others := slices.DeleteFunc(slices.Clone(members), func(m membership.Node) bool {
		return !m.IsControlPlane() || m.Name == node.Name || len(m.OverlayIPs) == 0
	})
	slices.SortStableFunc(others, func(a, b membership.Node) int { return a.Index - b.Index })
	var errs []error
	for _, m := range others {
		cctx, cancel := context.WithTimeout(ctx, etcdRemoveTimeout)
		err := client.Post(cctx, m.OverlayIPs[0], control.PathEtcdRemove, control.EtcdRemoveRequest{Name: node.Name}, nil)
		cancel()
		if err == nil {
			return nil
		}
		if control.IsPermanent(err) {
			return fmt.Errorf("%s's etcd member: %w", node.Name, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("%s is the last control-plane node: removing it would leave the cluster without one", node.Name)
	}
	return fmt.Errorf("no other control-plane node could remove %s's etcd member: %w", node.Name, errors.Join(errs...))
}
