package netpol

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pod(ns, name, node, ip string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Ports: ports}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	l := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func hosts(ips ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range ips {
		a := netip.MustParseAddr(ip)
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

func TestCompile(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p corev1.Protocol, v intstr.IntOrString, end ...int32) networkingv1.NetworkPolicyPort {
		np := networkingv1.NetworkPolicyPort{Protocol: &p, Port: &v}
		if len(end) > 0 {
			np.EndPort = &end[0]
		}
		return np
	}
	nss := []*corev1.Namespace{namespace("a", map[string]string{"team": "one"}), namespace("b", nil), namespace("c", map[string]string{"team": "one"})}
	web := pod("a", "web", "n1", "10.1.0.2", map[string]string{"app": "web"}, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	db := pod("a", "db", "n1", "10.1.0.3", map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 5432})
	cli := pod("b", "cli", "n2", "10.1.1.2", map[string]string{"app": "cli"})
	cliC := pod("c", "cli", "n2", "10.1.1.3", map[string]string{"app": "cli"})
	far := pod("a", "far", "n2", "10.1.1.4", map[string]string{"app": "db"}, corev1.ContainerPort{Name: "sql", ContainerPort: 3306})
	host := pod("a", "host", "n1", "100.64.0.1", map[string]string{"app": "web"})
	host.Spec.HostNetwork = true
	done := pod("a", "done", "n1", "10.1.0.9", map[string]string{"app": "web"})
	done.Status.Phase = corev1.PodSucceeded
	pods := []*corev1.Pod{web, db, cli, cliC, far, host, done}
	policy := func(name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name}, Spec: spec}
	}

	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		want     []PodRules
	}{
		{"no policy", nil, nil},
		{"deny all ingress", []*networkingv1.NetworkPolicy{policy("deny", networkingv1.NetworkPolicySpec{})}, []PodRules{
			{Key: "a/db", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.3")}, Ingress: &Rules{}},
			{Key: "a/web", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, Ingress: &Rules{}},
		}},
		{"pods of a namespace selector to a named port", []*networkingv1.NetworkPolicy{policy("web", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", "web"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "one"), PodSelector: sel("app", "cli")}},
				Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromString("http")), port(udp, intstr.FromString("http"))},
			}},
		})}, []PodRules{
			{Key: "a/web", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, Ingress: &Rules{Clauses: []Clause{
				{Peers: hosts("10.1.1.3"), Proto: "tcp", Port: 8080, EndPort: 8080},
			}}},
		}},
		{"egress to a named port: each destination's own number", []*networkingv1.NetworkPolicy{policy("web", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", "web"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: sel("app", "db")}, {IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{port(tcp, intstr.FromString("sql"))},
			}},
		})}, []PodRules{
			{Key: "a/web", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, Egress: &Rules{Clauses: []Clause{
				{Peers: hosts("10.1.1.4"), Proto: "tcp", Port: 3306, EndPort: 3306},
				{Peers: hosts("10.1.0.3"), Proto: "tcp", Port: 5432, EndPort: 5432},
			}}},
		}},
		{"ipBlock less exceptions, port range, any peer", []*networkingv1.NetworkPolicy{policy("db", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", "db"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/23", Except: []string{"10.1.1.0/24", "10.1.0.128/25"}}}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: []networkingv1.NetworkPolicyPort{port(udp, intstr.FromInt32(53)), port(tcp, intstr.FromInt32(8000), 8100)},
			}},
		})}, []PodRules{
			{Key: "a/db", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.3")},
				Ingress: &Rules{Clauses: []Clause{{Peers: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/25")}}}},
				Egress: &Rules{Clauses: []Clause{
					{Any: true, Proto: "udp", Port: 53, EndPort: 53},
					{Any: true, Proto: "tcp", Port: 8000, EndPort: 8100},
				}}},
		}},
		{"peers that match nobody allow nothing", []*networkingv1.NetworkPolicy{policy("web", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", "web"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("app", "nobody")}}}},
		})}, []PodRules{
			{Key: "a/web", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, Ingress: &Rules{}},
		}},
		{"an empty rule allows everything", []*networkingv1.NetworkPolicy{policy("web", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", "web"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
		})}, []PodRules{
			{Key: "a/web", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, Ingress: &Rules{Clauses: []Clause{{Any: true}}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Compile(Input{Node: "n1", Pods: pods, Namespaces: nss, Policies: tc.policies})
			if !reflect.DeepEqual(got.Pods, tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got.Pods, tc.want)
			}
		})
	}
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct {
		p    string
		ex   []string
		want []string
	}{
		{"10.0.0.0/8", nil, []string{"10.0.0.0/8"}},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, nil},
		{"10.0.0.0/24", []string{"0.0.0.0/0"}, nil},
		{"10.0.0.0/24", []string{"10.0.0.0/26"}, []string{"10.0.0.64/26", "10.0.0.128/25"}},
		{"10.0.0.0/24", []string{"10.0.0.255/32", "2001:db8::/32"}, []string{"10.0.0.0/25", "10.0.0.128/26", "10.0.0.192/27", "10.0.0.224/28", "10.0.0.240/29", "10.0.0.248/30", "10.0.0.252/31", "10.0.0.254/32"}},
		{"2001:db8::/32", []string{"2001:db8:8000::/33"}, []string{"2001:db8::/33"}},
	} {
		var ex []netip.Prefix
		for _, e := range tc.ex {
			ex = append(ex, netip.MustParsePrefix(e))
		}
		var got []string
		for _, p := range subtract(netip.MustParsePrefix(tc.p), ex) {
			got = append(got, p.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s less %v = %v, want %v", tc.p, tc.ex, got, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("10.2.0.1/32"), netip.MustParsePrefix("10.1.9.9/24"), netip.MustParsePrefix("2001:db8::/64"),
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.1/32"), netip.MustParsePrefix("2001:db8::/64")}
	if got := normalize(in); !reflect.DeepEqual(got, want) {
		t.Errorf("normalize = %v, want %v", got, want)
	}
}
