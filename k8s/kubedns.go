package k8s

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/hepto-net/hepto/membership"
)

// The kube-dns Service is for tools that look the cluster's DNS up by
// that name: pods ask their own node (the kubelet's clusterDNS), and this
// Service's endpoints are the nodes' DNS servers (their overlay addresses),
// kept by hepto rather than a selector.
const (
	kubeDNSName      = "kube-dns"
	kubeDNSNamespace = "kube-system"
	managedBy        = "hepto"
)

// kubeDNSIP is the tenth address of a Services' range, as kubeadm picks.
func kubeDNSIP(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a
}

var dnsPorts = []corev1.ServicePort{
	{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
	{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
}

// ensureKubeDNSService makes the Service, once.
func (n *Node) ensureKubeDNSService(ctx context.Context, c kubernetes.Interface) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: kubeDNSName, Namespace: kubeDNSNamespace,
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS-compatible"}},
		Spec: corev1.ServiceSpec{
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack),
			Ports:          dnsPorts,
		},
	}
	for _, p := range n.o.ServiceCIDRs {
		svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, kubeDNSIP(p).String())
	}
	svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	// Another control-plane node may make it at the same moment: the
	// apiserver then refuses the address before the name.
	exists := func() bool {
		_, err := c.CoreV1().Services(kubeDNSNamespace).Get(ctx, kubeDNSName, metav1.GetOptions{})
		return err == nil
	}
	if exists() {
		return nil
	}
	_, err := c.CoreV1().Services(kubeDNSNamespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) && !exists() {
		return fmt.Errorf("service %s/%s: %w", kubeDNSNamespace, kubeDNSName, err)
	}
	return nil
}

// syncKubeDNSEndpoints points the Service at the Ready nodes' DNS servers,
// one EndpointSlice per family.
func (n *Node) syncKubeDNSEndpoints(ctx context.Context, c kubernetes.Interface, nodes []*corev1.Node) error {
	addrs := map[discoveryv1.AddressType][]discoveryv1.Endpoint{discoveryv1.AddressTypeIPv4: nil, discoveryv1.AddressTypeIPv6: nil}
	members := map[string]membership.Node{}
	for _, m := range n.o.Members() {
		members[m.Name] = m
	}
	for _, node := range nodes {
		ready := slices.ContainsFunc(node.Status.Conditions, func(c corev1.NodeCondition) bool {
			return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		})
		// The addresses of the signed membership, not those the Node
		// reports: a kubelet may write its own Node's status, and would
		// send the cluster's DNS queries wherever it liked.
		m, ok := members[node.Name]
		if !ok {
			continue
		}
		for _, ip := range m.OverlayIPs {
			family := discoveryv1.AddressTypeIPv4
			if ip.Is6() {
				family = discoveryv1.AddressTypeIPv6
			}
			addrs[family] = append(addrs[family], discoveryv1.Endpoint{
				Addresses: []string{ip.String()}, NodeName: ptr.To(node.Name),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
			})
		}
	}
	slicesAPI := c.DiscoveryV1().EndpointSlices(kubeDNSNamespace)
	for family, eps := range addrs {
		slices.SortFunc(eps, func(a, b discoveryv1.Endpoint) int { return strings.Compare(*a.NodeName, *b.NodeName) })
		want := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: kubeDNSName + "-hepto-" + strings.ToLower(string(family)), Namespace: kubeDNSNamespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: kubeDNSName, discoveryv1.LabelManagedBy: managedBy}},
			AddressType: family,
			Endpoints:   eps,
		}
		for _, p := range dnsPorts {
			want.Ports = append(want.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Protocol: ptr.To(p.Protocol), Port: ptr.To(p.Port)})
		}
		old, err := slicesAPI.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = slicesAPI.Create(ctx, want, metav1.CreateOptions{})
		case err == nil && !sameEndpoints(old.Endpoints, eps):
			old.Endpoints, old.Ports = want.Endpoints, want.Ports
			_, err = slicesAPI.Update(ctx, old, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("endpoints of %s/%s: %w", kubeDNSNamespace, kubeDNSName, err)
		}
	}
	return nil
}

func sameEndpoints(a, b []discoveryv1.Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y discoveryv1.Endpoint) bool {
		return slices.Equal(x.Addresses, y.Addresses) && ptr.Deref(x.NodeName, "") == ptr.Deref(y.NodeName, "") &&
			ptr.Deref(x.Conditions.Ready, false) == ptr.Deref(y.Conditions.Ready, false)
	})
}
