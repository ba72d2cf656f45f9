package controlplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/supervisor"
)

// freePorts finds n TCP ports free on loopback.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

type running struct {
	cp     *ControlPlane
	cancel context.CancelFunc
	done   chan error
}

func startControlPlane(t *testing.T, opts Options) *running {
	t.Helper()
	cp, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sup := supervisor.New(opts.Logger)
	for _, s := range cp.Services() {
		sup.Add(s, false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cp: cp, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sup.Run(ctx) }()
	return r
}

// stop cancels the control plane and checks that every component returns
// within 10 s.
func (r *running) stop(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	r.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for name, st := range r.cp.States() {
			// A failed component waits for its restart, out of Run.
			if st == component.Starting || st == component.Running {
				all = false
				if time.Now().After(deadline) {
					t.Fatalf("%s still %q 10 s after the stop", name, st)
				}
			}
		}
		if all {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-r.done
	return time.Since(began)
}

func (r *running) waitRunning(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := r.cp.States()
		all := true
		for _, name := range Components {
			if st[name] != component.Running {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("components not running after %v: %v", timeout, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func rssMB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// listeningAddrs lists the addresses this process listens on (TCP).
func listeningAddrs(t *testing.T) []netip.AddrPort {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []netip.AddrPort
	for _, file := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(file)
		if os.IsNotExist(err) && strings.HasSuffix(file, "6") {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			ap, err := parseProcAddr(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ap)
		}
		f.Close()
	}
	return out
}

// parseProcAddr decodes /proc/net/tcp's "HEXADDR:HEXPORT" (the address in
// host-order 32-bit words).
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return netip.AddrPort{}, err
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// testLogLevel is Warn, or Info with HEPTO_TEST_LOG=info: the components
// are chatty.
func testLogLevel() slog.Level {
	if os.Getenv("HEPTO_TEST_LOG") == "info" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

func testOptions(ports []int) Options {
	return Options{
		NodeName:              "cp-test",
		AdvertiseAddresses:    []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		BindAddresses:         []netip.Addr{},
		ServiceCIDRs:          []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd96::/108")},
		APIServerPort:         ports[0],
		EtcdClientPort:        ports[1],
		EtcdPeerPort:          ports[2],
		ControllerManagerPort: ports[3],
		SchedulerPort:         ports[4],
		Logger:                slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()})),
		ComponentLogLevel:     testLogLevel(),
	}
}

// TestControlPlane runs etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler on loopback, stops them and starts them again.
func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real control plane")
	}
	ports := freePorts(t, 5)
	opts := testOptions(ports)
	opts.DataDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	began := time.Now()
	r := startControlPlane(t, opts)
	if err := r.cp.Ready(ctx); err != nil {
		t.Fatalf("not ready: %v; states %v", err, r.cp.States())
	}
	t.Logf("apiserver ready in %v (cold: CAs, etcd, apiserver)", time.Since(began).Round(time.Millisecond))
	r.waitRunning(t, 2*time.Minute)
	t.Logf("all components running in %v; RSS %.0f MB", time.Since(began).Round(time.Millisecond), rssMB(t))
	t.Logf("states: %v", r.cp.States())

	client, err := kubernetes.NewForConfig(r.cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hepto-test"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}, Data: map[string]string{"home": "kitchen"}}
	if _, err := client.CoreV1().ConfigMaps("hepto-test").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := client.CoreV1().ConfigMaps("hepto-test").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range list.Items {
		found = found || (c.Name == "kept" && c.Data["home"] == "kitchen")
	}
	if !found {
		t.Fatalf("the ConfigMap is not listed: %v", list.Items)
	}

	// The controller manager runs: it fills new namespaces with the root CA.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := client.CoreV1().ConfigMaps("hepto-test").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("kube-root-ca.crt not published in the new namespace: is the controller manager running?")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// No client certificate: refused.
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.cp.PKI().Cluster.Pool()}}}
	resp, err := anon.Get(r.cp.LocalURL() + "/api/v1/namespaces/hepto-test/configmaps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unauthenticated request: status %d, want 401 or 403", resp.StatusCode)
	}
	anon.CloseIdleConnections()

	t.Logf("unauthenticated request: %d", resp.StatusCode)

	// The admin kubeconfig on disk works as it is.
	fromFile, err := clientcmd.BuildConfigFromFlags("", r.cp.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(fromFile).CoreV1().Namespaces().Get(ctx, "hepto-test", metav1.GetOptions{}); err != nil {
		t.Fatalf("admin kubeconfig: %v", err)
	}

	checkNodeRestriction(ctx, t, r.cp, client)

	// Every component's port is among the sockets read (an empty list
	// would pass the check below), and each listens on loopback only.
	listening := listeningAddrs(t)
	for _, p := range ports {
		if !slices.ContainsFunc(listening, func(ap netip.AddrPort) bool { return int(ap.Port()) == p }) {
			t.Errorf("nothing found listening on port %d among %v", p, listening)
		}
	}
	for _, ap := range listening {
		if !ap.Addr().IsLoopback() {
			t.Errorf("listening on %v, not loopback", ap)
		}
	}

	took := r.stop(t)
	t.Logf("stopped in %v", took.Round(time.Millisecond))
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d still taken after the stop: %v", p, err)
			continue
		}
		l.Close()
	}

	// Again on the same directory: the data is still there.
	began = time.Now()
	r = startControlPlane(t, opts)
	defer r.stop(t)
	if err := r.cp.Ready(ctx); err != nil {
		t.Fatalf("not ready after restart: %v; states %v", err, r.cp.States())
	}
	t.Logf("ready again in %v", time.Since(began).Round(time.Millisecond))
	client, err = kubernetes.NewForConfig(r.cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().ConfigMaps("hepto-test").Get(ctx, "kept", metav1.GetOptions{})
	if err != nil || got.Data["home"] != "kitchen" {
		t.Fatalf("ConfigMap after restart: %v, %v", got, err)
	}
	r.waitRunning(t, 2*time.Minute)
	t.Logf("all running again in %v; RSS %.0f MB", time.Since(began).Round(time.Millisecond), rssMB(t))
}

// checkNodeRestriction: a kubelet's certificate registers its own node,
// and cannot change another one (Node authorizer, NodeRestriction).
func checkNodeRestriction(ctx context.Context, t *testing.T, cp *ControlPlane, admin kubernetes.Interface) {
	t.Helper()
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pi-garage"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	req, err := pki.KubeletClient("pi-kitchen")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := cp.PKI().Cluster.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	kubelet := kubernetes.NewForConfigOrDie(restConfig(cp.LocalURL(), cp.PKI().Cluster.CertPEM, kp))
	if _, err := kubelet.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pi-kitchen"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a kubelet cannot register its own node: %v", err)
	}
	if _, err := kubelet.CoreV1().Nodes().Get(ctx, "pi-garage", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a kubelet reading another node: %v, want forbidden", err)
	}
	other, err := admin.CoreV1().Nodes().Get(ctx, "pi-garage", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other.Labels = map[string]string{"taken": "over"}
	_, err = kubelet.CoreV1().Nodes().Update(ctx, other, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a kubelet updating another node: %v, want forbidden", err)
	}
	if _, err := kubelet.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pi-attic"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a kubelet registering another node: %v, want forbidden", err)
	}
}

// TestPortTaken: an apiserver that cannot listen reads "failed: …"
// naming the cause, and etcd keeps running.
func TestPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ports := freePorts(t, 5)
	ports[0] = taken.Addr().(*net.TCPAddr).Port
	opts := testOptions(ports)
	opts.DataDir = t.TempDir()
	r := startControlPlane(t, opts)
	defer r.stop(t)
	deadline := time.Now().Add(time.Minute)
	for {
		st := r.cp.States()
		if strings.HasPrefix(st[compAPIServer], "failed: ") && strings.Contains(st[compAPIServer], "address already in use") {
			if st[compEtcd] != component.Running {
				t.Errorf("etcd %q, want running", st[compEtcd])
			}
			t.Logf("states: %v", st)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("states %v, want the apiserver failed on its port", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listeningAddrs finds this process's listening sockets, so that the
// control plane's check of its addresses checks something.
func TestListeningAddrs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := netip.MustParseAddrPort(l.Addr().String())
	if got := listeningAddrs(t); !slices.Contains(got, want) {
		t.Errorf("listening sockets %v, want %v among them", got, want)
	}
}
