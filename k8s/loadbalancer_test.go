package k8s

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hepto-net/hepto/membership"
)

func TestAnchorAddrsAndReservedPorts(t *testing.T) {
	members := []membership.Node{
		{Name: "vps", Roles: []string{membership.RoleAnchor}, Endpoint: "203.0.113.9:51820"},
		{Name: "vps6", Roles: []string{membership.RoleAnchor}, Endpoint: "[2001:db8::9]:4500"},
		{Name: "named", Roles: []string{membership.RoleAnchor}, Endpoint: "anchor.example:51820"},
		{Name: "home", Endpoint: "198.51.100.7:51820"},
	}
	want := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")}
	if got := anchorAddrs(members); !slices.Equal(got, want) {
		t.Errorf("anchor addresses %v, want %v (a name and a home left out)", got, want)
	}
	svc := func(proto corev1.Protocol, port int32) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Protocol: "TCP", Port: 443}, {Protocol: proto, Port: port}}}}
	}
	for _, c := range []struct {
		proto    corev1.Protocol
		port     int32
		reserved bool
	}{
		{corev1.ProtocolUDP, 51820, true},
		{corev1.ProtocolUDP, 4500, true},
		{corev1.ProtocolTCP, 51820, false},
		{corev1.ProtocolUDP, 3478, true},
		{corev1.ProtocolTCP, 3478, true},
		{corev1.ProtocolUDP, 53, false},
	} {
		if _, got := reservedPort(svc(c.proto, c.port), members); got != c.reserved {
			t.Errorf("%s %d: reserved %v, want %v", c.proto, c.port, got, c.reserved)
		}
	}
}

// TestDecide: LoadBalancer Services of hepto's class (or none) get the
// anchors' addresses, oldest first; a port an older one has, or an
// anchor's own, is refused with the reason; other Services are left alone.
func TestDecide(t *testing.T) {
	members := []membership.Node{{Name: "vps", Roles: []string{membership.RoleAnchor}, Endpoint: "203.0.113.9:51820"}}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	other := "example.com/other"
	svc := func(name string, age int, proto corev1.Protocol, port int32, class *string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name, CreationTimestamp: metav1.NewTime(at.Add(time.Duration(-age) * time.Minute))},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class, Ports: []corev1.ServicePort{{Protocol: proto, Port: port}}},
		}
	}
	cluster := svc("internal", 9, corev1.ProtocolTCP, 80, nil)
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	got := map[string]string{}
	for _, d := range decide([]*corev1.Service{
		svc("newer", 1, corev1.ProtocolTCP, 443, nil),
		svc("older", 5, "", 443, nil),
		svc("dns", 3, corev1.ProtocolUDP, 443, nil), // another protocol: no conflict
		svc("wg", 2, corev1.ProtocolUDP, 51820, nil),
		svc("theirs", 4, corev1.ProtocolTCP, 443, &other),
		cluster,
	}, members) {
		var ips []string
		for _, i := range d.ingress {
			ips = append(ips, i.IP)
		}
		got[d.service.Name] = d.cond.Reason + " " + slices.Concat(ips, []string{""})[0]
	}
	want := map[string]string{
		"older": "Anchors 203.0.113.9",
		"dns":   "Anchors 203.0.113.9",
		"newer": "PortTaken ",
		"wg":    "PortReserved ",
	}
	if !maps.Equal(got, want) {
		t.Errorf("decisions %v, want %v", got, want)
	}
}
