package k8s

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hepto-net/hepto/membership"
)

// runNodeCIDRs gives each Node its pod ranges from the membership (the
// ranges hepto-cni allocates from), in place of the controller-manager's
// node IPAM. The ranges are immutable once set: a Node whose ranges
// differ is reported, not changed.
func (n *Node) runNodeCIDRs(ctx context.Context) error {
	if err := n.cp.Ready(ctx); err != nil {
		return nil
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	inf := f.Core().V1().Nodes().Informer()
	set := func(obj any) {
		if node, ok := obj.(*corev1.Node); ok {
			n.setNodeCIDRs(ctx, client, node)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}

func (n *Node) setNodeCIDRs(ctx context.Context, client kubernetes.Interface, node *corev1.Node) {
	want := podCIDRsOf(n.o.Members(), node.Name)
	if len(want) == 0 {
		return
	}
	if len(node.Spec.PodCIDRs) > 0 {
		if !slices.Equal(node.Spec.PodCIDRs, want) {
			n.log.Warn("node's pod ranges differ from its membership", "node", node.Name, "spec", node.Spec.PodCIDRs, "membership", want)
		}
		return
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": want[0], "podCIDRs": want}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		n.log.Warn("node's pod ranges not set", "node", node.Name, "err", err)
		return
	}
	n.log.Info("node's pod ranges set", "node", node.Name, "pod_cidrs", want)
}

func podCIDRsOf(members []membership.Node, name string) []string {
	for _, m := range members {
		if m.Name == name {
			return prefixStrings(m.PodCIDRs)
		}
	}
	return nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
