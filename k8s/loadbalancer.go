package k8s

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/hepto-net/hepto/membership"
)

// LoadBalancerClass is the class of the Services hepto publishes through
// the anchors: those of type LoadBalancer that name it, or no class.
const LoadBalancerClass = "hepto.net/anchors"

// Ports an anchor keeps for itself, whatever its WireGuard port: STUN and
// TURN (UDP and TCP).
var reservedPorts = []uint16{3478}

// runLoadBalancers publishes Services of type LoadBalancer through the
// anchors: their public addresses go into the Service's status, and
// kube-proxy on every node, the anchors among them, carries the traffic
// to those addresses to the Service's endpoints (over the overlay, with
// the anchor's address as source: externalTrafficPolicy Cluster). A port
// an anchor needs itself is refused, with an event saying why.
func (n *Node) runLoadBalancers(ctx context.Context) error {
	if err := n.cp.Ready(ctx); err != nil {
		return nil
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	services := f.Core().V1().Services()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced) {
		return nil
	}
	var memberChanges <-chan struct{}
	if n.o.Membership != nil {
		ch, cancel := n.o.Membership.Subscribe()
		defer cancel()
		memberChanges = ch
	}
	for {
		list, err := services.Lister().List(labels.Everything())
		retry := false
		if err == nil {
			for _, d := range decide(list, n.o.Members()) {
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
		case <-again:
		}
	}
}

// decision is what one Service's status should say.
type decision struct {
	service *corev1.Service
	ingress []corev1.LoadBalancerIngress
	cond    metav1.Condition
}

// decide publishes the Services of type LoadBalancer of hepto's class
// (or none) on the anchors' addresses, oldest first: a port that an
// anchor needs itself, or that an older Service has, is refused, saying
// why.
func decide(services []*corev1.Service, members []membership.Node) []decision {
	var ours []*corev1.Service
	for _, s := range services {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && (s.Spec.LoadBalancerClass == nil || *s.Spec.LoadBalancerClass == LoadBalancerClass) {
			ours = append(ours, s)
		}
	}
	slices.SortFunc(ours, func(a, b *corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var ingress []corev1.LoadBalancerIngress
	for _, a := range anchorAddrs(members) {
		mode := corev1.LoadBalancerIPModeVIP
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: a.String(), IPMode: &mode})
	}
	taken := map[string]string{} // "8080/tcp": the Service that has it
	var out []decision
	for _, s := range ours {
		d := decision{service: s}
		if port, ok := reservedPort(s, members); ok {
			d.cond = metav1.Condition{Type: "Published", Status: metav1.ConditionFalse, Reason: "PortReserved",
				Message: fmt.Sprintf("port %s is the anchors' own (WireGuard and ICE, STUN and TURN): choose another", port)}
			out = append(out, d)
			continue
		}
		var ports []string
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, proto))
		}
		if i := slices.IndexFunc(ports, func(p string) bool { return taken[p] != "" }); i >= 0 {
			d.cond = metav1.Condition{Type: "Published", Status: metav1.ConditionFalse, Reason: "PortTaken",
				Message: fmt.Sprintf("port %s is published already, by the older Service %s", ports[i], taken[ports[i]])}
			out = append(out, d)
			continue
		}
		for _, p := range ports {
			taken[p] = s.Namespace + "/" + s.Name
		}
		d.ingress = ingress
		d.cond = metav1.Condition{Type: "Published", Status: metav1.ConditionTrue, Reason: "Anchors",
			Message: fmt.Sprintf("published on %d anchor address(es)", len(ingress))}
		out = append(out, d)
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
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool { return x.IP == y.IP && x.Hostname == y.Hostname })
}

// anchorAddrs are the anchors' public addresses: the host of each
// anchor's endpoint, when it is an address (a name is left out: kube-proxy
// matches addresses).
func anchorAddrs(members []membership.Node) []netip.Addr {
	var out []netip.Addr
	for _, m := range members {
		if !m.IsAnchor() || m.Endpoint == "" {
			continue
		}
		host, _, err := net.SplitHostPort(m.Endpoint)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// reservedPort tells a Service port that an anchor needs itself: its
// WireGuard and ICE port (UDP), STUN and TURN's.
func reservedPort(s *corev1.Service, members []membership.Node) (string, bool) {
	udp := map[uint16]bool{}
	for _, p := range reservedPorts {
		udp[p] = true
	}
	for _, m := range members {
		if !m.IsAnchor() {
			continue
		}
		if _, port, err := net.SplitHostPort(m.Endpoint); err == nil {
			if p, err := strconv.ParseUint(port, 10, 16); err == nil {
				udp[uint16(p)] = true
			}
		}
	}
	for _, p := range s.Spec.Ports {
		port := uint16(p.Port)
		switch {
		case p.Protocol == corev1.ProtocolUDP && udp[port]:
			return fmt.Sprintf("%d/udp", port), true
		case p.Protocol != corev1.ProtocolUDP && slices.Contains(reservedPorts, port):
			return fmt.Sprintf("%d/%s", port, strings.ToLower(string(p.Protocol))), true
		}
	}
	return "", false
}

// event records a warning on the Service (kubectl describe shows it).
func (n *Node) event(ctx context.Context, c kubernetes.Interface, s *corev1.Service, reason, msg string) {
	now := metav1.Now()
	_, err := c.CoreV1().Events(s.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: s.Name + ".", Namespace: s.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: s.Namespace, Name: s.Name, UID: s.UID},
		Reason:         reason, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "hepto-load-balancers"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{})
	if err != nil {
		n.log.Debug("load balancer: event", "err", err)
	}
}
