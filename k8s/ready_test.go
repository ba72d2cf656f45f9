package k8s

import (
	"context"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hepto-net/hepto/k8s/component"
)

// Metrics scrapes read the components' states and never ask the
// apiserver; status asks for the Node's Ready condition at most once per
// readyMaxAge.
func TestScrapesDoNotAskTheAPIServer(t *testing.T) {
	var log syncBuffer
	n := onceNode(t, &log)
	n.ready.node = n
	n.states.Set(compKubelet, component.Running)
	n.states.Set(compProxy, "failed: healthz server failed")
	client := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "home-a"},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	})
	var gets atomic.Int32
	client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		return false, nil, nil
	})
	n.ready.client = client

	for range 5 {
		up := n.ComponentsUp()
		if !up[compKubelet] || up[compProxy] || len(up) != 2 {
			t.Fatalf("components up %v", up)
		}
	}
	if g := gets.Load(); g != 0 {
		t.Fatalf("5 scrapes asked the apiserver for the Node %d times, want none", g)
	}
	for range 3 {
		if st := n.Status(context.Background()); !st.Ready || st.Role != RoleWorker || st.Components[compKubelet] != component.Running {
			t.Fatalf("status %+v", st)
		}
	}
	if g := gets.Load(); g != 1 {
		t.Errorf("3 status requests at once asked for the Node %d times, want once", g)
	}
	var none *Node
	if up := none.ComponentsUp(); len(up) != 0 {
		t.Errorf("a node without Kubernetes: components up %v", up)
	}
}
