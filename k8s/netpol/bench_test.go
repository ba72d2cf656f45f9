package netpol

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"
)

// TestBench (make bench-netpol) prints what NetworkPolicy costs a
// connection: pod-to-pod TCP throughput and connection rate through the
// node with no table, then with 100 policies on both ends (the clause
// that matches last in each chain, 100 other isolated pods), rounds
// alternated; and what compiling and writing such a table costs.
func TestBench(t *testing.T) {
	if os.Getenv("HEPTO_BENCH_NETPOL") == "" {
		t.Skip("a benchmark: HEPTO_BENCH_NETPOL=1 (make bench-netpol) runs it")
	}
	l := newLab(t)
	const rounds = 5
	cases := []struct {
		name string
		set  func()
	}{
		{"no policy", func() {
			_ = exec.Command("ip", "netns", "exec", l.node, "nft", "delete", "table", "inet", Table).Run()
		}},
		{"100 policies", func() { l.apply(t, hundred(l)) }},
	}
	type figures struct{ mbps, conns []float64 }
	got := make([]figures, len(cases))
	for r := 0; r < rounds; r++ {
		for i, c := range cases {
			c.set()
			got[i].mbps = append(got[i].mbps, throughput(t, l.a, "10.200.2.2:80", 2*time.Second))
			got[i].conns = append(got[i].conns, connRate(t, l.a, "10.200.2.2:80", 2*time.Second))
		}
	}
	if !dial(l.a, "10.200.2.2:80") || dial(l.a, "10.200.2.2:81") {
		t.Fatal("the 100 policies do not hold: a must reach b on 80 only")
	}
	fmt.Printf("\nNetworkPolicy, pod to pod through the node (median of %d rounds of 2 s, alternated)\n", rounds)
	fmt.Printf("%-14s %14s %8s %16s %8s\n", "", "TCP Mbit/s", "ratio", "connections/s", "ratio")
	for i, c := range cases {
		m, n := median(got[i].mbps), median(got[i].conns)
		fmt.Printf("%-14s %14.0f %8.2f %16.0f %8.2f\n", c.name, m, m/median(got[0].mbps), n, n/median(got[0].conns))
	}

	in := clusterInput(1000, 100)
	var plan Plan
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plan = Compile(in)
		}
	})
	tx := knftables.NewFake(knftables.InetFamily, Table).NewTransaction()
	write(tx, plan)
	began := time.Now()
	l.apply(t, plan)
	took := time.Since(began)
	fmt.Printf("\nCompile, 1000 pods on 10 nodes, 100 policies: %.2f ms, %.1f MB allocated; %d isolated pods here\n",
		float64(res.NsPerOp())/1e6, float64(res.AllocedBytesPerOp())/1e6, len(plan.Pods))
	fmt.Printf("Their table: %d operations, %d bytes; written by nft in %s\n",
		tx.NumOperations(), len(tx.String()), took.Round(time.Millisecond))
	fmt.Printf("The agent's copy of 1000 pods (slimPod), 10 namespaces, 100 policies: %.1f MB of heap\n", float64(cacheBytes(in))/1e6)
}

// cacheBytes is the heap the informers' copy of in takes: each pod as a
// full pod would arrive (a container with an image, command, ports,
// resources, probes, a volume, status conditions), kept as slimPod keeps
// it.
func cacheBytes(in Input) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var kept []any
	for _, p := range in.Pods {
		full := p.DeepCopy()
		full.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-12-07T10:00:00Z"}
		full.Spec.Containers[0].Image = "registry.example/app:1.2.3"
		full.Spec.Containers[0].Command = []string{"/app", "serve", "--port=8080"}
		full.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		full.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		s, _ := slimPod(full)
		kept = append(kept, s)
	}
	for _, n := range in.Namespaces {
		kept = append(kept, n.DeepCopy())
	}
	for _, p := range in.Policies {
		kept = append(kept, p.DeepCopy())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	runtime.KeepAlive(in) // alive before: not to be counted as freed
	return after.HeapAlloc - before.HeapAlloc
}

// hundred is a plan of 100 policies: b admits 100 peers on 80 (a last),
// a sends to 100 destinations on 80 (b last), and 100 other pods are
// isolated too.
func hundred(l *lab) Plan {
	var in, out []Clause
	for i := 0; i < 99; i++ {
		in = append(in, Clause{Peers: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.201.%d.%d/32", i/250, i%250+1))}, Proto: "tcp", Port: 80, EndPort: 80})
		out = append(out, Clause{Peers: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.202.%d.%d/32", i/250, i%250+1))}, Proto: "tcp", Port: 80, EndPort: 80})
	}
	in = append(in, Clause{Peers: hosts(l.aIPs[0].String(), l.aIPs[1].String()), Proto: "tcp", Port: 80, EndPort: 80})
	out = append(out, Clause{Peers: hosts(l.bIPs[0].String(), l.bIPs[1].String()), Proto: "tcp", Port: 80, EndPort: 80})
	p := Plan{Pods: []PodRules{
		{Key: "x/a", IPs: l.aIPs, Egress: &Rules{Clauses: out}},
		{Key: "x/b", IPs: l.bIPs, Ingress: &Rules{Clauses: in}},
	}}
	for i := 0; i < 100; i++ {
		p.Pods = append(p.Pods, PodRules{Key: fmt.Sprintf("y/p%d", i), IPs: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("10.203.0.%d", i+1))},
			Ingress: &Rules{Clauses: in[:10]}})
	}
	return p
}

// clusterInput is a cluster of pods pods over 10 nodes in 10 namespaces,
// and policies policies, each selecting an app and admitting another app's
// pods from namespaces of a team on a named port.
func clusterInput(pods, policies int) Input {
	var in Input
	for i := 0; i < 10; i++ {
		in.Namespaces = append(in.Namespaces, namespace(fmt.Sprintf("ns%d", i), map[string]string{"team": fmt.Sprint(i % 3)}))
	}
	for i := 0; i < pods; i++ {
		p := pod(fmt.Sprintf("ns%d", i%10), fmt.Sprintf("p%d", i), fmt.Sprintf("n%d", i%10),
			fmt.Sprintf("10.42.%d.%d", i/250, i%250+1), map[string]string{"app": fmt.Sprint("app", i%20)},
			corev1.ContainerPort{Name: "http", ContainerPort: 8080})
		in.Pods = append(in.Pods, p)
	}
	in.Node = "n0"
	for i := 0; i < policies; i++ {
		named := intstr.FromString("http")
		in.Policies = append(in.Policies, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", i%10), Name: fmt.Sprintf("pol%d", i)},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *sel("app", fmt.Sprint("app", i%20)),
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", fmt.Sprint(i%3)), PodSelector: sel("app", fmt.Sprint("app", (i+1)%20))}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: &named}},
				}},
			},
		})
	}
	return in
}

// throughput is a TCP stream's rate from netns name to addr, in Mbit/s.
func throughput(t *testing.T, name, addr string, d time.Duration) float64 {
	t.Helper()
	var sent int64
	err := ns.WithNetNSPath("/run/netns/"+name, func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil && err != io.ErrShortWrite {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return float64(sent) * 8 / 1e6 / d.Seconds()
}

// connRate is how many TCP connections a second netns name opens (and
// closes) to addr, one after the other.
func connRate(t *testing.T, name, addr string, d time.Duration) float64 {
	t.Helper()
	n := 0
	err := ns.WithNetNSPath("/run/netns/"+name, func(ns.NetNS) error {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			// RST rather than TIME_WAIT: thousands of closed connections
			// would fill the port range.
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return float64(n) / d.Seconds()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
