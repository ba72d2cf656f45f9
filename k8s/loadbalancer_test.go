package k8s

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

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
