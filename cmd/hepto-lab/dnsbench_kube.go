package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/dns"
	"github.com/hepto-net/hepto/dns/kubewatch"
	"github.com/hepto-net/hepto/k8s/pki"
	proxyflags "github.com/hepto-net/hepto/k8s/proxy/flags"
	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

// The Kubernetes part of the DNS benchmark (dns-bench --kubernetes): an
// anchor (control plane) and a home (worker) running hepto's Kubernetes,
// Services made through the apiserver, CoreDNS with its kubernetes plugin
// on the same apiserver in the worker's network namespace, and dnsperf in
// a pod's network namespace on the worker.

type kubeDNSOptions struct {
	bin, coredns, webSrc, refProxy string
	d                              time.Duration
	rounds                         int
	services, endpoints, probes    int
	settle                         time.Duration
	keep, cacheKube                bool
}

func kubeDNSFlags(cmd *cobra.Command, o *kubeDNSOptions) {
	exe, _ := os.Executable()
	f := cmd.Flags()
	f.IntVar(&o.services, "services", 1000, "with --kubernetes: Services made (ClusterIP, no selector, one named port)")
	f.IntVar(&o.endpoints, "endpoints", 5000, "with --kubernetes: endpoints of those Services in all (EndpointSlices)")
	f.IntVar(&o.probes, "probes", 20, "with --kubernetes: Services timed from their creation to an answer from every node")
	f.DurationVar(&o.settle, "settle", 20*time.Second, "with --kubernetes: wait before each memory reading")
	f.StringVar(&o.webSrc, "web", "./lab/web", "with --kubernetes: the test image's program (the pod dnsperf runs in), a Go package")
	f.StringVar(&o.refProxy, "kube-proxy-ref", filepath.Join(filepath.Dir(exe), "k8s-ref", "kube-proxy"),
		"with --kubernetes: upstream kube-proxy (`make k8s-ref`), run beside hepto's for its memory and time; skipped when absent")
	f.BoolVar(&o.cacheKube, "coredns-cache-kube", false, "with --kubernetes: CoreDNS's cache keeps cluster.local answers too (kubeadm's leaves them out)")
	f.BoolVar(&o.keep, "keep", false, "with --kubernetes: keep the run's directory (logs) and print where")
}

// benchNS is the namespace of the benchmark's Services.
const benchNS = "bench"

// kubeDNSRun is what one run measured.
type kubeDNSRun struct {
	created                     time.Duration // all Services and slices created
	programmed                  map[string]time.Duration
	syncs                       map[string]int     // kube-proxy's syncs while the Services came
	syncMean                    map[string]float64 // their mean duration, s
	before, after, end          map[string]memSample
	heptoDNSHeap, zoneHeap      float64 // MB
	headlessZoneHeap            float64
	heapBefore, heapAfter       map[string]float64 // see goHeaps
	results                     []dnsResult
	probes                      map[string][]time.Duration
	refBefore, refAfter, refEnd memSample
	refRan                      bool
}

func dnsBenchKube(ctx context.Context, out io.Writer, o kubeDNSOptions) (err error) {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return fmt.Errorf("dnsperf: %w (apt-get install dnsperf, or make deps)", err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nft: %w (kube-proxy's nftables mode; make deps)", err)
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	dir, err := os.MkdirTemp("", "hepto-dns-bench-kube-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			say("files and logs kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if o.coredns, err = buildCoreDNS(ctx, out, o.coredns, dir); err != nil {
		return err
	}
	archives, err := benchArchives(dir, o.webSrc)
	if err != nil {
		return err
	}
	res := &kubeDNSRun{programmed: map[string]time.Duration{}, probes: map[string][]time.Duration{},
		syncs: map[string]int{}, syncMean: map[string]float64{}}

	l, err := lab.New(ctx, lab.Options{Logger: logger(), Shaping: lab.ShapeNone})
	if err != nil {
		return err
	}
	c := cluster.New(ctx, l, o.bin, filepath.Join(dir, "hepto"))
	c.Kubernetes = true
	var an, w *cluster.Node
	var ref *lab.Proc
	defer func() {
		if ref != nil {
			ref.Stop(syscall.SIGTERM, 5*time.Second)
		}
		for _, n := range []*cluster.Node{w, an} {
			if n != nil && n.Proc != nil {
				n.Stop(syscall.SIGTERM)
			}
		}
		if rerr := c.RemovePods(); rerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", rerr)
		}
		l.Close()
	}()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	resolver, err := l.AddPublicHost("resolver")
	if err != nil {
		return err
	}
	if _, err := resolver.Start(ctx, filepath.Join(dir, "resolver.log"), self, "dns-resolver"); err != nil {
		return err
	}
	pub, err := l.AddPublicHost("anchor")
	if err != nil {
		return err
	}
	home, err := l.AddHome("home", lab.HomeOptions{NAT: lab.EIM})
	if err != nil {
		return err
	}
	wh := home.Machines[0]
	upstream := []string{"--dns-upstream", resolver.IPv4.String()}
	say("starting the control-plane node (anchor) and the worker (home)")
	if an, err = c.Anchor("anchor", pub, upstream...); err != nil {
		return err
	}
	kroot := filepath.Join(an.State, "kubernetes")
	if err := cluster.Eventually(time.Minute, func() error {
		_, err := os.Stat(filepath.Join(kroot, "kubeconfig", "admin.conf"))
		return err
	}); err != nil {
		return err
	}
	p, err := pki.LoadOrCreate(filepath.Join(kroot, "pki"))
	if err != nil {
		return err
	}
	kc, err := newKubeClient(pub, p)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(kroot, "kubeconfig", "admin.conf"))
	if err != nil {
		return err
	}
	cfg.Dial = pub.DialContext
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := kc.waitReady(ctx, "anchor", 3*time.Minute); err != nil {
		return fmt.Errorf("control-plane node: %w", err)
	}
	if w, err = c.Join("home", wh, an, upstream...); err != nil {
		return err
	}
	if err := kc.waitReady(ctx, "home", 3*time.Minute); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if _, err := w.Hepto("images", "import", archives[1]); err != nil {
		return err
	}
	if err := cluster.Eventually(time.Minute, func() error {
		return kc.do(ctx, "GET", "/api/v1/namespaces/default/serviceaccounts/default", nil, nil)
	}); err != nil {
		return err
	}
	// The pod dnsperf runs in: the test image, on the worker.
	if err := kc.createPod(ctx, podSpec("dnsperf", benchImage, "home")); err != nil {
		return err
	}
	if err := kc.waitPodsRunning(ctx, []string{"dnsperf"}, 2*time.Minute); err != nil {
		return err
	}
	pod, err := cs.CoreV1().Pods("default").Get(ctx, "dnsperf", metav1.GetOptions{})
	if err != nil {
		return err
	}
	podNet, err := podNetns(string(pod.UID))
	if err != nil {
		return err
	}
	fromPod := nsRunner{path: podNet}
	ips, err := overlayIPs(w)
	if err != nil {
		return err
	}
	anIPs, err := overlayIPs(an)
	if err != nil {
		return err
	}
	heptoAddr := ips[0].String() // the kubelet's clusterDNS
	coreAddr := wh.IPv4.String() // the worker's LAN address: not hepto's
	say("pod dnsperf (%s) on the worker; hepto's DNS at %s, CoreDNS at %s", pod.Status.PodIP, heptoAddr, coreAddr)

	// CoreDNS as kubeadm 1.37 configures it, less health, ready, loop,
	// reload and loadbalance, on the same apiserver with the admin
	// kubeconfig; kubeadm's cache leaves cluster.local out.
	kconf, err := an.Hepto("kubeconfig")
	if err != nil {
		return err
	}
	kconfPath := filepath.Join(dir, "coredns.kubeconfig")
	corefile := filepath.Join(dir, "Corefile")
	cache := "cache 30 {\n\t\tdisable success cluster.local\n\t\tdisable denial cluster.local\n\t}"
	if o.cacheKube {
		cache = "cache 30"
	}
	conf := fmt.Sprintf(`.:53 {
	bind %[1]s
	errors
	kubernetes cluster.local in-addr.arpa ip6.arpa {
		kubeconfig %[2]s
		pods insecure
		fallthrough in-addr.arpa ip6.arpa
		ttl 30
	}
	prometheus %[1]s:9153
	forward . %[3]s:53 {
		max_concurrent 1000
	}
	%[4]s
}
`, coreAddr, kconfPath, resolver.IPv4, cache)
	if err := os.WriteFile(kconfPath, []byte(kconf), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		return err
	}
	core, err := wh.Start(ctx, filepath.Join(dir, "coredns.log"), o.coredns, "-conf", corefile)
	if err != nil {
		return err
	}

	// Upstream kube-proxy, beside: on a host of its own that reaches the
	// apiserver through a relay to the anchor's loopback.
	var refHost *lab.Host
	if _, err := os.Stat(o.refProxy); err == nil {
		if refHost, ref, err = startRefProxy(ctx, l, pub, p, o.refProxy, filepath.Join(dir, "kube-proxy-ref")); err != nil {
			return fmt.Errorf("upstream kube-proxy: %w", err)
		}
		res.refRan = true
	} else {
		say("no upstream kube-proxy at %s (make k8s-ref): hepto's alone", o.refProxy)
	}

	// The loads.
	var svcQ, fwdQ strings.Builder
	for _, i := range rand.Perm(o.services) {
		fmt.Fprintf(&svcQ, "svc-%d.%s.svc.cluster.local A\n", i, benchNS)
	}
	for i := range 200 {
		fmt.Fprintf(&fwdQ, "www%d.example A\n", i)
	}
	loads := []dnsLoad{{"Service names", "services.txt"}, {"forwarded, cached", "forwarded.txt"}}
	for i, s := range []string{svcQ.String(), fwdQ.String()} {
		if err := os.WriteFile(filepath.Join(dir, loads[i].file), []byte(s), 0o644); err != nil {
			return err
		}
	}
	servers := []dnsTarget{{"hepto", heptoAddr}, {"CoreDNS", coreAddr}}
	for _, s := range servers {
		if err := cluster.Eventually(60*time.Second, func() error {
			return answersAll(ctx, fromPod, s.addr, filepath.Join(dir, "forwarded.txt"), 200)
		}); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}

	say("idle %s before the Services (load average %s)", o.settle, loadAvg())
	if err := sleepCtx(ctx, o.settle); err != nil {
		return err
	}
	procs := map[string]int{"hepto, worker": w.Proc.Pid(), "hepto, control plane": an.Proc.Pid(), "CoreDNS": core.Pid()}
	res.before = readMems(procs)
	if ref != nil {
		res.refBefore = readMem(ref.Pid())
	}
	res.heapBefore = goHeaps(wh, coreAddr)

	// 1,000 Services and their EndpointSlices, 8 requests at a time,
	// while the node's nftables are read every 100 ms.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	watched := map[string]runner{"worker": wh, "control plane": pub}
	metered := map[string]*lab.Host{"hepto's, worker": wh}
	if refHost != nil {
		watched["upstream kube-proxy"] = refHost
		metered["upstream"] = refHost
	}
	type syncCount struct {
		n   int
		sum float64
	}
	syncsBefore := map[string]syncCount{}
	for name, h := range metered {
		n, sum, err := proxySyncs(h)
		if err != nil {
			say("kube-proxy's sync metrics (%s): %v", name, err)
		}
		syncsBefore[name] = syncCount{n, sum}
	}
	say("creating %d Services with %d endpoints (load average %s)", o.services, o.endpoints, loadAvg())
	start := time.Now()
	progc := make(chan map[string]time.Duration, 1)
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer pcancel()
	go func() { progc <- waitProgrammed(pctx, watched, o.services, start) }()
	if err := createServices(ctx, cs, o.services, o.endpoints); err != nil {
		return err
	}
	res.created = time.Since(start)
	res.programmed = <-progc
	for name := range watched {
		if _, ok := res.programmed[name]; !ok {
			return fmt.Errorf("%s: not all %d Services in nftables after 5 minutes", name, o.services)
		}
	}
	for name, h := range metered {
		n, sum, err := proxySyncs(h)
		if b := syncsBefore[name]; err == nil && n > b.n {
			res.syncs[name], res.syncMean[name] = n-b.n, (sum-b.sum)/float64(n-b.n)
		}
	}
	say("created in %.1fs; programmed: %v", res.created.Seconds(), res.programmed)
	for _, s := range servers {
		if err := cluster.Eventually(60*time.Second, func() error {
			return answersAll(ctx, fromPod, s.addr, filepath.Join(dir, "services.txt"), o.services)
		}); err != nil {
			return fmt.Errorf("%s: Service names: %w", s.name, err)
		}
	}
	say("idle %s with the Services (load average %s)", o.settle, loadAvg())
	if err := sleepCtx(ctx, o.settle); err != nil {
		return err
	}
	res.after = readMems(procs)
	if ref != nil {
		res.refAfter = readMem(ref.Pid())
	}
	res.heapAfter = goHeaps(wh, coreAddr)

	// What hepto's DNS holds for them: the same code as the daemon's
	// (kubewatch's informers, the zone), in this process.
	if res.heptoDNSHeap, err = dnsHeap(ctx, cfg, o.services); err != nil {
		return err
	}
	res.zoneHeap = zoneHeap(o.services, o.endpoints, false)
	res.headlessZoneHeap = zoneHeap(o.services, o.endpoints, true)

	// Service creation → an answer from each node's DNS server.
	if res.probes, err = probeServices(ctx, cs, o.probes, []probeTarget{
		{"hepto, worker", wh, heptoAddr}, {"hepto, control plane", pub, anIPs[0].String()}, {"CoreDNS, worker", wh, coreAddr},
	}); err != nil {
		return err
	}

	if res.results, err = dnsLoads(ctx, out, fromPod, servers, loads, dir, o.d, o.rounds); err != nil {
		return err
	}
	res.end = readMems(procs)
	if ref != nil {
		res.refEnd = readMem(ref.Pid())
	}
	printKubeDNS(out, o, res)
	return nil
}

// nsRunner runs programs in a network namespace given by path (a pod's).
type nsRunner struct{ path string }

func (r nsRunner) Run(ctx context.Context, name string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + r.path, "--", name}, args...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// podNetns is the network namespace of a process of the pod: found by
// the pod's cgroup, /proc/PID/ns/net.
func podNetns(uid string) (string, error) {
	marks := []string{"pod" + uid, "pod" + strings.ReplaceAll(uid, "-", "_")}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			continue
		}
		for _, m := range marks {
			if strings.Contains(string(b), m) {
				return fmt.Sprintf("/proc/%d/ns/net", pid), nil
			}
		}
	}
	return "", fmt.Errorf("no process of pod %s", uid)
}

// answersAll runs the load file once and checks that every query got
// NOERROR.
func answersAll(ctx context.Context, h runner, addr, file string, n int) error {
	out, err := dnsperf(ctx, h, addr, file, "-n", "1")
	if err != nil {
		return err
	}
	if !strings.Contains(out, fmt.Sprintf("NOERROR %d (100.00%%)", n)) {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "Response codes") {
				return fmt.Errorf("%s: %s", addr, strings.TrimSpace(line))
			}
		}
		return fmt.Errorf("%s: not every answer NOERROR: %q", addr, out)
	}
	return nil
}

// benchEndpoint is the k-th made-up pod address: 10.78.200.1 onwards, in
// the pod range of no node of the lab.
func benchEndpoint(k int) string {
	return fmt.Sprintf("10.78.%d.%d", 200+k/250, 1+k%250)
}

// createServices makes n Services svc-0 … svc-(n-1) in benchNS, each
// with an EndpointSlice; the endpoints are spread evenly among them.
func createServices(ctx context.Context, cs kubernetes.Interface, n, endpoints int) error {
	jobs := make(chan int)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := createService(ctx, cs, i, n, endpoints); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func createService(ctx context.Context, cs kubernetes.Interface, i, n, endpoints int) error {
	name := fmt.Sprintf("svc-%d", i)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNS},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := cs.CoreV1().Services(benchNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	// Endpoints i*endpoints/n up to (i+1)*endpoints/n.
	var eps []discoveryv1.Endpoint
	ready := true
	for k := i * endpoints / n; k < (i+1)*endpoints/n; k++ {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{benchEndpoint(k)}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	port, proto, portName := int32(8080), corev1.ProtocolTCP, "http"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-1", Namespace: benchNS, Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "hepto-lab"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Protocol: &proto, Port: &port}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(benchNS).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("endpointslice %s: %w", name, err)
	}
	return nil
}

// programmed counts the benchmark's Services in kube-proxy's nftables map
// of Service addresses on h (their chains are named
// service-HASH-NAMESPACE/NAME/PROTOCOL/PORT).
func programmed(ctx context.Context, h runner) (int, error) {
	out, err := h.Run(ctx, "nft", "list", "map", "ip", "kube-proxy", "service-ips")
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "-"+benchNS+"/svc-"), nil
}

// waitProgrammed reads each host's nftables every 100 ms until all n
// Services are there, and returns the time since start for each.
func waitProgrammed(ctx context.Context, hosts map[string]runner, n int, start time.Time) map[string]time.Duration {
	var mu sync.Mutex
	done := map[string]time.Duration{}
	var wg sync.WaitGroup
	for name, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if k, err := programmed(ctx, h); err == nil && k >= n {
					mu.Lock()
					done[name] = time.Since(start)
					mu.Unlock()
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	return done
}

// scrape reads a Prometheus text page on addr from inside h.
func scrape(h *lab.Host, addr string) (string, error) {
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.DialContext}}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metricValue is the value of the sample named exactly name (no labels).
func metricValue(page, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func scrapeGauge(h *lab.Host, addr, name string) float64 {
	page, err := scrape(h, addr)
	if err != nil {
		return 0
	}
	v, _ := metricValue(page, name)
	return v
}

// goHeaps reads, in MB, the heap goal of hepto on the worker and of
// CoreDNS (go_memstats_next_gc_bytes: twice the live heap at the last
// collection, with GOGC=100), and CoreDNS's heap (collected or not).
func goHeaps(wh *lab.Host, coreAddr string) map[string]float64 {
	return map[string]float64{
		"hepto goal":   scrapeGauge(wh, "127.0.0.1:9469", "go_memstats_next_gc_bytes") / 1e6,
		"CoreDNS goal": scrapeGauge(wh, coreAddr+":9153", "go_memstats_next_gc_bytes") / 1e6,
		"CoreDNS":      scrapeGauge(wh, coreAddr+":9153", "go_memstats_heap_alloc_bytes") / 1e6,
	}
}

// proxySyncs reads kube-proxy's count and total time of IPv4 rule syncs
// from its metrics (on the host's loopback).
func proxySyncs(h *lab.Host) (n int, sum float64, err error) {
	page, err := scrape(h, "127.0.0.1:10249")
	if err != nil {
		return 0, 0, err
	}
	const m, v4 = "kubeproxy_sync_proxy_rules_duration_seconds", `{ip_family="IPv4"}`
	c, ok1 := metricValue(page, m+"_count"+v4)
	s, ok2 := metricValue(page, m+"_sum"+v4)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("kube-proxy metrics: no sync duration")
	}
	return int(c), s, nil
}

// memSample is a process's memory, in MB: RSS, and its anonymous part
// (smaps_rollup), which the binary's shared pages do not blur.
type memSample struct{ rss, anon, hwm float64 }

func readMem(pid int) memSample {
	return memSample{rss: procField(pid, "status", "VmRSS"), anon: procField(pid, "smaps_rollup", "Anonymous"), hwm: procField(pid, "status", "VmHWM")}
}

func readMems(pids map[string]int) map[string]memSample {
	m := map[string]memSample{}
	for name, pid := range pids {
		m[name] = readMem(pid)
	}
	return m
}

// liveHeap is the live heap after a collection, in bytes.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// dnsSink keeps the last picture and hands it to the server, as the
// daemon's DNS service does.
type dnsSink struct {
	srv  *dns.Server
	mu   sync.Mutex
	last *dns.Kubernetes
	got  chan struct{}
}

func (s *dnsSink) SetKubernetes(k *dns.Kubernetes) {
	s.mu.Lock()
	s.last = k
	s.mu.Unlock()
	s.srv.SetKubernetes(k)
	if k != nil {
		select {
		case s.got <- struct{}{}:
		default:
		}
	}
}

// dnsHeap measures, in this process, the live heap that hepto's DNS adds
// for the cluster's names: a server fed by kubewatch from the apiserver
// (informers on Services, EndpointSlices and pods; the zone). In MB.
func dnsHeap(ctx context.Context, cfg *rest.Config, services int) (float64, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	before := liveHeap()
	srv := dns.New(dns.Config{Domain: "demo.internal", Self: "bench", Logger: quiet})
	sink := &dnsSink{srv: srv, got: make(chan struct{}, 1)}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- kubewatch.Watch(wctx, cs, sink, quiet) }()
	deadline := time.After(time.Minute)
	for {
		select {
		case <-sink.got:
		case err := <-done:
			cancel()
			return 0, fmt.Errorf("kubewatch: %w", err)
		case <-deadline:
			cancel()
			return 0, fmt.Errorf("kubewatch: no picture with %d Services after a minute", services)
		}
		sink.mu.Lock()
		n := len(sink.last.Services)
		sink.mu.Unlock()
		if n >= services {
			break
		}
	}
	time.Sleep(time.Second)
	after := liveHeap()
	cancel()
	<-done
	runtime.KeepAlive(sink)
	return float64(int64(after)-int64(before)) / 1e6, nil
}

// zoneHeap is the live heap of a Kubernetes zone alone, in MB, for n
// Services with endpoints in all: ClusterIP Services (their endpoints
// make no names), or headless ones (a name per endpoint).
func zoneHeap(n, endpoints int, headless bool) float64 {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := dns.New(dns.Config{Domain: "demo.internal", Self: "bench", Logger: quiet})
	before := liveHeap()
	srv.SetKubernetes(benchZone(n, endpoints, headless))
	after := liveHeap()
	runtime.KeepAlive(srv)
	return float64(int64(after)-int64(before)) / 1e6
}

// benchZone is the picture kubewatch makes of the benchmark's Services.
func benchZone(n, endpoints int, headless bool) *dns.Kubernetes {
	k := &dns.Kubernetes{}
	for i := range n {
		s := dns.KubeService{Namespace: benchNS, Name: fmt.Sprintf("svc-%d", i),
			Ports: []dns.KubePort{{Name: "http", Protocol: "TCP", Port: 80}}}
		if !headless {
			s.ClusterIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(10 + i/250), byte(1 + i%250)})}
		}
		k.Services = append(k.Services, s)
		for e := i * endpoints / n; e < (i+1)*endpoints/n; e++ {
			k.Endpoints = append(k.Endpoints, dns.KubeEndpoint{Namespace: benchNS, Service: s.Name, Ready: true,
				Addresses: []netip.Addr{netip.MustParseAddr(benchEndpoint(e))}, Ports: []dns.KubePort{{Name: "http", Protocol: "TCP", Port: 8080}}})
		}
	}
	return k
}

// probeTarget is a DNS server polled from a lab host.
type probeTarget struct {
	name string
	h    *lab.Host
	addr string
}

// probeServices creates Services one after another and times, for each
// target, the creation request to the first answer with an address,
// polling every 20 ms.
func probeServices(ctx context.Context, cs kubernetes.Interface, n int, targets []probeTarget) (map[string][]time.Duration, error) {
	conns := make([]*mdns.Conn, len(targets))
	for i, t := range targets {
		var c net.Conn
		err := t.h.Do(func() (err error) {
			c, err = net.Dial("udp", net.JoinHostPort(t.addr, "53"))
			return err
		})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = &mdns.Conn{Conn: c}
	}
	out := map[string][]time.Duration{}
	for i := range n {
		name := fmt.Sprintf("probe-%d", i)
		fqdn := name + "." + benchNS + ".svc.cluster.local."
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNS},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		start := time.Now()
		if _, err := cs.CoreV1().Services(benchNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
		var wg sync.WaitGroup
		times := make([]time.Duration, len(targets))
		for j := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < 30*time.Second && ctx.Err() == nil {
					if answered(conns[j], fqdn) {
						times[j] = time.Since(start)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		for j, t := range targets {
			if times[j] == 0 {
				return nil, fmt.Errorf("%s: no answer for %s after 30 s", t.name, fqdn)
			}
			out[t.name] = append(out[t.name], times[j])
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// answered asks for name's A record and says whether an address came.
func answered(c *mdns.Conn, name string) bool {
	q := new(mdns.Msg)
	q.SetQuestion(name, mdns.TypeA)
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if err := c.WriteMsg(q); err != nil {
		return false
	}
	for {
		r, err := c.ReadMsg()
		if err != nil {
			return false
		}
		if r.Id == q.Id {
			return r.Rcode == mdns.RcodeSuccess && len(r.Answer) > 0
		}
	}
}

// startRefProxy runs upstream kube-proxy with hepto's flags (k8s/proxy)
// on a lab host of its own, which reaches the apiserver through a relay
// from its loopback to the anchor's: it programs the host's nftables,
// not a node's.
func startRefProxy(ctx context.Context, l *lab.Lab, anchor *lab.Host, p *pki.PKI, bin, dir string) (*lab.Host, *lab.Proc, error) {
	h, err := l.AddPublicHost("kube-proxy-ref")
	if err != nil {
		return nil, nil, err
	}
	ln, err := h.Listen("tcp", "127.0.0.1:6443")
	if err != nil {
		return nil, nil, err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := anchor.DialContext(ctx, "tcp", "127.0.0.1:6443")
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	pc, pk, err := issue(p.Cluster, pki.KubeProxyClient(), dir, "kube-proxy-client")
	if err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "kube-proxy.conf")
	if err := writeKubeconfig(conf, "https://127.0.0.1:6443", p.Path("ca.crt"), pc, pk); err != nil {
		return nil, nil, err
	}
	proc, err := h.Start(ctx, filepath.Join(dir, "kube-proxy.log"), bin,
		proxyflags.Args(conf, "kube-proxy-ref", h.IPv4.String(), "nftables", "10.78.0.0/16", h.IPv4.String()+"/32")...)
	if err != nil {
		return nil, nil, err
	}
	// Ready once its table exists.
	if err := poll(time.Minute, 200*time.Millisecond, func() error {
		_, err := h.Run(ctx, "nft", "list", "map", "ip", "kube-proxy", "service-ips")
		return err
	}); err != nil {
		proc.Stop(syscall.SIGTERM, 5*time.Second)
		return nil, nil, err
	}
	return h, proc, nil
}

func printKubeDNS(out io.Writer, o kubeDNSOptions, r *kubeDNSRun) {
	mb := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	hw, ha, hc := r.after["hepto, worker"], r.before["hepto, worker"], r.end["hepto, worker"]
	cb, ca, ce := r.before["CoreDNS"], r.after["CoreDNS"], r.end["CoreDNS"]
	printDNSResults(out, r.results, "RSS MB (with the Services, Δ)", map[string]string{
		"hepto":   fmt.Sprintf("%s (+%s), whole worker", mb(hc.rss), mb(hw.rss-ha.rss)),
		"CoreDNS": fmt.Sprintf("%s (+%s)", mb(ce.rss), mb(ca.rss-cb.rss)),
	})

	fmt.Fprintf(out, "\n%d Services, %d endpoints: created in %.1f s (8 requests at a time); all in nftables after:\n", o.services, o.endpoints, r.created.Seconds())
	names := make([]string, 0, len(r.programmed))
	for n := range r.programmed {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(out, "  %s: %.1f s from the first create, %.1f s after the last\n", n, r.programmed[n].Seconds(), (r.programmed[n] - r.created).Seconds())
	}
	for _, n := range []string{"hepto's, worker", "upstream"} {
		if r.syncs[n] > 0 {
			fmt.Fprintf(out, "  kube-proxy (%s): %d syncs of its IPv4 rules meanwhile, %.0f ms each on average\n", n, r.syncs[n], r.syncMean[n]*1000)
		}
	}

	fmt.Fprintf(out, "\nMemory, MB (RSS / anonymous): before the Services, with them (after %s idle), after dnsperf:\n", o.settle)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "process\tbefore\twith Services\tΔ RSS\tΔ anonymous\tafter dnsperf\tpeak RSS\t")
	row := func(name string, b, a, e memSample) {
		fmt.Fprintf(w, "%s\t%.0f / %.0f\t%.0f / %.0f\t%+.1f\t%+.1f\t%.0f / %.0f\t%.0f\t\n", name, b.rss, b.anon, a.rss, a.anon, a.rss-b.rss, a.anon-b.anon, e.rss, e.anon, e.hwm)
	}
	for _, n := range []string{"hepto, worker", "hepto, control plane", "CoreDNS"} {
		row(n, r.before[n], r.after[n], r.end[n])
	}
	if r.refRan {
		row("upstream kube-proxy", r.refBefore, r.refAfter, r.refEnd)
	}
	w.Flush()
	fmt.Fprintf(out, "hepto's DNS for these names (kubewatch's informers and the zone, live heap, measured in hepto-lab): %.1f MB\n", r.heptoDNSHeap)
	fmt.Fprintf(out, "  the zone alone: %.1f MB (ClusterIP Services); %.1f MB were they headless (a name per endpoint)\n", r.zoneHeap, r.headlessZoneHeap)
	fmt.Fprintf(out, "CoreDNS's Go heap (go_memstats_heap_alloc_bytes, collected or not): %.1f MB before the Services, %.1f MB with them\n",
		r.heapBefore["CoreDNS"], r.heapAfter["CoreDNS"])
	fmt.Fprintf(out, "Go heap goal (go_memstats_next_gc_bytes, twice the live heap at the last collection): hepto on the worker %.1f → %.1f MB, CoreDNS %.1f → %.1f MB\n",
		r.heapBefore["hepto goal"], r.heapAfter["hepto goal"], r.heapBefore["CoreDNS goal"], r.heapAfter["CoreDNS goal"])

	fmt.Fprintf(out, "\nService created → first answer with its address (%d Services, polled every 20 ms):\n", o.probes)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "server\tmedian ms\tmax ms\t")
	var every []time.Duration
	nodes := 0
	for _, n := range []string{"hepto, worker", "hepto, control plane", "CoreDNS, worker"} {
		ds := r.probes[n]
		if len(ds) == 0 {
			continue
		}
		med, _, hi := durationStats(ds)
		fmt.Fprintf(w, "%s\t%.0f\t%.0f\t\n", n, float64(med.Microseconds())/1000, float64(hi.Microseconds())/1000)
		if strings.HasPrefix(n, "hepto") {
			nodes++
			if every == nil {
				every = slices.Clone(ds)
			} else {
				for i := range every {
					every[i] = max(every[i], ds[i])
				}
			}
		}
	}
	if nodes > 0 {
		med, _, hi := durationStats(every)
		fmt.Fprintf(w, "hepto, every node\t%.0f\t%.0f\t\n", float64(med.Microseconds())/1000, float64(hi.Microseconds())/1000)
	}
	w.Flush()
}
