package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/hepto-net/hepto/membership"
)

// fakeMembership is a membership that tests change.
type fakeMembership struct {
	mu      sync.Mutex
	m       membership.Membership
	changes chan struct{}
}

func newFakeMembership(nodes ...membership.Node) *fakeMembership {
	f := &fakeMembership{m: membership.Membership{Cluster: "demo", Nodes: nodes}, changes: make(chan struct{}, 1)}
	f.changes <- struct{}{}
	return f
}

func (f *fakeMembership) Current() membership.Membership {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m
}

func (f *fakeMembership) Subscribe() (<-chan struct{}, func()) { return f.changes, func() {} }

// remove takes a node out of the membership, with its tombstone, and
// tells the subscriber.
func (f *fakeMembership) remove(name string) {
	f.mu.Lock()
	f.m.Nodes = slices.DeleteFunc(slices.Clone(f.m.Nodes), func(n membership.Node) bool { return n.Name == name })
	f.m.Removed = append(slices.Clone(f.m.Removed), membership.Tombstone{Name: name, Removed: time.Now()})
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

var (
	anchorMember = membership.Node{
		Name: "anchor", Index: 1, Roles: []string{membership.RoleAnchor},
		OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fd42::1")},
		PodCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.78.1.0/24"), netip.MustParsePrefix("fd43:0:0:1::/64")},
	}
	homeAMember = membership.Node{
		Name: "home-a", Index: 2,
		OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd42::2")},
		PodCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.78.2.0/24"), netip.MustParsePrefix("fd43:0:0:2::/64")},
	}
	homeBMember = membership.Node{
		Name: "home-b", Index: 3,
		OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.3"), netip.MustParseAddr("fd42::3")},
		PodCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.78.3.0/24"), netip.MustParsePrefix("fd43:0:0:3::/64")},
	}
)

// kubeNode is the Node a member's kubelet registers: its addresses, no
// pod ranges yet.
func kubeNode(m membership.Node, ready bool) *corev1.Node {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: m.Name, Labels: map[string]string{"kubernetes.io/hostname": m.Name}}}
	for _, a := range m.OverlayIPs {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	return node
}

// runController runs the nodes controller of the control-plane node
// "anchor" against client until the test ends; failed keys are retried
// within milliseconds.
func runController(t *testing.T, client *fake.Clientset, mem *fakeMembership) {
	t.Helper()
	var log syncBuffer
	n := &Node{
		o: Options{
			NodeName:     "anchor",
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd96::/108")},
			Members:      func() []membership.Node { return mem.Current().Nodes },
			Membership:   mem,
		},
		role: RoleControlPlane, log: slog.New(slog.NewTextHandler(&log, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	c := n.newNodesController(client, workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, 100*time.Millisecond))
	go func() { done <- c.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the controller did not stop within 5 s")
		}
		if t.Failed() {
			t.Logf("controller's log:\n%s", log.String())
		}
	})
}

// waitFor polls cond for 10 s.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodeHas checks a Node's pod ranges and whether it has the control-plane
// label.
func nodeHas(client *fake.Clientset, name string, cidrs []string, controlPlane bool) func() error {
	return func() error {
		node, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !slices.Equal(node.Spec.PodCIDRs, cidrs) || (len(cidrs) > 0 && node.Spec.PodCIDR != cidrs[0]) {
			return fmt.Errorf("pod ranges %q (%q), want %q", node.Spec.PodCIDRs, node.Spec.PodCIDR, cidrs)
		}
		if _, ok := node.Labels[controlPlaneLabel]; ok != controlPlane {
			return fmt.Errorf("labels %v: control-plane label %v, want %v", node.Labels, ok, controlPlane)
		}
		return nil
	}
}

// Each Node gets its member's pod ranges; the control-plane node gets its
// role label, a worker none.
func TestNodesPodRangesAndRole(t *testing.T) {
	client := fake.NewClientset(kubeNode(anchorMember, true), kubeNode(homeAMember, true))
	runController(t, client, newFakeMembership(anchorMember, homeAMember))
	waitFor(t, "anchor", nodeHas(client, "anchor", prefixStrings(anchorMember.PodCIDRs), true))
	waitFor(t, "home-a", nodeHas(client, "home-a", prefixStrings(homeAMember.PodCIDRs), false))
}

// A Node gets its member's zone, over the one its kubelet gave itself.
func TestNodesZone(t *testing.T) {
	member := homeAMember
	member.Zone = "home-a"
	node := kubeNode(member, true)
	node.Labels = map[string]string{corev1.LabelTopologyZone: "elsewhere"}
	client := fake.NewClientset(node)
	runController(t, client, newFakeMembership(anchorMember, member))
	waitFor(t, "zone", func() error {
		node, err := client.CoreV1().Nodes().Get(context.Background(), "home-a", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if z := node.Labels[corev1.LabelTopologyZone]; z != "home-a" {
			return fmt.Errorf("zone %q, want home-a", z)
		}
		return nil
	})
}

// A Node whose ranges differ from its membership is reported, not changed:
// pod ranges are immutable.
func TestNodesRangesDifferKept(t *testing.T) {
	node := kubeNode(homeAMember, true)
	node.Spec.PodCIDRs = []string{"10.99.0.0/24"}
	node.Spec.PodCIDR = "10.99.0.0/24"
	client := fake.NewClientset(kubeNode(anchorMember, true), node)
	runController(t, client, newFakeMembership(anchorMember, homeAMember))
	waitFor(t, "anchor", nodeHas(client, "anchor", prefixStrings(anchorMember.PodCIDRs), true))
	if err := nodeHas(client, "home-a", []string{"10.99.0.0/24"}, false)(); err != nil {
		t.Error(err)
	}
}

// kube-dns's endpoints are the nodes' overlay addresses from the signed
// membership (not those a Node reports: home-a's says it is 10.0.0.66),
// one slice per family, ready as their Node is, and follow a Node that
// stops being Ready.
func TestNodesKubeDNSEndpoints(t *testing.T) {
	liar := kubeNode(homeAMember, false)
	liar.Status.Addresses = append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.66"}}, liar.Status.Addresses...)
	client := fake.NewClientset(kubeNode(anchorMember, true), liar)
	runController(t, client, newFakeMembership(anchorMember, homeAMember))
	endpoints := func(homeAReady bool) func() error {
		return func() error {
			for family, i := range map[discoveryv1.AddressType]int{discoveryv1.AddressTypeIPv4: 0, discoveryv1.AddressTypeIPv6: 1} {
				name := "kube-dns-hepto-" + map[discoveryv1.AddressType]string{discoveryv1.AddressTypeIPv4: "ipv4", discoveryv1.AddressTypeIPv6: "ipv6"}[family]
				s, err := client.DiscoveryV1().EndpointSlices(kubeDNSNamespace).Get(context.Background(), name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if s.AddressType != family || s.Labels[discoveryv1.LabelServiceName] != kubeDNSName || s.Labels[discoveryv1.LabelManagedBy] != managedBy || len(s.Ports) != 2 {
					return fmt.Errorf("slice %s: %+v", name, s)
				}
				want := []discoveryv1.Endpoint{
					{Addresses: []string{anchorMember.OverlayIPs[i].String()}, NodeName: ptr.To("anchor"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
					{Addresses: []string{homeAMember.OverlayIPs[i].String()}, NodeName: ptr.To("home-a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(homeAReady)}},
				}
				if !sameEndpoints(s.Endpoints, want) {
					return fmt.Errorf("slice %s: endpoints %+v, want %+v", name, s.Endpoints, want)
				}
			}
			return nil
		}
	}
	waitFor(t, "endpoints", endpoints(false))

	// home-a becomes Ready. The fake clientset's watch may start after
	// the informer's list: update until the change is seen.
	ready := kubeNode(homeAMember, true)
	waitFor(t, "endpoints after home-a is Ready", func() error {
		node, err := client.CoreV1().Nodes().Get(context.Background(), "home-a", metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Conditions = ready.Status.Conditions
		node.Annotations = map[string]string{"test": time.Now().String()}
		if _, err := client.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		return endpoints(true)()
	})
}

// A node removed from the membership loses its Node; the others keep
// theirs.
func TestNodesRemovedDeleted(t *testing.T) {
	client := fake.NewClientset(kubeNode(anchorMember, true), kubeNode(homeAMember, true), kubeNode(homeBMember, true))
	mem := newFakeMembership(anchorMember, homeAMember, homeBMember)
	runController(t, client, mem)
	waitFor(t, "home-b", nodeHas(client, "home-b", prefixStrings(homeBMember.PodCIDRs), false))
	mem.remove("home-b")
	waitFor(t, "home-b's Node deleted", func() error {
		_, err := client.CoreV1().Nodes().Get(context.Background(), "home-b", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("home-b's Node is still there (%v)", err)
	})
	for _, name := range []string{"anchor", "home-a"} {
		if _, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s's Node: %v", name, err)
		}
	}
}

// failOnce makes the first call of verb on resource fail, as an apiserver
// that is away, and counts the calls.
func failOnce(client *fake.Clientset, verb, resource string) *atomic.Int32 {
	var calls atomic.Int32
	client.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) == 1 {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	return &calls
}

// A failed update is retried, with no other event to trigger it.
func TestNodesFailedUpdateRetried(t *testing.T) {
	for _, c := range []struct{ verb, resource string }{
		{"patch", "nodes"},
		{"create", "endpointslices"},
		{"delete", "nodes"},
	} {
		t.Run(c.verb+" "+c.resource, func(t *testing.T) {
			// Only the failed call's retry may bring things in line: the
			// anchor's Node needs a patch only when the patch is what fails
			// (a patch makes an update event, which syncs again).
			anchor := kubeNode(anchorMember, true)
			if c.verb != "patch" {
				anchor.Spec.PodCIDRs = prefixStrings(anchorMember.PodCIDRs)
				anchor.Spec.PodCIDR = anchor.Spec.PodCIDRs[0]
				anchor.Labels[controlPlaneLabel] = ""
			}
			client := fake.NewClientset(anchor, kubeNode(homeBMember, true))
			calls := failOnce(client, c.verb, c.resource)
			mem := newFakeMembership(anchorMember)
			if c.verb == "delete" { // else, the Node's deletion would sync kube-dns again
				mem.m.Removed = []membership.Tombstone{{Name: "home-b"}}
			}
			runController(t, client, mem)
			waitFor(t, "the anchor's Node", nodeHas(client, "anchor", prefixStrings(anchorMember.PodCIDRs), true))
			waitFor(t, "kube-dns's endpoints", func() error {
				_, err := client.DiscoveryV1().EndpointSlices(kubeDNSNamespace).Get(context.Background(), "kube-dns-hepto-ipv4", metav1.GetOptions{})
				return err
			})
			waitFor(t, "home-b's Node, deleted when removed", func() error {
				if _, err := client.CoreV1().Nodes().Get(context.Background(), "home-b", metav1.GetOptions{}); (c.verb == "delete") != apierrors.IsNotFound(err) {
					return fmt.Errorf("home-b's Node: %v", err)
				}
				return nil
			})
			if n := calls.Load(); n < 2 {
				t.Errorf("%s %s called %d times, want a retry after the failure", c.verb, c.resource, n)
			}
		})
	}
}
