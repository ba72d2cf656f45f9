package k8s

import (
	"context"
	"errors"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// runLoadBalancers publishes Services of type LoadBalancer through the
// anchors: the live anchors' public addresses go into the Service's
// status (decide), and on each anchor kube-proxy (ipMode VIP) or hepto's
// proxy (ipMode Proxy, package publish) carries the traffic to those
// addresses to the Service's endpoints over the overlay. A port an anchor
// needs itself, or that an older Service has, is refused, with an event
// saying why.
func (n *Node) runLoadBalancers(ctx context.Context) error {
	if err := n.cp.Ready(ctx); err != nil {
		return nil
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	leasesF := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(corev1.NamespaceNodeLease))
	services := f.Core().V1().Services()
	nodes := f.Core().V1().Nodes()
	epSlices := f.Discovery().V1().EndpointSlices()
	leases := leasesF.Coordination().V1().Leases()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	onChange := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), nodes.Informer(), epSlices.Informer()} {
		if _, err := inf.AddEventHandler(onChange); err != nil {
			return err
		}
	}
	// Leases are renewed every 15 s: they are read on the periodic check,
	// not followed.
	_ = leases.Informer()
	f.Start(ctx.Done())
	leasesF.Start(ctx.Done())
	defer f.Shutdown()
	defer leasesF.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced, nodes.Informer().HasSynced,
		epSlices.Informer().HasSynced, leases.Informer().HasSynced) {
		return nil
	}
	var memberChanges <-chan struct{}
	if n.o.Membership != nil {
		ch, cancel := n.o.Membership.Subscribe()
		defer cancel()
		memberChanges = ch
	}
	check := time.NewTicker(lbCheck)
	defer check.Stop()
	renewals := leaseClock{}
	for {
		retry := false
		list, err := services.Lister().List(labels.Everything())
		nodeList, err2 := nodes.Lister().List(labels.Everything())
		leaseList, err3 := leases.Lister().List(labels.Everything())
		sliceList, err4 := epSlices.Lister().List(labels.Everything())
		if err = errors.Join(err, err2, err3, err4); err == nil {
			now := time.Now()
			for _, l := range leaseList {
				if l.Spec.RenewTime != nil {
					renewals.observe(l.Name, l.Spec.RenewTime.Time, now)
				}
			}
			for _, d := range decide(list, sites(n.o.Members(), nodeList, renewals.seen(), now), endpointNodes(sliceList)) {
				if err := n.setStatus(ctx, client, d.service, d.ingress, d.cond); err != nil {
					n.log.Warn("load balancer", "service", d.service.Namespace+"/"+d.service.Name, "err", err)
					retry = true
				}
			}
		}
		var again <-chan time.Time
		if err != nil || retry {
			again = time.After(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-memberChanges:
		case <-check.C:
		case <-again:
		}
	}
}

// lbCheck is how often the sites' leases are looked at.
const lbCheck = 5 * time.Second

// leaseClock tells when this node saw each lease renewed, on its own
// clock: a home's clock may be off by more than the liveness window, the
// time between two readings is not.
type leaseClock map[string]struct{ renew, at time.Time }

func (c leaseClock) observe(name string, renew, now time.Time) {
	if l, ok := c[name]; !ok || !l.renew.Equal(renew) {
		c[name] = struct{ renew, at time.Time }{renew, now}
	}
}

func (c leaseClock) seen() map[string]time.Time {
	out := make(map[string]time.Time, len(c))
	for name, l := range c {
		out[name] = l.at
	}
	return out
}

// endpointNodes are, per Service (namespace/name), the nodes running its
// ready endpoints.
func endpointNodes(list []*discoveryv1.EndpointSlice) map[string][]string {
	out := map[string][]string{}
	for _, s := range list {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := s.Namespace + "/" + svc
		for _, e := range s.Endpoints {
			if e.NodeName != nil && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
				out[key] = append(out[key], *e.NodeName)
			}
		}
	}
	return out
}

// setStatus writes the Service's load-balancer status and condition when
// they differ from what it has.
func (n *Node) setStatus(ctx context.Context, c kubernetes.Interface, s *corev1.Service, ingress []corev1.LoadBalancerIngress, cond metav1.Condition) error {
	old := slices.IndexFunc(s.Status.Conditions, func(c metav1.Condition) bool { return c.Type == cond.Type })
	same := old >= 0 && s.Status.Conditions[old].Status == cond.Status && s.Status.Conditions[old].Reason == cond.Reason && s.Status.Conditions[old].Message == cond.Message
	if same && ingressEqual(s.Status.LoadBalancer.Ingress, ingress) {
		return nil
	}
	if !same && cond.Status == metav1.ConditionFalse {
		n.event(ctx, c, s, cond.Reason, cond.Message)
	}
	u := s.DeepCopy()
	u.Status.LoadBalancer.Ingress = ingress
	cond.LastTransitionTime = metav1.Now()
	cond.ObservedGeneration = s.Generation
	if old >= 0 {
		u.Status.Conditions[old] = cond
	} else {
		u.Status.Conditions = append(u.Status.Conditions, cond)
	}
	_, err := c.CoreV1().Services(s.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{})
	return err
}

func ingressEqual(a, b []corev1.LoadBalancerIngress) bool {
	mode := func(m *corev1.LoadBalancerIPMode) corev1.LoadBalancerIPMode {
		if m == nil {
			return ""
		}
		return *m
	}
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && mode(x.IPMode) == mode(y.IPMode)
	})
}

// event records a warning on the Service (kubectl describe shows it).
func (n *Node) event(ctx context.Context, c kubernetes.Interface, s *corev1.Service, reason, msg string) {
	ref := corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: s.Namespace, Name: s.Name, UID: s.UID}
	n.recordEvent(ctx, c, ref, "hepto-load-balancers", corev1.EventTypeWarning, reason, msg)
}

// recordEvent records an event of component on an object.
func (n *Node) recordEvent(ctx context.Context, c kubernetes.Interface, ref corev1.ObjectReference, component, typ, reason, msg string) {
	now := metav1.Now()
	_, err := c.CoreV1().Events(ref.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: ref.Name + ".", Namespace: ref.Namespace},
		InvolvedObject: ref, Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: component},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{})
	if err != nil {
		n.log.Debug("event", "component", component, "err", err)
	}
}
