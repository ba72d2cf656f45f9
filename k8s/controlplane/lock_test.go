package controlplane

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// A standby reads a lease that another node renews from its watch, not
// from the apiserver; once the lease goes unrenewed for a lease duration,
// or when this node holds it, it reads from the apiserver again.
func TestWatchedLock(t *testing.T) {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-scheduler"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("home-a"), LeaseDurationSeconds: ptr.To[int32](30)},
	}
	client := fake.NewClientset(lease)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const duration = 300 * time.Millisecond
	l := newWatchedLock(ctx, client, "kube-system", "kube-scheduler", "anchor", duration)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := l.lister(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch never synced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	reads := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "get" && a.GetResource().Resource == "leases" {
				n++
			}
		}
		return n
	}
	r, _, err := l.Get(ctx)
	if err != nil || r.HolderIdentity != "home-a" {
		t.Fatalf("record %+v, %v", r, err)
	}
	if n := reads(); n != 0 {
		t.Errorf("%d reads of a lease renewed by another node, want none (the watch)", n)
	}
	time.Sleep(duration + 100*time.Millisecond) // no renewal seen
	if _, _, err := l.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n != 1 {
		t.Errorf("%d reads of a lease unrenewed for a lease duration, want 1", n)
	}
	// Held by this node: always read.
	lease.Spec.HolderIdentity = ptr.To("anchor")
	if _, err := client.CoordinationV1().Leases("kube-system").Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, _, err := l.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n != 2 {
		t.Errorf("%d reads with this node the holder, want 2", n)
	}
}
