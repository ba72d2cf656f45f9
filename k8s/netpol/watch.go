package netpol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// Options configure Run.
type Options struct {
	Client kubernetes.Interface // reads pods, namespaces, policies
	Node   string               // the Kubernetes node whose pods are enforced
	NFT    knftables.Interface  // family inet, table Table; nil: New()
	Log    *slog.Logger
	// Applied, if set, is called after each plan is in the kernel;
	// Failed, when a plan could not be written (it is retried).
	Applied func(Plan)
	Failed  func(error)
}

// settle is the least time between two writes of the table: a rollout's
// burst of changes makes one write per settle.
const settle = 200 * time.Millisecond

// New is the node's table, driven through the nft program.
func New() (knftables.Interface, error) {
	nft, err := knftables.New(knftables.InetFamily, Table)
	if err != nil {
		return nil, fmt.Errorf("network policy needs nftables: %w", err)
	}
	return nft, nil
}

// Run enforces the cluster's policies on o.Node's pods until ctx ends:
// once the informers have synced, then after every change. The table
// stays when Run ends: stale rules are safer than none until the next
// hepto writes its own.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.NFT == nil {
		nft, err := New()
		if err != nil {
			return err
		}
		o.NFT = nft
	}
	f := informers.NewSharedInformerFactory(o.Client, 0)
	pods := f.Core().V1().Pods()
	namespaces := f.Core().V1().Namespaces()
	policies := f.Networking().V1().NetworkPolicies()
	if err := pods.Informer().SetTransform(slimPod); err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	infs := []cache.SharedIndexInformer{pods.Informer(), namespaces.Informer(), policies.Informer()}
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), infs[0].HasSynced, infs[1].HasSynced, infs[2].HasSynced) {
		return nil
	}
	var last string
	retry := time.Second
	for {
		in := Input{Node: o.Node}
		var errs []error
		var err error
		in.Pods, err = pods.Lister().List(labels.Everything())
		errs = append(errs, err)
		in.Namespaces, err = namespaces.Lister().List(labels.Everything())
		errs = append(errs, err)
		in.Policies, err = policies.Lister().List(labels.Everything())
		errs = append(errs, err)
		wait := time.Duration(0)
		if err := errors.Join(errs...); err != nil {
			o.Log.Warn("network policy: list", "err", err)
			wait = retry
		} else {
			plan := Compile(in)
			tx := o.NFT.NewTransaction()
			write(tx, plan)
			if s := tx.String(); s != last {
				if err := o.NFT.Run(ctx, tx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					o.Log.Error("network policy: nftables", "err", err)
					wait, retry = retry, min(2*retry, time.Minute)
					if o.Failed != nil {
						o.Failed(err)
					}
				} else {
					last, retry = s, time.Second
					o.Log.Debug("network policy: table written", "isolated_pods", len(plan.Pods))
					if o.Applied != nil {
						o.Applied(plan)
					}
				}
			}
		}
		began := time.Now()
		var again <-chan time.Time // after a failure: retry, or sooner on a change
		if wait > 0 {
			again = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-again:
		}
		if d := settle - time.Since(began); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
	}
}

// slimPod keeps of a pod what policies read: labels, node, addresses,
// phase and named ports.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion, Labels: p.Labels},
		Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork},
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIPs: p.Status.PodIPs},
	}
	for _, c := range p.Spec.Containers {
		if len(c.Ports) > 0 {
			slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Ports: c.Ports})
		}
	}
	for _, c := range p.Spec.InitContainers {
		if len(c.Ports) > 0 && c.RestartPolicy != nil {
			slim.Spec.InitContainers = append(slim.Spec.InitContainers, corev1.Container{Ports: c.Ports, RestartPolicy: c.RestartPolicy})
		}
	}
	return slim, nil
}
