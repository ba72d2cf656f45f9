// Package kubewatch feeds the DNS server the names of the Kubernetes DNS
// specification, from the API server through client-go informers:
// services, EndpointSlices and pods. It is apart from package dns so that
// only a node that runs Kubernetes links client-go.
package kubewatch

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hepto-net/hepto/dns"
)

// Sink takes each new picture of the cluster: *dns.Server does.
type Sink interface {
	SetKubernetes(*dns.Kubernetes)
}

// settle is the least time between two pictures: a burst of changes (a
// rollout moves many endpoints at once) makes one picture per settle, while
// a change after a quiet spell makes one at once.
const settle = 100 * time.Millisecond

// Watch gives sink a picture of the cluster once the informers have
// synced, then after every change (at most one per settle), until ctx
// ends; then it gives nil, so that the zone is no longer answered from
// stale data.
func Watch(ctx context.Context, cs kubernetes.Interface, sink Sink, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	services := f.Core().V1().Services()
	slices := f.Discovery().V1().EndpointSlices()
	pods := f.Core().V1().Pods()
	// A pod's addresses are all DNS needs of it: keep nothing else.
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
	for _, inf := range []cache.SharedIndexInformer{services.Informer(), slices.Informer(), pods.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced, slices.Informer().HasSynced, pods.Informer().HasSynced) {
		return ctx.Err()
	}
	defer sink.SetKubernetes(nil)
	for {
		k, err := snapshot(services.Lister().List, slices.Lister().List, pods.Lister().List)
		if err != nil {
			log.Warn("kubernetes dns: list", "err", err)
		} else {
			sink.SetKubernetes(k)
		}
		last := time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		if wait := settle - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Spec:       corev1.PodSpec{HostNetwork: p.Spec.HostNetwork},
		Status:     corev1.PodStatus{PodIPs: p.Status.PodIPs},
	}, nil
}

// tolerateUnready is the annotation by which the specification (2.1,
// "ready") still counts a service's not-ready endpoints.
const tolerateUnready = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

// snapshot converts the informers' objects into the DNS server's model.
func snapshot(
	listServices func(labels.Selector) ([]*corev1.Service, error),
	listSlices func(labels.Selector) ([]*discoveryv1.EndpointSlice, error),
	listPods func(labels.Selector) ([]*corev1.Pod, error),
) (*dns.Kubernetes, error) {
	svcs, err := listServices(labels.Everything())
	if err != nil {
		return nil, err
	}
	eps, err := listSlices(labels.Everything())
	if err != nil {
		return nil, err
	}
	pods, err := listPods(labels.Everything())
	if err != nil {
		return nil, err
	}
	k := &dns.Kubernetes{}
	for _, s := range svcs {
		ks := dns.KubeService{Namespace: s.Namespace, Name: s.Name,
			PublishNotReady: s.Spec.PublishNotReadyAddresses || s.Annotations[tolerateUnready] == "true"}
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			ks.ExternalName = s.Spec.ExternalName
		} else {
			ips := s.Spec.ClusterIPs
			if len(ips) == 0 && s.Spec.ClusterIP != "" {
				ips = []string{s.Spec.ClusterIP}
			}
			ks.ClusterIPs = parseAddrs(ips)
		}
		for _, p := range s.Spec.Ports {
			ks.Ports = append(ks.Ports, dns.KubePort{Name: p.Name, Protocol: string(p.Protocol), Port: uint16(p.Port)})
		}
		k.Services = append(k.Services, ks)
	}
	for _, es := range eps {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		var ports []dns.KubePort
		for _, p := range es.Ports {
			kp := dns.KubePort{Protocol: string(corev1.ProtocolTCP)}
			if p.Name != nil {
				kp.Name = *p.Name
			}
			if p.Protocol != nil {
				kp.Protocol = string(*p.Protocol)
			}
			if p.Port != nil {
				kp.Port = uint16(*p.Port)
			}
			ports = append(ports, kp)
		}
		for _, e := range es.Endpoints {
			ke := dns.KubeEndpoint{Namespace: es.Namespace, Service: svc, Addresses: parseAddrs(e.Addresses), Ports: ports,
				// An unknown condition counts as ready (discovery/v1).
				Ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
			if e.Hostname != nil {
				ke.Hostname = *e.Hostname
			}
			k.Endpoints = append(k.Endpoints, ke)
		}
	}
	for _, p := range pods {
		if p.Spec.HostNetwork {
			continue // the node's own address: no pod name of its own
		}
		var ips []string
		for _, ip := range p.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		if a := parseAddrs(ips); len(a) > 0 {
			k.Pods = append(k.Pods, dns.KubePod{Namespace: p.Namespace, IPs: a})
		}
	}
	return k, nil
}

func parseAddrs(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
