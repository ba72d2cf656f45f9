package e2e

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hepto-net/hepto/lab"
)

// namesManifest: a StatefulSet of two web servers, one in each home, and
// the Services of every kind over it; a client pod on the anchor, the node
// with no replica. The readiness probe asks /ready every second: `web`
// answers 503 there once asked /unready.
const namesManifest = `
apiVersion: v1
kind: Namespace
metadata: {name: names}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: names}
spec:
  serviceName: web-hl
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [home-a, home-b]}]
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: web
        image: %[1]s
        imagePullPolicy: Never
        command: [/web, serve]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: names}
spec:
  nodeName: anchor
  containers:
  - {name: web, image: %[1]s, imagePullPolicy: Never, command: [/web, serve]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: names}
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-hl, namespace: names}
spec:
  clusterIP: None
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: names}
spec:
  sessionAffinity: ClientIP
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: names}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: names}
spec:
  clusterIP: None
  selector: {app: nothing}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: names}
spec:
  type: ExternalName
  externalName: www.example
`

// TestKubernetesNames: Services through the in-process kube-proxy and
// names through each node's DNS server, from pods, on the real apiserver;
// one subtest per section of the Kubernetes DNS specification (1.1.0).
func TestKubernetesNames(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatal("dig is missing: apt-get install bind9-dnsutils (make deps)")
	}
	// The lab's Internet has a resolver (www.example.), every node's
	// upstream.
	k := startKube(t, kubeOptions{flags: func(w *world) []string {
		res := startResolver(t, w.ctx, w.publicHost("resolver"))
		return []string{"--dns-upstream", res.host.IPv4.String()}
	}})
	an := k.an
	manifest := filepath.Join(t.TempDir(), "names.yaml")
	if err := os.WriteFile(manifest, fmt.Appendf(nil, namesManifest, webImage), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, an, "apply", "-f", manifest)
	kubectl(t, an, "-n", "names", "rollout", "status", "statefulset/web", "--timeout=120s")
	kubectl(t, an, "-n", "names", "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")

	c := &namesCheck{t: t, k: k, pods: map[string]podInfo{}}
	for _, name := range []string{"web-0", "web-1", "client"} {
		out := kubectl(t, an, "-n", "names", "get", "pod", name, "-o", "jsonpath={.spec.nodeName} {.status.podIPs[*].ip}")
		f := strings.Fields(out)
		if len(f) != 3 {
			t.Fatalf("pod %s: node and addresses %q, want a node and two addresses", name, out)
		}
		c.pods[name] = podInfo{node: f[0], ips: f[1:]}
	}
	if c.pods["web-0"].node == c.pods["web-1"].node {
		t.Fatalf("web-0 and web-1 both on %s", c.pods["web-0"].node)
	}
	c.clusterIPs = strings.Fields(kubectl(t, an, "-n", "names", "get", "service", "web", "-o", "jsonpath={.spec.clusterIPs[*]}"))
	if len(c.clusterIPs) != 2 {
		t.Fatalf("service web: cluster IPs %v, want IPv4 and IPv6", c.clusterIPs)
	}

	t.Run("resolv.conf", c.resolvConf)
	t.Run("ClusterIP every replica", c.everyReplica)
	t.Run("session affinity", c.sessionAffinity)
	t.Run("externalTrafficPolicy Local", c.externalLocal)
	t.Run("kubernetes Service", c.kubernetesService)
	t.Run("Internet and LAN from a pod", c.outside)
	t.Run("2.2 Record for Schema Version", c.schemaVersion)
	t.Run("2.3.1 A AAAA Record", c.clusterA)
	t.Run("2.3.2 SRV Records", c.clusterSRV)
	t.Run("2.3.3 PTR Record", c.clusterPTR)
	t.Run("2.4.1 A AAAA Records", c.headlessA)
	t.Run("2.4.2 SRV Records", c.headlessSRV)
	t.Run("2.4.3 PTR Records", c.headlessPTR)
	t.Run("2.5 Records for External Name Services", c.externalName)
	t.Run("1.0.0 2.6 Deprecated Records pod", c.podRecords)
	t.Run("NXDOMAIN and NODATA", c.negative)
	t.Run("2.4.1 A AAAA Records not ready", c.notReady)
	t.Run("deleted Service", c.deleted)
	t.Run("control plane stopped", c.controlPlaneStopped)
}

type podInfo struct {
	node string
	ips  []string // IPv4, IPv6
}

type namesCheck struct {
	t          *testing.T
	k          *kubeCluster
	pods       map[string]podInfo
	clusterIPs []string // of web: IPv4, IPv6
}

const zone = "names.svc.cluster.local."

// dig asks the client pod's resolver (its node's DNS server): the rcode
// and the answer's records as "TYPE RDATA".
func (c *namesCheck) dig(qtype, name string) (string, []string, error) {
	out, err := kubectlErr(c.k.an, "-n", "names", "exec", "client", "--", "/web", "dig", qtype, name)
	if err != nil {
		return "", nil, fmt.Errorf("dig %s %s in the client pod: %w: %s", qtype, name, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rrs []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) >= 5 {
			rrs = append(rrs, strings.Join(f[3:], " "))
		}
	}
	slices.Sort(rrs)
	return lines[0], rrs, nil
}

// expect waits (10 s) for the answer to qtype name to be rcode and want
// (records as "TYPE RDATA", in any order).
func (c *namesCheck) expect(t *testing.T, qtype, name, rcode string, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	var gotRcode string
	err := retry(10*time.Second, func() error {
		var err error
		gotRcode, got, err = c.dig(qtype, name)
		if err != nil {
			return err
		}
		if gotRcode != rcode || !slices.Equal(got, want) {
			return fmt.Errorf("%s %s: %s %q, want %s %q", name, qtype, gotRcode, got, rcode, want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func retry(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exec runs the web program in pod.
func (c *namesCheck) exec(pod string, args ...string) (string, error) {
	return kubectlErr(c.k.an, append([]string{"-n", "names", "exec", pod, "--", "/web"}, args...)...)
}

func (c *namesCheck) node(name string) *node {
	for _, n := range []*node{c.k.an, c.k.a, c.k.b} {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

func overlayIPs(t *testing.T, n *node) []string {
	t.Helper()
	st, _, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	return st.OverlayIPs
}

// resolvConf: the kubelet gives pods their node's DNS server and the
// specification's search path.
func (c *namesCheck) resolvConf(t *testing.T) {
	out, err := c.exec("client", "cat", "/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if want := "nameserver " + overlayIPs(t, c.k.an)[0]; !strings.Contains(out, want) {
		t.Errorf("client's resolv.conf lacks %q:\n%s", want, out)
	}
	if want := "search names.svc.cluster.local svc.cluster.local cluster.local"; !strings.Contains(out, want) {
		t.Errorf("client's resolv.conf lacks %q:\n%s", want, out)
	}
}

// everyReplica: the ClusterIP Service answers the client (on the node
// without a replica) by both cluster IPs and by its names, and every
// replica answers over repeated requests.
func (c *namesCheck) everyReplica(t *testing.T) {
	targets := []string{"web", "web.names", "web.names.svc.cluster.local"}
	for _, ip := range c.clusterIPs {
		targets = append(targets, net.JoinHostPort(ip, "80"))
	}
	for _, target := range targets {
		seen := map[string]bool{}
		err := retry(30*time.Second, func() error {
			out, err := c.exec("client", "get", "http://"+target+"/")
			if err != nil {
				return err
			}
			seen[strings.TrimSpace(out)] = true
			if !seen["web-0"] || !seen["web-1"] {
				return fmt.Errorf("%s answered by %v only", target, seen)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		for pod := range seen {
			if pod != "web-0" && pod != "web-1" {
				t.Errorf("%s answered by %q, not a replica", target, pod)
			}
		}
	}
}

// sessionAffinity: ClientIP affinity sends the client to one replica. The
// Service has both replicas as endpoints, and the client asks 64 times,
// each on a new connection: without affinity, one replica would answer
// them all once in 2^63 runs (8 requests passed once in 128).
func (c *namesCheck) sessionAffinity(t *testing.T) {
	const requests = 64
	eventually(t, 30*time.Second, func() error {
		out, err := kubectlErr(c.k.an, "-n", "names", "get", "endpointslices", "-l", "kubernetes.io/service-name=sticky",
			"-o", "jsonpath={range .items[*].endpoints[*]}{.targetRef.name}={.conditions.ready} {end}")
		if err != nil {
			return err
		}
		if got := strings.Fields(out); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"web-0=true", "web-1=true"}) {
			return fmt.Errorf("sticky's endpoints: %q, want web-0 and web-1 ready", got)
		}
		return nil
	})
	out, err := c.exec("client", "get", "http://sticky/", strconv.Itoa(requests))
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	seen := map[string]int{}
	answers := strings.Fields(out)
	for _, pod := range answers {
		seen[pod]++
	}
	if len(answers) != requests {
		t.Fatalf("sticky answered %d of %d requests: %q", len(answers), requests, out)
	}
	if len(seen) != 1 {
		t.Errorf("sticky (sessionAffinity ClientIP) answered by %v, want one replica", seen)
	}
}

// externalLocal: a NodePort with externalTrafficPolicy Local is answered
// by the node's own replica only, and not on a node without one.
func (c *namesCheck) externalLocal(t *testing.T) {
	port := strings.TrimSpace(kubectl(t, c.k.an, "-n", "names", "get", "service", "local", "-o", "jsonpath={.spec.ports[0].nodePort}"))
	for _, name := range []string{"web-0", "web-1"} {
		home := c.node(c.pods[name].node)
		addr := net.JoinHostPort(overlayIPs(t, home)[0], port)
		for i := range 6 {
			var out string
			err := retry(20*time.Second, func() error {
				var err error
				out, err = httpGet(c.k.an.Host, "http://"+addr+"/")
				return err
			})
			if err != nil {
				t.Fatalf("node port %s on %s from the anchor: %v", addr, home.Name, err)
			}
			if out != name {
				t.Errorf("request %d to %s on %s answered by %q, want %s (its own replica)", i, addr, home.Name, out, name)
			}
		}
	}
	// The anchor has no replica: its node port drops what comes from
	// another node.
	addr := net.JoinHostPort(overlayIPs(t, c.k.an)[0], port)
	if out, err := httpGet(c.k.a.Host, "http://"+addr+"/"); err == nil {
		t.Errorf("node port %s on the anchor, which has no replica, answered %q", addr, out)
	}
}

// kubernetesService: the kubernetes Service reaches the apiserver, whose
// certificate the pods' service-account CA trusts for that name.
func (c *namesCheck) kubernetesService(t *testing.T) {
	out, err := c.exec("client", "get", "https://kubernetes.default.svc/version")
	if err != nil {
		t.Fatalf("https://kubernetes.default.svc/version from a pod: %v: %s", err, out)
	}
	if !strings.Contains(out, `"gitVersion"`) {
		t.Errorf("apiserver's /version from a pod: %q", out)
	}
}

// outside: a pod in a home reaches the Internet and its home's LAN
// (masqueraded), and names of the Internet through its node's forwarder.
func (c *namesCheck) outside(t *testing.T) {
	bin := filepath.Join(filepath.Dir(c.k.archive), "web")
	var pod string
	for name, p := range c.pods {
		if p.node == "home-a" {
			pod = name
		}
	}
	for _, h := range []*lab.Host{c.k.w.publicHost("www"), c.k.homeA.Box} {
		p, err := h.Start(c.k.w.ctx, filepath.Join(t.TempDir(), "web.log"), bin, "serve", ":8081")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(syscall.SIGTERM, 5*time.Second) })
		url := "http://" + net.JoinHostPort(h.IPv4.String(), "8081") + "/"
		if err := retry(20*time.Second, func() error {
			_, err := c.exec(pod, "get", url)
			return err
		}); err != nil {
			t.Errorf("%s on home-a → %s (%s): %v", pod, url, h.Name, err)
		}
	}
	c.expect(t, "A", "www.example.", "NOERROR", "A 192.0.2.80")
	c.expect(t, "AAAA", "www.example.", "NOERROR", "AAAA 2001:db8:80::80")
	// The node zone, from a pod too.
	c.expect(t, "A", "home-b."+c.k.w.c.Name+".internal.", "NOERROR", "A "+overlayIPs(t, c.k.b)[0])
}

func (c *namesCheck) schemaVersion(t *testing.T) {
	c.expect(t, "TXT", "dns-version.cluster.local.", "NOERROR", `TXT "1.1.0"`)
}

func (c *namesCheck) clusterA(t *testing.T) {
	c.expect(t, "A", "web."+zone, "NOERROR", "A "+c.clusterIPs[0])
	c.expect(t, "AAAA", "web."+zone, "NOERROR", "AAAA "+c.clusterIPs[1])
	// Comparisons are case-insensitive.
	c.expect(t, "A", "WEB.Names.svc.Cluster.LOCAL.", "NOERROR", "A "+c.clusterIPs[0])
}

func (c *namesCheck) clusterSRV(t *testing.T) {
	c.expect(t, "SRV", "_http._tcp.web."+zone, "NOERROR", "SRV 0 100 80 web."+zone)
	// No SRV record for a protocol the port does not have.
	c.expect(t, "SRV", "_http._udp.web."+zone, "NXDOMAIN")
}

func (c *namesCheck) clusterPTR(t *testing.T) {
	for _, ip := range c.clusterIPs {
		rev, err := dns.ReverseAddr(ip)
		if err != nil {
			t.Fatal(err)
		}
		c.expect(t, "PTR", rev, "NOERROR", "PTR web."+zone)
	}
}

func (c *namesCheck) headlessA(t *testing.T) {
	w0, w1 := c.pods["web-0"].ips, c.pods["web-1"].ips
	c.expect(t, "A", "web-hl."+zone, "NOERROR", "A "+w0[0], "A "+w1[0])
	c.expect(t, "AAAA", "web-hl."+zone, "NOERROR", "AAAA "+w0[1], "AAAA "+w1[1])
	// hostname.subdomain: a StatefulSet's pods.
	c.expect(t, "A", "web-0.web-hl."+zone, "NOERROR", "A "+w0[0])
	c.expect(t, "AAAA", "web-1.web-hl."+zone, "NOERROR", "AAAA "+w1[1])
	// No ready endpoint: NXDOMAIN.
	c.expect(t, "A", "empty."+zone, "NXDOMAIN")
}

func (c *namesCheck) headlessSRV(t *testing.T) {
	c.expect(t, "SRV", "_http._tcp.web-hl."+zone, "NOERROR",
		"SRV 0 50 8080 web-0.web-hl."+zone, "SRV 0 50 8080 web-1.web-hl."+zone)
}

func (c *namesCheck) headlessPTR(t *testing.T) {
	for _, ip := range c.pods["web-0"].ips {
		rev, err := dns.ReverseAddr(ip)
		if err != nil {
			t.Fatal(err)
		}
		c.expect(t, "PTR", rev, "NOERROR", "PTR web-0.web-hl."+zone)
	}
}

func (c *namesCheck) externalName(t *testing.T) {
	c.expect(t, "A", "ext."+zone, "NOERROR", "CNAME www.example.", "A 192.0.2.80")
	c.expect(t, "AAAA", "ext."+zone, "NOERROR", "CNAME www.example.", "AAAA 2001:db8:80::80")
	c.expect(t, "CNAME", "ext."+zone, "NOERROR", "CNAME www.example.")
}

// podRecords: <a>-<b>-<c>-<d>.<ns>.pod.<zone>, of version 1.0.0, which
// 1.1.0 no longer lists; Kubernetes' own tests still ask for it.
func (c *namesCheck) podRecords(t *testing.T) {
	ips := c.pods["web-1"].ips
	dashed := func(ip string) string { return strings.NewReplacer(".", "-", ":", "-").Replace(ip) }
	c.expect(t, "A", dashed(ips[0])+".names.pod.cluster.local.", "NOERROR", "A "+ips[0])
	c.expect(t, "AAAA", dashed(ips[1])+".names.pod.cluster.local.", "NOERROR", "AAAA "+ips[1])
}

// negative: a name that does not exist is NXDOMAIN; one that exists
// without records of the type asked is NODATA (NOERROR, no answer).
func (c *namesCheck) negative(t *testing.T) {
	c.expect(t, "A", "nothing."+zone, "NXDOMAIN")
	c.expect(t, "TXT", "web."+zone, "NOERROR")
	c.expect(t, "A", zone, "NOERROR")
	c.expect(t, "A", "web-0.nothing."+zone, "NXDOMAIN")
}

// notReady: a replica that fails its readiness probe leaves the headless
// answer; the specification sets no delay, the records' TTL is 5 s.
func (c *namesCheck) notReady(t *testing.T) {
	w0 := c.pods["web-0"].ips
	if out, err := c.exec("web-1", "get", "http://127.0.0.1:8080/unready"); err != nil {
		t.Fatalf("web-1 /unready: %v: %s", err, out)
	}
	start := time.Now()
	c.expect(t, "A", "web-hl."+zone, "NOERROR", "A "+w0[0])
	t.Logf("web-1 left web-hl's answer %.1fs after it stopped being ready (probe period 1 s)", time.Since(start).Seconds())
	c.expect(t, "A", "web-1.web-hl."+zone, "NXDOMAIN")
}

// deleted: a new Service is answered by every node's DNS server, and
// NXDOMAIN soon after its deletion: within 10 s, a bound for three nodes
// and a control plane on two busy cores (a watch event to each node's
// informers; typically well under a second, which the log shows).
func (c *namesCheck) deleted(t *testing.T) {
	servers := map[string]string{}
	for _, n := range []*node{c.k.an, c.k.a, c.k.b} {
		servers[n.Name] = net.JoinHostPort(overlayIPs(t, n)[0], "53")
	}
	name := "gone." + zone
	// until polls every server from the anchor every 20 ms until each
	// gives rcode; it returns when the last did.
	until := func(rcode int, timeout time.Duration) (time.Duration, error) {
		start := time.Now()
		pending := maps.Clone(servers)
		for len(pending) > 0 {
			if time.Since(start) > timeout {
				return 0, fmt.Errorf("%s: no rcode %s within %v from %v", name, dns.RcodeToString[rcode], timeout, pending)
			}
			for node, addr := range pending {
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				var r *dns.Msg
				c.k.an.Host.Do(func() error {
					r, _, _ = (&dns.Client{Timeout: 200 * time.Millisecond}).Exchange(m, addr)
					return nil
				})
				if r != nil && r.Rcode == rcode {
					delete(pending, node)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start), nil
	}
	kubectl(t, c.k.an, "-n", "names", "create", "service", "clusterip", "gone", "--tcp", "80:8080")
	took, err := until(dns.RcodeSuccess, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new Service answered by every node %.2fs after kubectl create returned", took.Seconds())
	kubectl(t, c.k.an, "-n", "names", "delete", "service", "gone", "--wait=false")
	took, err = until(dns.RcodeNameError, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted Service NXDOMAIN on every node %.2fs after kubectl delete returned", took.Seconds())
}

// controlPlaneStopped: with the control-plane node stopped, a pod in a
// home still gets its cluster names (the node's last picture of the
// cluster) and cached names of the Internet from its node.
func (c *namesCheck) controlPlaneStopped(t *testing.T) {
	var pod string
	for name, p := range c.pods {
		if p.node == "home-a" {
			pod = name
		}
	}
	netns := podNetns(t, c.k.a, c.pods[pod].ips[0])
	server := "@" + overlayIPs(t, c.k.a)[0]
	digPod := func(qtype, name string) (string, error) {
		out, err := exec.Command("nsenter", "--net="+netns, "dig", "+short", "+time=2", "+tries=1", server, name, qtype).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	// Cached before the stop.
	if out, err := digPod("A", "www.example."); err != nil || out != "192.0.2.80" {
		t.Fatalf("from %s: www.example. A: %q (%v)", pod, out, err)
	}
	c.k.an.stop(syscall.SIGTERM)
	for _, q := range []struct{ qtype, name, want string }{
		{"A", "web." + zone, c.clusterIPs[0]},
		{"AAAA", "web-0.web-hl." + zone, c.pods["web-0"].ips[1]},
		{"A", "www.example.", "192.0.2.80"},
		{"A", "home-b." + c.k.w.c.Name + ".internal.", overlayIPs(t, c.k.b)[0]},
	} {
		// Past the TTL of the Kubernetes records (5 s) and of the cached
		// Internet name (4 s) too.
		for range 2 {
			if out, err := digPod(q.qtype, q.name); err != nil || out != q.want {
				t.Errorf("control plane stopped, from %s: %s %s: %q (%v), want %s", pod, q.name, q.qtype, out, err, q.want)
			}
			time.Sleep(3 * time.Second)
		}
	}
}

// podNetns is the network namespace of node n's pod with address ip:
// containerd keeps pods' namespaces under the node's state directory.
func podNetns(t *testing.T, n *node, ip string) string {
	t.Helper()
	var found string
	filepath.WalkDir(filepath.Join(n.State, "kubernetes"), func(path string, d os.DirEntry, err error) error {
		if err != nil || found != "" || d.IsDir() || filepath.Base(filepath.Dir(path)) != "netns" {
			return nil
		}
		out, _ := exec.Command("nsenter", "--net="+path, "ip", "-o", "addr").Output()
		if strings.Contains(string(out), " "+ip+"/") {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no network namespace of %s's pod %s under its state directory", n.Name, ip)
	}
	return found
}

// httpGet fetches url from host h; the body, trimmed.
func httpGet(h *lab.Host, url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: h.DialContext}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}
