package controlplane

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// watchedLock is a Lease lock whose standby reads come from a watch of
// the lease, served by the node's own apiserver from its cache, instead
// of a read through etcd every RetryPeriod: between homes, each such read
// is a round to the etcd leader. While another node holds the lease and
// the watch saw it renewed within a lease duration, Get answers from the
// watch; otherwise (the lease unrenewed, this node the holder, the watch
// not synced) it reads as upstream's lock does, so that taking the lease
// over and renewing it work on fresh data.
type watchedLock struct {
	*resourcelock.LeaseLock
	duration time.Duration
	lister   func() (*coordinationv1.Lease, error)

	mu      sync.Mutex
	changed time.Time // when the watched lease last changed
}

// newWatchedLock makes the lock and starts its watch, until ctx ends.
func newWatchedLock(ctx context.Context, client kubernetes.Interface, namespace, name, identity string, duration time.Duration) *watchedLock {
	l := &watchedLock{
		LeaseLock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
		},
		duration: duration,
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }))
	inf := f.Coordination().V1().Leases()
	touch := func() {
		l.mu.Lock()
		l.changed = time.Now()
		l.mu.Unlock()
	}
	inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { touch() },
		UpdateFunc: func(any, any) { touch() },
		DeleteFunc: func(any) { touch() },
	})
	synced := inf.Informer().HasSynced
	lister := inf.Lister().Leases(namespace)
	l.lister = func() (*coordinationv1.Lease, error) {
		if !synced() {
			return nil, context.DeadlineExceeded
		}
		return lister.Get(name)
	}
	f.Start(ctx.Done())
	context.AfterFunc(ctx, f.Shutdown)
	return l
}

// Get is the lease's record: from the watch while another node holds it
// and renews it, else read from the apiserver.
func (l *watchedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	if lease, err := l.lister(); err == nil {
		r := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
		l.mu.Lock()
		fresh := time.Since(l.changed) < l.duration
		l.mu.Unlock()
		if r.HolderIdentity != "" && r.HolderIdentity != l.Identity() && fresh {
			b, err := json.Marshal(*r)
			return r, b, err
		}
	}
	return l.LeaseLock.Get(ctx)
}
