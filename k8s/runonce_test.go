package k8s

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/k8s/kubelet"
	"github.com/hepto-net/hepto/k8s/proxy"
	"github.com/hepto-net/hepto/supervisor"
)

// fakeRuntime is a containerd that is ready at once.
type fakeRuntime struct{}

func (fakeRuntime) Ready(context.Context) error { return nil }
func (fakeRuntime) Socket() string              { return "/nonexistent/containerd.sock" }

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// onceNode is a worker whose certificates, runtime and images are ready,
// for the kubelet's and kube-proxy's services.
func onceNode(t *testing.T, log *syncBuffer) *Node {
	t.Helper()
	n := &Node{
		o: Options{
			StateDir: t.TempDir(), NodeName: "home-a",
			Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("fd42::5")},
		},
		role: RoleWorker, log: slog.New(slog.NewTextHandler(log, nil)),
		certsReady: component.NewGate(), imagesReady: component.NewGate(),
		runtime: fakeRuntime{},
	}
	n.certsReady.Open()
	n.imagesReady.Open()
	return n
}

// stubComponents replaces the kubelet's and kube-proxy's Run with run, and
// startWindow with window, for the test.
func stubComponents(t *testing.T, window time.Duration, run func(ctx context.Context) error) {
	t.Helper()
	oldK, oldP, oldW := kubeletRun, proxyRun, startWindow
	kubeletRun = func(ctx context.Context, _ kubelet.Options) error { return run(ctx) }
	proxyRun = func(ctx context.Context, _ proxy.Options) error { return run(ctx) }
	startWindow = window
	t.Cleanup(func() { kubeletRun, proxyRun, startWindow = oldK, oldP, oldW })
}

// fabric is a service that runs until cancelled, as the tunnel does.
var fabric = supervisor.Func("tunnel", func(ctx context.Context) error { <-ctx.Done(); return nil })

// A kubelet or kube-proxy that ran, then stopped, ends the node with an
// error that names it (hepto exits non-zero, systemd starts it again).
func TestComponentStopEndsNode(t *testing.T) {
	for _, comp := range []string{compKubelet, compProxy} {
		t.Run(comp, func(t *testing.T) {
			stop := make(chan struct{})
			stubComponents(t, 50*time.Millisecond, func(ctx context.Context) error {
				select {
				case <-stop:
					return errors.New("healthz server failed")
				case <-ctx.Done():
					return nil
				}
			})
			var log syncBuffer
			n := onceNode(t, &log)
			sup := supervisor.New(n.log)
			sup.Add(fabric, true)
			run := n.runKubelet
			if comp == compProxy {
				run = n.runProxy
			}
			sup.Add(supervisor.Func(comp, run), false)
			done := make(chan error, 1)
			go func() { done <- sup.Run(context.Background()) }()
			time.Sleep(100 * time.Millisecond) // past the start window
			close(stop)
			select {
			case err := <-done:
				if err == nil || !strings.HasPrefix(err.Error(), comp+": stopped after running") ||
					!strings.Contains(err.Error(), "healthz server failed") {
					t.Fatalf("the node ended with %v, want an error naming %s", err, comp)
				}
				t.Logf("hepto: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s stopped after it ran, and the node goes on: %v", comp, sup.States())
			}
			if st := n.states.Snapshot()[comp]; !strings.HasPrefix(st, "failed: ") {
				t.Errorf("%s's state %q, want failed", comp, st)
			}
		})
	}
}

// A kubelet or kube-proxy that fails to start leaves the fabric running;
// its state and one log line say why.
func TestComponentStartFailureKeepsFabric(t *testing.T) {
	for _, comp := range []string{compKubelet, compProxy} {
		t.Run(comp, func(t *testing.T) {
			stubComponents(t, time.Minute, func(context.Context) error { return errors.New("failed to find cgroup mounts") })
			var log syncBuffer
			n := onceNode(t, &log)
			sup := supervisor.New(n.log)
			sup.Add(fabric, true)
			run := n.runKubelet
			if comp == compProxy {
				run = n.runProxy
			}
			sup.Add(supervisor.Func(comp, run), false)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sup.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for !strings.HasPrefix(n.states.Snapshot()[comp], "failed: ") {
				if time.Now().After(deadline) {
					t.Fatalf("%s's state %q, want failed", comp, n.states.Snapshot()[comp])
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case err := <-done:
				t.Fatalf("the node ended (%v) because %s failed to start", err, comp)
			case <-time.After(200 * time.Millisecond):
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("stop: %v", err)
			}
			if got := log.String(); strings.Count(got, "failed to start") != 1 || !strings.Contains(got, "cgroup mounts") {
				t.Errorf("log, want one line naming the cause:\n%s", got)
			}
		})
	}
}
