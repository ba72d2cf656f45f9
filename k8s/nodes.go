package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
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
	"k8s.io/client-go/util/workqueue"

	"github.com/hepto-net/hepto/membership"
)

// runNodes gives each Node its pod ranges from the membership (the
// ranges hepto-cni allocates from), in place of the controller-manager's
// node IPAM, its role label and its zone; it keeps the kube-dns Service's endpoints
// on the Ready nodes, and deletes the Nodes of nodes removed from the
// cluster; first, it makes the roles of hepto's own clients. The ranges
// are immutable once set: a Node whose ranges differ is reported, not
// changed.
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
	return n.newNodesController(client, nodesRetry()).run(ctx)
}

// Keys of the nodes controller's work queue: what is to be brought in
// line with the membership and the Nodes.
const (
	keyKubeDNS    = "kube-dns" // the kube-dns Service's endpoints
	keyRemoved    = "removed"  // the Nodes of nodes removed from the cluster
	nodeKeyPrefix = "node/"    // node/NAME: that Node's pod ranges and role label
)

// nodesRetry is how a failed key is retried: after 1 s, then at doubling
// intervals up to 5 min, until it succeeds.
func nodesRetry() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 5*time.Minute)
}

// nodesController is runNodes' loop: the Nodes' and the membership's
// changes put keys in a rate-limited work queue, and one worker brings
// each key in line; a key that fails (an apiserver away, a conflict) is
// retried with back-off rather than left until the next event.
type nodesController struct {
	n      *Node
	client kubernetes.Interface
	queue  workqueue.TypedRateLimitingInterface[string]
	lister corelisters.NodeLister
}

func (n *Node) newNodesController(client kubernetes.Interface, retry workqueue.TypedRateLimiter[string]) *nodesController {
	return &nodesController{n: n, client: client, queue: workqueue.NewTypedRateLimitingQueue(retry)}
}

// run runs the controller until ctx ends.
func (c *nodesController) run(ctx context.Context) error {
	defer c.queue.ShutDown()
	f := informers.NewSharedInformerFactory(c.client, 0)
	inf := f.Core().V1().Nodes().Informer()
	c.lister = f.Core().V1().Nodes().Lister()
	changed := func(obj any) {
		if node, ok := obj.(*corev1.Node); ok {
			c.queue.Add(nodeKeyPrefix + node.Name)
		}
		c.queue.Add(keyKubeDNS)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, obj any) { changed(obj) },
		DeleteFunc: func(any) { c.queue.Add(keyKubeDNS) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil
	}
	var worker sync.WaitGroup
	worker.Go(func() {
		for c.processNext(ctx) {
		}
	})
	defer worker.Wait()
	defer c.queue.ShutDown() // before the wait: the worker's Get returns
	if c.n.o.Membership == nil {
		<-ctx.Done()
		return nil
	}
	// A membership change: removed nodes, and the ranges and role of a
	// member whose Node registered before its record came.
	changes, cancel := c.n.o.Membership.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
		c.queue.Add(keyRemoved)
		nodes, err := c.lister.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, node := range nodes {
			c.queue.Add(nodeKeyPrefix + node.Name)
		}
	}
}

// processNext handles one key; false once the queue is shut down.
func (c *nodesController) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case ctx.Err() != nil:
	default:
		c.n.log.Warn("kubernetes nodes: retrying", "key", key, "err", err, "failures", c.queue.NumRequeues(key)+1)
		c.queue.AddRateLimited(key)
	}
	return true
}

// sync brings one key in line.
func (c *nodesController) sync(ctx context.Context, key string) error {
	switch {
	case key == keyKubeDNS:
		nodes, err := c.lister.List(labels.Everything())
		if err != nil {
			return err
		}
		return c.n.syncKubeDNSEndpoints(ctx, c.client, nodes)
	case key == keyRemoved:
		return c.n.deleteRemoved(ctx, c.client, c.lister)
	case strings.HasPrefix(key, nodeKeyPrefix):
		node, err := c.lister.Get(strings.TrimPrefix(key, nodeKeyPrefix))
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return c.n.setNodeCIDRs(ctx, c.client, node)
	}
	return nil
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

// setNodeCIDRs gives a Node its member's pod ranges, if it has none, the
// control-plane label and its zone.
func (n *Node) setNodeCIDRs(ctx context.Context, client kubernetes.Interface, node *corev1.Node) error {
	m, ok := memberNamed(n.o.Members(), node.Name)
	if !ok {
		return nil
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
	// The zone, from the signed record: a kubelet may label itself with a
	// zone, and is overruled.
	if m.Zone != "" && node.Labels[corev1.LabelTopologyZone] != m.Zone {
		labels[corev1.LabelTopologyZone] = m.Zone
	}
	if len(spec) == 0 && len(labels) == 0 {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"spec": spec, "metadata": map[string]any{"labels": labels}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("node %s: %w", node.Name, err)
	}
	n.log.Info("node updated from the membership", "node", node.Name, "pod_cidrs", want, "labels", labels)
	return nil
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
