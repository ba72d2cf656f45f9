package dns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func testKube() *Kubernetes {
	return &Kubernetes{
		Services: []KubeService{
			{Namespace: "default", Name: "web", ClusterIPs: addrs("10.96.0.10", "fd00:96::10"),
				Ports: []KubePort{{Name: "http", Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 8080}}},
			{Namespace: "default", Name: "db", Ports: []KubePort{{Name: "pg", Protocol: "TCP", Port: 5432}}},
			{Namespace: "other", Name: "ext", ExternalName: "db.example.com"},
			{Namespace: "default", Name: "idle"}, // headless, no ready endpoint
		},
		Endpoints: []KubeEndpoint{
			{Namespace: "default", Service: "db", Hostname: "db-0", Addresses: addrs("10.78.1.5"), Ready: true,
				Ports: []KubePort{{Name: "pg", Protocol: "TCP", Port: 5432}}},
			{Namespace: "default", Service: "db", Addresses: addrs("10.78.2.7"), Ready: true,
				Ports: []KubePort{{Name: "pg", Protocol: "TCP", Port: 5432}}},
			{Namespace: "default", Service: "db", Hostname: "db-2", Addresses: addrs("10.78.3.9"), Ready: false},
			{Namespace: "default", Service: "idle", Addresses: addrs("10.78.3.10"), Ready: false},
		},
		Pods: []KubePod{{Namespace: "default", IPs: addrs("10.78.1.5", "fd00:78:1::5")}},
	}
}

// The records of the Kubernetes DNS specification, version 1.1.0.
func TestKubernetesRecords(t *testing.T) {
	s := newTestServer(t, &fakeUpstream{answer: records(t, "web.default.svc.cluster.local. 60 IN A 192.0.2.66", "db.example.com. 60 IN A 192.0.2.77")})
	// Before Kubernetes runs, the zone is not ours.
	r, _ := ask(t, s, question("web.default.svc.cluster.local.", dns.TypeA), false)
	if r.Authoritative {
		t.Fatalf("cluster.local answered before Kubernetes: %v", r)
	}
	s.SetKubernetes(testKube())
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"dns-version.cluster.local.", dns.TypeTXT, 0, []string{"1.1.0"}},
		{"web.default.svc.cluster.local.", dns.TypeA, 0, []string{"10.96.0.10"}},
		{"web.default.svc.cluster.local.", dns.TypeAAAA, 0, []string{"fd00:96::10"}},
		{"_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, 0, []string{"0 100 80 web.default.svc.cluster.local."}},
		{"_http._udp.web.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, nil},
		{"10.0.96.10.in-addr.arpa.", dns.TypePTR, 0, []string{"web.default.svc.cluster.local."}},
		// Headless: ready endpoints only.
		{"db.default.svc.cluster.local.", dns.TypeA, 0, []string{"10.78.1.5", "10.78.2.7"}},
		{"db-0.db.default.svc.cluster.local.", dns.TypeA, 0, []string{"10.78.1.5"}},
		{"db-2.db.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"idle.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"10-78-2-7.db.default.svc.cluster.local.", dns.TypeA, 0, []string{"10.78.2.7"}},
		{"_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV, 0, []string{"0 50 5432 db-0.db.default.svc.cluster.local.", "0 50 5432 10-78-2-7.db.default.svc.cluster.local."}},
		{"5.1.78.10.in-addr.arpa.", dns.TypePTR, 0, []string{"db-0.db.default.svc.cluster.local."}},
		{"ext.other.svc.cluster.local.", dns.TypeCNAME, 0, []string{"CNAME db.example.com."}},
		{"ext.other.svc.cluster.local.", dns.TypeA, 0, []string{"CNAME db.example.com.", "192.0.2.77"}},
		{"ext.other.svc.cluster.local.", dns.TypeAAAA, dns.RcodeNameError, []string{"CNAME db.example.com."}},
		{"10-78-1-5.default.pod.cluster.local.", dns.TypeA, 0, []string{"10.78.1.5"}},
		{"fd00-78-1--5.default.pod.cluster.local.", dns.TypeAAAA, 0, []string{"fd00:78:1::5"}},
		{"10-78-9-9.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"nothing.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"default.svc.cluster.local.", dns.TypeA, 0, nil}, // exists, no records
		{"svc.cluster.local.", dns.TypeA, 0, nil},
	} {
		r, _ := ask(t, s, question(tc.name, tc.qtype), false)
		if r.Rcode != tc.rcode || !r.Authoritative || !slices.Equal(answers(r), tc.want) {
			t.Errorf("%s %s: got %v", tc.name, dns.TypeToString[tc.qtype], r)
		}
		if len(tc.want) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: negative answer without SOA", tc.name)
		}
	}
	// SRV answers carry their targets' addresses.
	r, _ = ask(t, s, question("_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV), false)
	if len(r.Extra) != 2 {
		t.Errorf("SRV additional section: %v", r.Extra)
	}
	// A new snapshot replaces the old; nil gives the zone back to upstream.
	k := testKube()
	k.Services = k.Services[1:]
	s.SetKubernetes(k)
	if r, _ := ask(t, s, question("web.default.svc.cluster.local.", dns.TypeA), false); r.Rcode != dns.RcodeNameError {
		t.Errorf("deleted service: %v", r)
	}
	s.SetKubernetes(nil)
	if r, _ := ask(t, s, question("web.default.svc.cluster.local.", dns.TypeA), false); r.Authoritative || !slices.Equal(answers(r), []string{"192.0.2.66"}) {
		t.Errorf("after Kubernetes: %v", r)
	}
}
