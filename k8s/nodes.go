package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hepto-net/hepto/membership"
)

// runNodes gives each Node its pod ranges from the membership (the
// ranges hepto-cni allocates from), in place of the controller-manager's
// node IPAM, and its role label; it keeps the kube-dns Service's endpoints
// on the Ready nodes; first, it makes the roles of hepto's own clients.
// The ranges are immutable once set: a Node whose ranges differ is
// reported, not changed.
func (n *Node) runNodes(ctx context.Context) error {
	if err := n.cp.Ready(ctx); err != nil {
		return nil
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return err
	}
	if err := ensureRBAC(ctx, client); err != nil {
		return err
	}
	if err := n.ensureKubeDNSService(ctx, client); err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	inf := f.Core().V1().Nodes().Informer()
	lister := f.Core().V1().Nodes().Lister()
	syncDNS := func() {
		nodes, err := lister.List(labels.Everything())
		if err == nil {
			err = n.syncKubeDNSEndpoints(ctx, client, nodes)
		}
		if err != nil {
			n.log.Warn("kube-dns endpoints", "err", err)
		}
	}
	set := func(obj any) {
		if node, ok := obj.(*corev1.Node); ok {
			n.setNodeCIDRs(ctx, client, node)
		}
		syncDNS()
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(any) { syncDNS() },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) || n.o.Membership == nil {
		<-ctx.Done()
		return nil
	}
	changes, cancel := n.o.Membership.Subscribe()
	defer cancel()
	retry := time.NewTimer(0)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-retry.C:
		}
		if err := n.deleteRemoved(ctx, client, lister); err != nil {
			n.log.Warn("removed nodes", "err", err)
			retry.Reset(10 * time.Second)
		}
	}
}

// deleteRemoved deletes the Node of each node removed from the cluster
// (hepto remove): its pods are then rescheduled elsewhere at once.
func (n *Node) deleteRemoved(ctx context.Context, client kubernetes.Interface, lister corelisters.NodeLister) error {
	mem := n.o.Membership.Current()
	nodes, err := lister.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, node := range nodes {
		if _, member := mem.Find(node.Name); member || !slices.ContainsFunc(mem.Removed, func(t membership.Tombstone) bool { return t.Name == node.Name }) {
			continue
		}
		err := client.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		n.log.Info("node deleted: removed from the cluster", "node", node.Name)
	}
	return errors.Join(errs...)
}

func (n *Node) setNodeCIDRs(ctx context.Context, client kubernetes.Interface, node *corev1.Node) {
	m, ok := memberNamed(n.o.Members(), node.Name)
	if !ok {
		return
	}
	spec, labels := map[string]any{}, map[string]any{}
	want := prefixStrings(m.PodCIDRs)
	switch {
	case len(node.Spec.PodCIDRs) == 0 && len(want) > 0:
		spec["podCIDR"], spec["podCIDRs"] = want[0], want
	case !slices.Equal(node.Spec.PodCIDRs, want):
		n.log.Warn("node's pod ranges differ from its membership", "node", node.Name, "spec", node.Spec.PodCIDRs, "membership", want)
	}
	// The role label, which a kubelet may not set on itself.
	if _, ok := node.Labels[controlPlaneLabel]; isControlPlane(m) && !ok {
		labels[controlPlaneLabel] = ""
	}
	if len(spec) == 0 && len(labels) == 0 {
		return
	}
	patch, _ := json.Marshal(map[string]any{"spec": spec, "metadata": map[string]any{"labels": labels}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		n.log.Warn("node not updated", "node", node.Name, "err", err)
		return
	}
	n.log.Info("node updated from the membership", "node", node.Name, "pod_cidrs", want, "labels", labels)
}

// controlPlaneLabel marks control-plane nodes, as kubeadm and k3s do.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

func memberNamed(members []membership.Node, name string) (membership.Node, bool) {
	for _, m := range members {
		if m.Name == name {
			return m, true
		}
	}
	return membership.Node{}, false
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
