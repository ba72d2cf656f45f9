package kubewatch

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hepto-net/hepto/dns"
)

func ptr[T any](v T) *T { return &v }

func service(ns, name string, ips ...string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIPs: ips,
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
	if len(ips) == 0 {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
	} else {
		s.Spec.ClusterIP = ips[0]
	}
	return s
}

func slice(ns, svc, name string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr(int32(8080))}},
	}
}

// The informers feed a running DNS server; changes in the API show in
// its answers.
func TestWatchFeedsServer(t *testing.T) {
	cs := fake.NewClientset(
		service("default", "web", "10.96.0.10", "fd00:96::10"),
		service("default", "db"),
		slice("default", "db", "db-1",
			discoveryv1.Endpoint{Addresses: []string{"10.78.1.5"}, Hostname: ptr("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			discoveryv1.Endpoint{Addresses: []string{"10.78.2.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
		),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "ext"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"},
			Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.78.1.5"}}}},
	)
	srv := dns.New(dns.Config{Domain: "demo.internal"})
	defer srv.Close()
	addr := serve(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, cs, srv, nil) }()

	want := func(name string, qtype uint16, rcode int, answers ...string) {
		t.Helper()
		var got []string
		var r *mdns.Msg
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			m := new(mdns.Msg)
			m.SetQuestion(name, qtype)
			var err error
			r, err = mdns.Exchange(m, addr)
			if err == nil && r.Authoritative && r.Rcode == rcode {
				got = nil
				for _, rr := range r.Answer {
					got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
				}
				sort.Strings(got)
				if slices.Equal(got, answers) {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s %s: want %s %v, last answer %v", name, mdns.TypeToString[qtype], mdns.RcodeToString[rcode], answers, r)
	}
	want("dns-version.cluster.local.", mdns.TypeTXT, mdns.RcodeSuccess, `"1.1.0"`)
	want("web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10.96.0.10")
	want("web.default.svc.cluster.local.", mdns.TypeAAAA, mdns.RcodeSuccess, "fd00:96::10")
	want("_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, "0 100 80 web.default.svc.cluster.local.")
	want("10.0.96.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess, "web.default.svc.cluster.local.")
	want("db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10.78.1.5")
	want("db-0.db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10.78.1.5")
	want("_http._tcp.db.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, "0 100 8080 db-0.db.default.svc.cluster.local.")
	want("ext.other.svc.cluster.local.", mdns.TypeCNAME, mdns.RcodeSuccess, "db.example.com.")
	want("10-78-1-5.default.pod.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10.78.1.5")

	// The second endpoint becomes ready; web goes away.
	es, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "db-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Endpoints[1].Conditions.Ready = ptr(true)
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want("db.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, "10.78.1.5", "10.78.2.7")
	want("web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError)

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func serve(t *testing.T, s *dns.Server) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return fmt.Sprint(pc.LocalAddr())
}

// pictures records each picture given to the sink, with its time.
type pictures struct {
	mu    sync.Mutex
	times []time.Time
	last  *dns.Kubernetes
}

func (p *pictures) SetKubernetes(k *dns.Kubernetes) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.times = append(p.times, time.Now())
	p.last = k
}

func (p *pictures) has(name string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return time.Time{}, false
	}
	for _, s := range p.last.Services {
		if s.Name == name {
			return p.times[len(p.times)-1], true
		}
	}
	return time.Time{}, false
}

func (p *pictures) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.times)
}

// A change after a quiet spell makes a picture at once; a burst makes at
// most one per settle.
func TestPicturesAtOnceThenThrottled(t *testing.T) {
	cs := fake.NewClientset()
	p := &pictures{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Watch(ctx, cs, p, nil)
	for p.count() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * settle)

	start := time.Now()
	if _, err := cs.CoreV1().Services("default").Create(ctx, service("default", "lone", "10.96.0.11"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	for ok := false; !ok; at, ok = p.has("lone") {
		if time.Since(start) > 5*time.Second {
			t.Fatal("no picture with the new service")
		}
		time.Sleep(time.Millisecond)
	}
	if d := at.Sub(start); d >= settle {
		t.Errorf("a lone change took %v to show, want less than %v", d, settle)
	}

	time.Sleep(2 * settle)
	before := p.count()
	start = time.Now()
	for i := range 50 {
		if _, err := cs.CoreV1().Services("default").Create(ctx, service("default", fmt.Sprintf("burst-%d", i), fmt.Sprintf("10.96.1.%d", i+1)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, ok := p.has("burst-49"); !ok; _, ok = p.has("burst-49") {
		if time.Since(start) > 5*time.Second {
			t.Fatal("no picture with the last service of the burst")
		}
		time.Sleep(time.Millisecond)
	}
	if n, most := p.count()-before, int(time.Since(start)/settle)+2; n > most {
		t.Errorf("%d pictures for a burst of %v, want at most %d", n, time.Since(start), most)
	}
}
