package k8s

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hepto-net/hepto/k8s/publish"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/membership"
)

var lbNow = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func node(name string, annotations map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
}

// TestSites: anchors publish on their signed endpoint's address and their
// Node's public addresses, keeping their own ports; a home only on its
// global IPv6; a node without a Node, or without a recent lease, is not
// (or not live) a site.
func TestSites(t *testing.T) {
	members := []membership.Node{
		{Name: "vps", Roles: []string{membership.RoleAnchor}, Endpoint: "203.0.113.9:4500"},
		{Name: "fabric-only", Roles: []string{membership.RoleAnchor}, Endpoint: "203.0.113.8:51820"},
		{Name: "stopped", Roles: []string{membership.RoleAnchor}, Endpoint: "203.0.113.7:51820"},
		{Name: "home", Endpoint: ""},
		{Name: "home-v4", Endpoint: ""},
	}
	nodes := []*corev1.Node{
		node("vps", map[string]string{publish.PublicIPs: "203.0.113.9,2001:db8::9,10.0.0.5,junk", publish.ReservedPorts: "50000-65535/udp"}),
		node("stopped", nil),
		node("home", map[string]string{publish.PublicIPs: "198.51.100.3,2001:db8:3::2,fd00::1"}),
		node("home-v4", map[string]string{publish.PublicIPs: "198.51.100.4"}),
	}
	renewed := map[string]time.Time{"vps": lbNow.Add(-5 * time.Second), "stopped": lbNow.Add(-40 * time.Second), "home": lbNow}
	got := sites(members, nodes, renewed, lbNow)
	var names []string
	for _, s := range got {
		names = append(names, s.name)
	}
	if want := []string{"vps", "stopped", "home"}; !slices.Equal(names, want) {
		t.Fatalf("sites %v, want %v", names, want)
	}
	vps, stopped, home := got[0], got[1], got[2]
	if want := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")}; !slices.Equal(vps.addrs, want) || !vps.live || !vps.anchor {
		t.Errorf("vps: %+v, want live anchor on %v", vps, want)
	}
	for _, c := range []struct {
		proto    string
		port     uint16
		reserved bool
	}{{"udp", 4500, true}, {"tcp", 4500, false}, {"udp", 3478, true}, {"tcp", 3478, true}, {"udp", 50001, true}, {"udp", 49999, false}, {"tcp", 50001, false}} {
		_, _, got := reservedOn([]site{vps}, []ports.Range{{Proto: c.proto, Min: c.port, Max: c.port}})
		if got != c.reserved {
			t.Errorf("vps %d/%s reserved %v, want %v", c.port, c.proto, got, c.reserved)
		}
	}
	if stopped.live {
		t.Error("an anchor whose lease is 40 s old is live")
	}
	if want := []netip.Addr{netip.MustParseAddr("2001:db8:3::2")}; !slices.Equal(home.addrs, want) || home.anchor {
		t.Errorf("home: %+v, want on %v only", home, want)
	}
}

// TestDecide: LoadBalancer Services of hepto's class (or none) get the
// live anchors' addresses, oldest first; a port an older one has on the
// same address, or an anchor's own, is refused with the reason; other
// Services are left alone; the mode says who serves each address.
func TestDecide(t *testing.T) {
	a1 := site{name: "a1", anchor: true, live: true, addrs: []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")},
		reserved: []ports.Range{{Proto: "udp", Min: 51820, Max: 51820}}}
	a2 := site{name: "a2", anchor: true, live: true, addrs: []netip.Addr{netip.MustParseAddr("203.0.113.2")}}
	down := site{name: "down", anchor: true, addrs: []netip.Addr{netip.MustParseAddr("203.0.113.3")}}
	home := site{name: "home", live: true, addrs: []netip.Addr{netip.MustParseAddr("2001:db8:5::2")}}
	other := "example.com/other"
	svc := func(name string, age int, proto corev1.Protocol, port int32, annotations map[string]string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name, Annotations: annotations, CreationTimestamp: metav1.NewTime(lbNow.Add(time.Duration(-age) * time.Minute))},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Ports: []corev1.ServicePort{{Protocol: proto, Port: port}}},
		}
	}
	cluster := svc("internal", 20, corev1.ProtocolTCP, 80, nil)
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	theirs := svc("theirs", 19, corev1.ProtocolTCP, 443, nil)
	theirs.Spec.LoadBalancerClass = &other
	local := svc("local", 18, corev1.ProtocolTCP, 8443, nil)
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	dual := svc("dual", 17, corev1.ProtocolTCP, 9000, nil)
	dual.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	services := []*corev1.Service{
		svc("newer", 1, corev1.ProtocolTCP, 443, nil),
		svc("older", 10, "", 443, nil),
		svc("dns", 3, corev1.ProtocolUDP, 443, nil), // another protocol: no conflict
		svc("wg", 2, corev1.ProtocolUDP, 51820, nil),
		svc("on-a2", 4, corev1.ProtocolTCP, 8080, map[string]string{publish.Anchors: "a2"}),
		svc("on-a1", 5, corev1.ProtocolTCP, 8080, map[string]string{publish.Anchors: "a1, nowhere"}),
		svc("on-down", 6, corev1.ProtocolTCP, 8081, map[string]string{publish.Anchors: "down"}),
		svc("proxied", 7, corev1.ProtocolTCP, 25, map[string]string{publish.ProxyProtocol: "v2"}),
		svc("bad", 8, corev1.ProtocolTCP, 26, map[string]string{publish.ProxyProtocol: "v1"}),
		svc("at-home", 9, corev1.ProtocolTCP, 8444, map[string]string{publish.HomeIPv6: "true", publish.Anchors: "a2"}),
		theirs, cluster, local, dual,
	}
	got := map[string]string{}
	for _, d := range decide(services, []site{a1, a2, down, home}, map[string][]string{"web/at-home": {"home"}, "web/local": {"a2"}}) {
		var ips []string
		for _, i := range d.ingress {
			ips = append(ips, i.IP+"="+strings.ToLower(string(*i.IPMode)))
		}
		got[d.service.Name] = strings.TrimSpace(d.cond.Reason + " " + strings.Join(ips, " "))
	}
	want := map[string]string{
		"older":   "Anchors 203.0.113.1=vip 203.0.113.2=vip 2001:db8::1=proxy",
		"dns":     "Anchors 203.0.113.1=vip 203.0.113.2=vip 2001:db8::1=proxy",
		"newer":   "PortTaken",
		"wg":      "PortReserved",
		"on-a1":   "Anchors 203.0.113.1=vip 2001:db8::1=proxy",
		"on-a2":   "Anchors 203.0.113.2=vip", // same port, another anchor
		"on-down": "NoAnchor",
		"proxied": "Anchors 203.0.113.1=proxy 203.0.113.2=proxy 2001:db8::1=proxy",
		"bad":     "BadAnnotation",
		"at-home": "Anchors 203.0.113.2=vip 2001:db8:5::2=proxy",
		"local":   "Anchors 203.0.113.2=vip", // only where a pod runs
		"dual":    "Anchors 203.0.113.1=vip 203.0.113.2=vip 2001:db8::1=vip",
	}
	if !maps.Equal(got, want) {
		for k := range maps.Keys(want) {
			if got[k] != want[k] {
				t.Errorf("%s: %q, want %q", k, got[k], want[k])
			}
		}
		for k := range maps.Keys(got) {
			if _, ok := want[k]; !ok {
				t.Errorf("%s decided (%q), want left alone", k, got[k])
			}
		}
	}
}

// TestLeaseClock: a renewal counts when this node sees the lease change,
// whatever the time it carries (the renewing node's clock may be off).
func TestLeaseClock(t *testing.T) {
	c := leaseClock{}
	skewed := lbNow.Add(-time.Hour) // the anchor's clock is an hour late
	c.observe("anchor", skewed, lbNow)
	c.observe("anchor", skewed, lbNow.Add(10*time.Second)) // no renewal since
	if got := c.seen()["anchor"]; !got.Equal(lbNow) {
		t.Errorf("seen renewed at %v, want %v (the first reading)", got, lbNow)
	}
	c.observe("anchor", skewed.Add(15*time.Second), lbNow.Add(16*time.Second))
	if got := c.seen()["anchor"]; !got.Equal(lbNow.Add(16 * time.Second)) {
		t.Errorf("seen renewed at %v, want when the change was read", got)
	}
}
