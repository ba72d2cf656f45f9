package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/registry"
)

// webImage is the test's image: lab/web, built for the run.
const webImage = "hepto.test/web:1"

// TestKubernetes: an anchor (control plane) and two homes, one behind an
// endpoint-independent NAT and one behind a symmetric NAT, each a
// Kubernetes node with its own kubelet and containerd.
func TestKubernetes(t *testing.T) {
	// The anchor and home-a find the image in STATE/images at start;
	// home-b gets it through `hepto images import`.
	k := startKube(t, kubeOptions{importLater: "home-b", swap: true})
	w, an, a, b, homeB := k.w, k.an, k.a, k.b, k.homeB
	nodes := []*node{an, a, b}
	for _, n := range nodes {
		st, _, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		wantRole := "worker"
		if n == an {
			wantRole = "control-plane"
		}
		if k := st.Kubernetes; k.Role != wantRole || !k.Ready || k.Components["kubelet"] != "running" || k.Components["containerd"] != "running" {
			t.Errorf("%s: status kubernetes %+v, want role %s, ready, kubelet and containerd running", n.Name, k, wantRole)
		}
	}
	checkNodes(t, an, nodes)
	onlyHeptoGetsCredentials(t, a, an, an)
	checkSharedSafely(t, an)
	checkKubeconfigs(t, an)
	// Imported images are pinned: the kubelet's image garbage collection,
	// when the disk fills up, leaves them (no registry would give them back).
	for _, n := range []*node{an, b} {
		out, err := exec.Command(filepath.Join(filepath.Dir(heptoBin), "ctr"), "--address",
			filepath.Join(n.State, "kubernetes", "containerd", "containerd.sock"), "--namespace", "k8s.io", "images", "ls").CombinedOutput()
		if err != nil {
			t.Fatalf("ctr images ls on %s: %v: %s", n.Name, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, webImage+" ") && !strings.Contains(line, "io.cri-containerd.pinned=pinned") {
				t.Errorf("%s: %s not pinned: %s", n.Name, webImage, line)
			}
		}
		if !strings.Contains(string(out), webImage+" ") {
			t.Errorf("%s: no %s among the images:\n%s", n.Name, webImage, out)
		}
	}
	eventually(t, 30*time.Second, func() error {
		roles, err := kubectlErr(an, "get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o", "name")
		if strings.TrimSpace(roles) != "node/anchor" {
			return fmt.Errorf("control-plane nodes: %q (%v), want node/anchor", roles, err)
		}
		return nil
	})

	// One pod pinned on each node.
	for _, n := range nodes {
		kubectl(t, an, "run", "web-"+n.Name, "--image", webImage, "--image-pull-policy", "Never",
			"--overrides", fmt.Sprintf(`{"spec":{"nodeName":%q}}`, n.Name), "--command", "--", "/web", "serve")
	}
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/web-anchor", "pod/web-home-a", "pod/web-home-b", "--timeout=120s")
	ips := map[string][]string{}
	for _, n := range nodes {
		ips[n.Name] = podIPs(t, an, "web-"+n.Name)
		if len(ips[n.Name]) != 2 {
			t.Fatalf("pod web-%s: addresses %v, want IPv4 and IPv6", n.Name, ips[n.Name])
		}
	}

	// Pods reach each other by pod IP across homes, both families.
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			for _, ip := range ips[to.Name] {
				url := "http://" + net.JoinHostPort(ip, "8080") + "/"
				var out string
				eventually(t, 30*time.Second, func() error {
					var err error
					out, err = kubectlErr(an, "exec", "web-"+from.Name, "--", "/web", "get", url)
					return err
				})
				if strings.TrimSpace(out) != "web-"+to.Name {
					t.Errorf("web-%s → %s: %q, want web-%s", from.Name, url, out, to.Name)
				}
			}
		}
	}

	checkNetworkPolicy(t, an, nodes, ips)
	checkLoadBalancer(t, k)

	// logs, exec and port-forward on the pod in the symmetric home: the
	// apiserver reaches its kubelet over the overlay.
	if out := kubectl(t, an, "logs", "web-home-b"); !strings.Contains(out, "listening on :8080") {
		t.Errorf("kubectl logs web-home-b: %q", out)
	}
	if out := kubectl(t, an, "exec", "web-home-b", "--", "/web", "echo", "hello", "from", "home-b"); strings.TrimSpace(out) != "hello from home-b" {
		t.Errorf("kubectl exec: %q", out)
	}
	checkPortForward(t, w, an)

	// A Deployment of 6 spreads over the two homes, not on the tainted
	// anchor.
	checkTaints(t, an, "anchor")
	kubectl(t, an, "create", "deployment", "spread", "--image", webImage, "--replicas", "6", "--", "/web", "serve")
	kubectl(t, an, "rollout", "status", "deployment/spread", "--timeout=120s")
	spread := map[string]int{}
	for _, line := range strings.Fields(kubectl(t, an, "get", "pods", "-l", "app=spread", "-o", "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}")) {
		spread[line]++
	}
	if len(spread) != 2 || spread["anchor"] != 0 {
		t.Errorf("deployment of 6 on nodes %v, want both homes and not the anchor", spread)
	}

	checkServices(t, an)
	checkNodePort(t, an, b, homeB.Box)
	checkHostPort(t, an, b, homeB.Box)
	checkLANIsolated(t, an, b, homeB.Box)
	checkReadOnlyRoot(t, an, b)
	checkMirror(t, an, b)
	checkCredentials(t, an, a)
	checkAdminKubeconfig(t, an, b, len(nodes))
	checkSharedShim(t, an, b)

	// Every component up, in the metrics too.
	metrics := w.fetch(an.Host, "http://127.0.0.1:9469/metrics")
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet"} {
		if want := `hepto_component_up{component="` + c + `"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("anchor's metrics lack %s", want)
		}
	}

	// SIGTERM, then SIGKILL, of hepto on a home: the next start adopts its
	// pods each time.
	before := containerIDs(t, an, "home-b")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		b.stop(sig)
		restarted := time.Now()
		b.start()
		b.waitSocket()
		// The new kubelet is back once it renews its node's lease.
		eventually(t, 2*time.Minute, func() error {
			out, err := kubectlErr(an, "get", "lease", "-n", "kube-node-lease", "home-b", "-o", "jsonpath={.spec.renewTime}")
			if err != nil {
				return err
			}
			renewed, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
			if err != nil || !renewed.After(restarted) {
				return fmt.Errorf("home-b's lease renewed at %q, before its restart (%v)", out, err)
			}
			return nil
		})
		// Then it has synced the node's pods: a pod worker's first sync is
		// where a container would be started again.
		synced := kubeletSynced(t, an, "home-b", before)
		t.Logf("home-b's new kubelet: %v pod syncs %.1fs after the restart", synced.syncs, time.Since(restarted).Seconds())
		if synced.started > 0 {
			t.Errorf("home-b's new kubelet started %v containers after %v, want none (adopted)", synced.started, sig)
		}
		if after := containerIDs(t, an, "home-b"); !maps.Equal(before, after) {
			t.Errorf("containers on home-b after %v and a new start: before %v, after %v", sig, before, after)
		}
		eventually(t, 30*time.Second, func() error {
			st, _, err := b.status()
			if err != nil {
				return err
			}
			if !st.Kubernetes.Ready || st.Kubernetes.Components["kubelet"] != "running" {
				return fmt.Errorf("home-b after %v: kubernetes %+v", sig, st.Kubernetes)
			}
			return nil
		})
	}

	// Kubernetes refused (no runc on PATH): one clear error, the overlay
	// goes on.
	a.stop(syscall.SIGTERM)
	a.Env = []string{"PATH=" + pathWithout(t, "runc")}
	a.start()
	a.waitSocket()
	st, _, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Kubernetes.Components["containerd"]; !strings.Contains(c, "runc not found") {
		t.Errorf("home-a without runc: containerd %q, want a failure naming runc", c)
	}
	if err := a.ping(anOverlay(t, an), 20*time.Second); err != nil {
		t.Errorf("home-a without runc: overlay ping: %v", err)
	}
	log, _ := os.ReadFile(a.Log)
	if n := strings.Count(string(log), "kubernetes cannot start"); n != 1 {
		t.Errorf("home-a without runc: %d lines saying Kubernetes cannot start, want 1", n)
	}
}

// kubeCluster is an anchor (the control plane) and two homes, home-a
// behind an endpoint-independent NAT and home-b behind a symmetric one,
// each a Kubernetes node with its own kubelet and containerd, all Ready.
type kubeCluster struct {
	w            *world
	an, a, b     *node
	an2          *node // with kubeOptions.secondAnchor
	a2, c        *node // with kubeOptions.threeHomes
	homeA, homeB *lab.Home
	homeC        *lab.Home // with kubeOptions.threeHomes
	archive      string    // the test image, lab/web
}

type kubeOptions struct {
	// importLater names the node that gets the test image through
	// `hepto images import` once Ready; the others find it in
	// STATE/images at start.
	importLater string
	// flags, given the world before the first node starts, are added to
	// each node's first start.
	flags func(*world) []string
	// swap turns swap on first, as home machines often have it.
	swap bool
	// controlPlanes: the homes join as control-plane nodes too, so that
	// the control plane is three nodes (the anchor, home-a, home-b).
	controlPlanes bool
	// secondAnchor: anchor2, a further anchor without Kubernetes, joins
	// before the homes: it relays when the anchor is gone.
	secondAnchor bool
	// homeIPv6: home-a has global IPv6 (routed, firewalled by its box).
	homeIPv6 bool
	// secondAnchorKube: anchor2 runs Kubernetes (a worker: kube-proxy
	// carries published Services there).
	secondAnchorKube bool
	// threeHomes: home-a has a second machine on its LAN, home-a2, and a
	// third home, home-c (endpoint-independent NAT), joins: four workers
	// in three homes.
	threeHomes bool
}

func startKube(t *testing.T, o kubeOptions) *kubeCluster {
	t.Helper()
	w := newWorld(t)
	needKubernetesBinaries(t)
	if o.swap {
		swapOn(t)
	}
	w.c.Kubernetes = true
	t.Cleanup(func() {
		if err := w.c.RemovePods(); err != nil {
			t.Errorf("remove pods: %v", err)
		}
	})
	k := &kubeCluster{w: w, archive: buildWebImage(t, webImage)}
	var flags []string
	if o.flags != nil {
		flags = o.flags(w)
	}
	prepare := func(n *node) {
		if n.Name != o.importLater {
			placeImage(t, n.State, k.archive)
		}
	}
	anchorHost := w.publicHost("anchor")
	k.an = w.node("anchor", anchorHost)
	if _, err := k.an.Hepto("init", "--cluster", w.c.Name, "--name", "anchor", "--endpoint", anchorHost.IPv4.String()+":51820"); err != nil {
		t.Fatal(err)
	}
	prepare(k.an)
	k.an.start(flags...)
	k.an.waitSocket()
	if o.secondAnchor {
		kube := "--kubernetes=false"
		if o.secondAnchorKube {
			kube = "--kubernetes=true"
		}
		k.an2 = w.wrap(w.c.JoinAnchor("anchor2", w.publicHost("anchor2"), k.an.Node, kube))
		k.an2.waitConnected(60*time.Second, "anchor")
	}
	machines := 1
	if o.threeHomes {
		machines = 2
	}
	k.homeA = w.home("home-a", lab.HomeOptions{NAT: lab.EIM, IPv6: o.homeIPv6, Machines: machines})
	k.homeB = w.home("home-b", lab.HomeOptions{NAT: lab.Symmetric})
	type joining struct {
		n    **node
		name string
		host *lab.Host
	}
	joins := []joining{{&k.a, "home-a", k.homeA.Machines[0]}, {&k.b, "home-b", k.homeB.Machines[0]}}
	names := []string{"anchor", "home-a", "home-b"}
	if o.threeHomes {
		k.homeC = w.home("home-c", lab.HomeOptions{NAT: lab.EIM})
		joins = append(joins, joining{&k.a2, "home-a2", k.homeA.Machines[1]}, joining{&k.c, "home-c", k.homeC.Machines[0]})
		names = append(names, "home-a2", "home-c")
	}
	for _, j := range joins {
		h, name, host := j.n, j.name, j.host
		*h = w.node(name, host)
		prepare(*h)
		var tokenFlags []string
		if o.controlPlanes {
			tokenFlags = []string{"--control-plane"}
		}
		(*h).start(append(flags, "--join", k.an.token(name, tokenFlags...))...)
		(*h).waitSocket()
	}
	start := time.Now()
	eventually(t, 3*time.Minute, func() error { return allReady(k.an, names...) })
	t.Logf("%d nodes Ready %.1fs after the homes started", len(names), time.Since(start).Seconds())
	if o.importLater != "" {
		for _, n := range []*node{k.an, k.a, k.b} {
			if n.Name == o.importLater {
				if out, err := n.Hepto("images", "import", k.archive); err != nil {
					t.Fatalf("hepto images import: %v: %s", err, out)
				}
			}
		}
	}
	// Pods need the namespace's service account, which the
	// controller-manager makes.
	eventually(t, time.Minute, func() error {
		_, err := kubectlErr(k.an, "get", "serviceaccount", "default")
		return err
	})
	return k
}

// needKubernetesBinaries: hepto finds containerd's programs and hepto-cni
// beside itself (make build puts them in bin/), and runc on PATH.
func needKubernetesBinaries(t *testing.T) {
	t.Helper()
	for _, name := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "hepto-cni", "portmap"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(heptoBin), name)); err != nil {
			t.Fatalf("%s is not beside %s: run `make build` and set HEPTO_BIN (make test does both)", name, heptoBin)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc not found: `make deps` installs it")
	}
}

// buildWebImage builds lab/web and packs it into an OCI archive, as image
// name.
func buildWebImage(t *testing.T, name string) string {
	return buildProgramImage(t, "../lab/web", name, "serve")
}

// buildProgramImage builds the program of package dir and packs it into
// an OCI archive, as image name, run with args.
func buildProgramImage(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, filepath.Base(dir))
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, dir)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test image's program %s: %v: %s", dir, err, out)
	}
	archive := filepath.Join(tmp, filepath.Base(dir)+".tar")
	if err := images.ProgramArchive(archive, name, bin, args...); err != nil {
		t.Fatal(err)
	}
	return archive
}

// serveRegistry serves the images of archive as registry hepto.test from
// host (port 5000, plain HTTP), and makes it the registry's mirror on
// nodes (their STATE/registries/hepto.test/hosts.toml, as a user would).
func serveRegistry(t *testing.T, host *lab.Host, archive string, nodes ...*node) *registry.Registry {
	t.Helper()
	r := registry.New(nil)
	if _, err := r.Add(archive); err != nil {
		r.Close()
		t.Fatal(err)
	}
	addr := net.JoinHostPort(host.IPv4.String(), "5000")
	ln, err := host.Listen("tcp", addr)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(r.Serve(ln))
	for _, n := range nodes {
		dir := filepath.Join(n.State, "registries", "hepto.test")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(registry.HostsTOML("hepto.test", "http://"+addr)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// placeImage puts an archive in a node's STATE/images.
func placeImage(t *testing.T, stateDir, archive string) {
	t.Helper()
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(stateDir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web.tar"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func kubectlErr(n *node, args ...string) (string, error) {
	return n.Hepto(append([]string{"kubectl"}, args...)...)
}

func kubectl(t *testing.T, n *node, args ...string) string {
	t.Helper()
	out, err := kubectlErr(n, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// allReady checks that the nodes are registered and Ready.
func allReady(cp *node, names ...string) error {
	out, err := kubectlErr(cp, "get", "nodes", "-o", "json")
	if err != nil {
		return err
	}
	var list corev1.NodeList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	for _, name := range names {
		if !ready[name] {
			return fmt.Errorf("node %s not Ready (ready: %v)", name, ready)
		}
	}
	return nil
}

// checkNodes: each Node has the hepto node's overlay addresses and pod
// ranges (set by the control plane once the node registers).
func checkNodes(t *testing.T, cp *node, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		st, _, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			var kn corev1.Node
			out, err := kubectlErr(cp, "get", "node", n.Name, "-o", "json")
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(out), &kn); err != nil {
				return err
			}
			var addrs []string
			for _, a := range kn.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					addrs = append(addrs, a.Address)
				}
			}
			if !slices.Equal(addrs, st.OverlayIPs) {
				return fmt.Errorf("node %s: internal addresses %v, want its overlay addresses %v", n.Name, addrs, st.OverlayIPs)
			}
			if !slices.Equal(kn.Spec.PodCIDRs, st.PodCIDRs) {
				return fmt.Errorf("node %s: pod CIDRs %v, want its pod ranges %v", n.Name, kn.Spec.PodCIDRs, st.PodCIDRs)
			}
			return nil
		})
	}
}

func podIPs(t *testing.T, cp *node, pod string) []string {
	t.Helper()
	return strings.Fields(kubectl(t, cp, "get", "pod", pod, "-o", "jsonpath={range .status.podIPs[*]}{.ip} {end}"))
}

// containerIDs are the container IDs of the pods on a node.
func containerIDs(t *testing.T, cp *node, nodeName string) map[string]string {
	t.Helper()
	var list corev1.PodList
	out := kubectl(t, cp, "get", "pods", "-A", "--field-selector", "spec.nodeName="+nodeName, "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, p := range list.Items {
		for _, c := range p.Status.ContainerStatuses {
			ids[p.Name+"/"+c.Name] = c.ContainerID
		}
	}
	if len(ids) == 0 {
		t.Fatalf("no containers on %s", nodeName)
	}
	return ids
}

// kubeletSync is what a kubelet's metrics say of its work since it
// started.
type kubeletSync struct {
	syncs   float64 // pod workers' syncs (kubelet_pod_worker_duration_seconds_count)
	started float64 // containers and sandboxes it started (kubelet_started_containers_total)
}

// kubeletSynced waits (1 min) until nodeName's kubelet has synced as many
// times as the node has pods (the containers of ids, pod/container), every
// pod being synced at the kubelet's start, and returns what its metrics
// say then. The metrics are the new kubelet's: they start at zero with its
// process.
func kubeletSynced(t *testing.T, cp *node, nodeName string, ids map[string]string) kubeletSync {
	t.Helper()
	pods := map[string]bool{}
	for id := range ids {
		pod, _, _ := strings.Cut(id, "/")
		pods[pod] = true
	}
	var got kubeletSync
	eventually(t, time.Minute, func() error {
		out, err := kubectlErr(cp, "get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/metrics")
		if err != nil {
			return err
		}
		got = kubeletSync{}
		for _, line := range strings.Split(out, "\n") {
			name, rest, _ := strings.Cut(line, "{")
			if name != "kubelet_pod_worker_duration_seconds_count" && name != "kubelet_started_containers_total" {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				continue
			}
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return fmt.Errorf("%s: %w", line, err)
			}
			if name == "kubelet_started_containers_total" {
				got.started += v
			} else {
				got.syncs += v
			}
		}
		if got.syncs < float64(len(pods)) {
			return fmt.Errorf("%s's kubelet synced pods %v times, for %d pods", nodeName, got.syncs, len(pods))
		}
		return nil
	})
	return got
}

// checkPortForward: `kubectl port-forward` on the anchor to the pod in
// the symmetric home.
func checkPortForward(t *testing.T, w *world, cp *node) {
	t.Helper()
	log := filepath.Join(w.dir, "port-forward.log")
	p, err := cp.Host.Start(w.ctx, log, heptoBin, "kubectl", "--state", cp.State, "port-forward", "pod/web-home-b", "18080:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(syscall.SIGTERM, 5*time.Second)
	var body string
	eventually(t, 30*time.Second, func() error {
		var conn net.Conn
		if err := cp.Host.Do(func() error {
			var err error
			conn, err = net.DialTimeout("tcp", "127.0.0.1:18080", 2*time.Second)
			return err
		}); err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		b, err := io.ReadAll(conn)
		body = string(b)
		return err
	})
	if !strings.HasSuffix(strings.TrimSpace(body), "web-home-b") {
		t.Errorf("port-forward to web-home-b: %q", body)
	}
}

// checkCredentials: a kubelet acts as its own node only (Node authorizer,
// NodeRestriction), and the apiserver refuses anonymous requests.
func checkCredentials(t *testing.T, cp, home *node) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(home.State, "kubernetes", "node", "kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Connections from the home's namespace.
	dial := home.Host.DialContext
	cfg.Dial = dial
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CoreV1().Nodes().Get(ctx, home.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("%s's kubelet reading its own node: %v", home.Name, err)
	}
	patch := []byte(`{"metadata":{"labels":{"hijacked":"yes"}}}`)
	if _, err := client.CoreV1().Nodes().Patch(ctx, cp.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("%s's kubelet changing node %s: %v, want forbidden", home.Name, cp.Name, err)
	}

	// No client certificate: refused.
	var status int
	var body []byte
	err = func() error {
		c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get(cfg.Host + "/api/v1/nodes")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
		status = resp.StatusCode
		return nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Errorf("anonymous request to the apiserver: status %d (%s), want 401 or 403", status, body)
	}
}

// pathWithout is a PATH with every program of the usual one but name.
func pathWithout(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.Name() == name {
				continue
			}
			os.Symlink(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name())) // the first of a name wins
		}
	}
	return dir
}

func anOverlay(t *testing.T, n *node) string {
	t.Helper()
	st, _, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	return st.OverlayIPs[0]
}

// checkAdminKubeconfig: `hepto kubeconfig` on the control plane is enough
// for a client on another node (server: the overlay address).
func checkAdminKubeconfig(t *testing.T, cp, other *node, nodes int) {
	t.Helper()
	kc, err := cp.Hepto("kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
	if err != nil {
		t.Fatalf("hepto kubeconfig: %v\n%s", err, kc)
	}
	cfg.Dial = other.Host.DialContext
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("admin kubeconfig from %s: %v", other.Name, err)
	}
	if len(list.Items) != nodes {
		t.Errorf("admin kubeconfig from %s: %d nodes, want %d", other.Name, len(list.Items), nodes)
	}
}

// swapOn turns a small swap file on for the test, unless the machine has
// swap already.
func swapOn(t *testing.T) {
	t.Helper()
	if b, _ := os.ReadFile("/proc/swaps"); strings.Count(strings.TrimSpace(string(b)), "\n") > 0 {
		t.Log("the machine has swap on")
		return
	}
	f := filepath.Join(t.TempDir(), "swap")
	for _, c := range [][]string{{"fallocate", "-l", "64M", f}, {"chmod", "600", f}, {"mkswap", f}, {"swapon", f}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Logf("no swap for this run (%s: %v: %s): the nodes start without", c[0], err, out)
			return
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("swapoff", f).CombinedOutput(); err != nil {
			t.Errorf("swapoff: %v: %s", err, out)
		}
	})
	t.Log("swap on: a 64 MiB file")
}

// checkServices: a dual-stack ClusterIP Service of the spread Deployment
// answers a pod in the symmetric home by both cluster IPs (kube-proxy on
// its node), and by name (its node's DNS server, fed from the apiserver).
func checkServices(t *testing.T, cp *node) {
	t.Helper()
	kubectl(t, cp, "expose", "deployment", "spread", "--port", "80", "--target-port", "8080", "--overrides",
		`{"spec":{"ipFamilyPolicy":"PreferDualStack"}}`)
	ips := strings.Fields(kubectl(t, cp, "get", "service", "spread", "-o", "jsonpath={.spec.clusterIPs[*]}"))
	if len(ips) != 2 {
		t.Fatalf("service spread: cluster IPs %v, want IPv4 and IPv6", ips)
	}
	targets := []string{"spread", "spread.default", "spread.default.svc.cluster.local"}
	for _, ip := range ips {
		targets = append(targets, net.JoinHostPort(ip, "80"))
	}
	for _, target := range targets {
		seen := map[string]bool{}
		eventually(t, 30*time.Second, func() error {
			out, err := kubectlErr(cp, "exec", "web-home-b", "--", "/web", "get", "http://"+target+"/")
			if err != nil {
				return err
			}
			seen[strings.TrimSpace(out)] = true
			if len(seen) < 2 {
				return fmt.Errorf("%s answered by %v only", target, seen)
			}
			return nil
		})
		for pod := range seen {
			if !strings.HasPrefix(pod, "spread-") {
				t.Errorf("%s answered by %q, not a replica", target, pod)
			}
		}
	}

	// kube-system/kube-dns, for tools that look it up: its cluster IP
	// reaches the nodes' DNS servers (through kube-proxy, from a node).
	dnsIP := strings.TrimSpace(kubectl(t, cp, "get", "service", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"))
	if dnsIP != "10.96.0.10" {
		t.Errorf("kube-dns cluster IP %q, want 10.96.0.10", dnsIP)
	}
	eventually(t, 30*time.Second, func() error {
		out, err := cp.Host.Run(context.Background(), "dig", "+short", "+time=2", "+tries=1", "@"+dnsIP, "spread.default.svc.cluster.local")
		if err != nil {
			return err
		}
		if got := strings.Fields(out); len(got) != 1 || got[0] != ips[0] {
			return fmt.Errorf("dig @%s spread.default.svc.cluster.local: %q, want %s", dnsIP, out, ips[0])
		}
		return nil
	})
}

// checkHostPort: a pod's hostPort answers on every address of its node
// (overlay from another node, both families; LAN from its LAN), and one
// with hostIP 127.0.0.1 on the node's loopback only. The reference portmap
// plugin, chained after hepto-cni, maps them.
//
// Host ports are beyond Pod Security's baseline, enforced by default: a
// pod with one is refused in the default namespace, and runs in one whose
// administrator allowed it.
func checkHostPort(t *testing.T, cp, home *node, lanPeer *lab.Host) {
	t.Helper()
	const ns = "host-ports"
	pod := func(name, ports string) []string {
		return []string{"run", name, "--image", webImage, "--image-pull-policy", "Never", "--overrides",
			fmt.Sprintf(`{"spec":{"nodeName":%q,"containers":[{"name":%q,"image":%q,"imagePullPolicy":"Never","command":["/web","serve"],"ports":%s}]}}`,
				home.Name, name, webImage, ports)}
	}
	if out, err := kubectlErr(cp, pod("hostport-default", `[{"containerPort":8080,"hostPort":18082}]`)...); err == nil || !strings.Contains(out+err.Error(), "violates PodSecurity") {
		t.Errorf("a hostPort pod in the default namespace: %v %s, want refused by Pod Security (baseline)", err, out)
	}
	kubectl(t, cp, "create", "namespace", ns)
	kubectl(t, cp, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged")
	for _, p := range []struct{ name, ports string }{
		{"hostport-all", `[{"containerPort":8080,"hostPort":18080}]`},
		{"hostport-lo", `[{"containerPort":8080,"hostPort":18081,"hostIP":"127.0.0.1"}]`},
	} {
		kubectl(t, cp, append(pod(p.name, p.ports), "-n", ns)...)
	}
	kubectl(t, cp, "wait", "-n", ns, "--for=condition=Ready", "pod/hostport-all", "pod/hostport-lo", "--timeout=120s")
	st, _, err := home.status()
	if err != nil {
		t.Fatal(err)
	}
	want := func(from *lab.Host, addr, port, pod string) {
		t.Helper()
		url := "http://" + net.JoinHostPort(addr, port) + "/"
		eventually(t, 30*time.Second, func() error {
			out, err := httpGet(from, url)
			if err == nil && strings.TrimSpace(out) != pod {
				err = fmt.Errorf("answered %q", out)
			}
			if err != nil {
				return fmt.Errorf("hostPort %s from %s: %w", url, from.Name, err)
			}
			return nil
		})
	}
	for _, ip := range st.OverlayIPs {
		want(cp.Host, ip, "18080", "hostport-all")
	}
	want(lanPeer, home.Host.IPv4.String(), "18080", "hostport-all")
	want(home.Host, "127.0.0.1", "18081", "hostport-lo")
	if out, err := httpGet(cp.Host, "http://"+net.JoinHostPort(st.OverlayIPs[0], "18081")+"/"); err == nil {
		t.Errorf("hostPort 18081 bound to 127.0.0.1 answered on %s's overlay address: %q", home.Name, out)
	}
}

// checkMirror: an image that only a registry has is pulled (policy
// Always) by the node in the symmetric home, through its NAT, from a
// mirror named in its STATE/registries while it runs.
func checkMirror(t *testing.T, cp, home *node) {
	t.Helper()
	const name = "hepto.test/web:pulled"
	serveRegistry(t, cp.Host, buildWebImage(t, name), home)
	kubectl(t, cp, "run", "pulled", "--image", name, "--image-pull-policy", "Always",
		"--overrides", fmt.Sprintf(`{"spec":{"nodeName":%q}}`, home.Name), "--command", "--", "/web", "serve")
	if out, err := kubectlErr(cp, "wait", "--for=condition=Ready", "pod/pulled", "--timeout=120s"); err != nil {
		desc, _ := kubectlErr(cp, "describe", "pod", "pulled")
		t.Fatalf("a pod of an image pulled from the mirror: %v: %s\n%s", err, out, desc)
	}
}

// checkReadOnlyRoot: a container whose root filesystem is read-only cannot
// write there, and can in a volume (what the conformance test "a read only
// busybox container should not write to root filesystem" checks, which
// cannot run in the lab: docs/conformance.md).
func checkReadOnlyRoot(t *testing.T, cp, home *node) {
	t.Helper()
	kubectl(t, cp, "run", "readonly", "--image", webImage, "--image-pull-policy", "Never", "--overrides",
		fmt.Sprintf(`{"spec":{"nodeName":%q,"volumes":[{"name":"scratch","emptyDir":{}}],"containers":[{"name":"readonly","image":%q,"imagePullPolicy":"Never","command":["/web","serve"],"securityContext":{"readOnlyRootFilesystem":true},"volumeMounts":[{"name":"scratch","mountPath":"/scratch"}]}]}}`,
			home.Name, webImage))
	kubectl(t, cp, "wait", "--for=condition=Ready", "pod/readonly", "--timeout=120s")
	// The command's error comes back in kubectl's, on its standard error.
	if out, err := kubectlErr(cp, "exec", "readonly", "--", "/web", "write", "/file", "test"); err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("write to the read-only root filesystem: %v, %q; want a read-only file system error", err, out)
	}
	if out, err := kubectlErr(cp, "exec", "readonly", "--", "/web", "write", "/scratch/file", "test"); err != nil {
		t.Errorf("write to an emptyDir of a read-only container: %v, %q", err, out)
	}
}

// checkNodePort: a NodePort answers on a home's overlay address from
// another node, and not on its LAN address from its LAN.
func checkNodePort(t *testing.T, cp, home *node, lanPeer *lab.Host) {
	t.Helper()
	kubectl(t, cp, "patch", "service", "spread", "-p", `{"spec":{"type":"NodePort"}}`)
	port := strings.TrimSpace(kubectl(t, cp, "get", "service", "spread", "-o", "jsonpath={.spec.ports[0].nodePort}"))
	get := func(from *lab.Host, addr string) (string, error) {
		return httpGet(from, "http://"+net.JoinHostPort(addr, port)+"/")
	}
	st, _, err := home.status()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		out, err := get(cp.Host, st.OverlayIPs[0])
		if err == nil && !strings.HasPrefix(out, "spread-") {
			err = fmt.Errorf("answered %q", out)
		}
		if err != nil {
			return fmt.Errorf("node port %s on %s's overlay address, from %s: %w", port, home.Name, cp.Name, err)
		}
		return nil
	})
	lanAddr := home.Host.IPv4.String()
	if out, err := get(lanPeer, lanAddr); err == nil {
		t.Errorf("node port %s answered on %s's LAN address %s from its LAN: %q", port, home.Name, lanAddr, out)
	}
}
