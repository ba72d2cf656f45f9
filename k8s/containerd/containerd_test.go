package containerd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/hepto-net/hepto/k8s/component"
)

// fakeBinaries puts a program named containerd, running script, and a
// shim on PATH, for Run.
func fakeBinaries(t *testing.T, script string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "containerd"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "containerd-shim-runc-v2"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func testContainerd(t *testing.T) *Containerd {
	t.Helper()
	// A short directory: the socket's path must fit sun_path.
	dir, err := os.MkdirTemp("", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	o := Options{Dir: dir, CNIConfDir: filepath.Join(dir, "cni"), Runc: "/bin/false", SandboxImage: "registry.k8s.io/pause:3.10.2",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &Containerd{o: o.withPaths(), ready: component.NewGate()}
}

// settledGoroutines waits until at most want goroutines are left (those
// that are ending get 3 s), and returns how many there are.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A containerd that exits before it answers, and is started again (as the
// supervisor does), leaves no readiness probe nor gRPC client behind.
func TestRestartLeavesNoProbe(t *testing.T) {
	fakeBinaries(t, "sleep 0.5; exit 3")
	c := testContainerd(t)
	ctx := context.Background()
	run := func() {
		t.Helper()
		if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("Run: %v, want containerd's exit", err)
		}
	}
	run() // gRPC's process-wide goroutines start with its first client
	before := baseline()
	for range 4 {
		run()
	}
	if after := settledGoroutines(before); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after 4 more runs of a containerd that exits early, %d before:\n%s",
			after, before, buf[:runtime.Stack(buf, true)])
	}
	if c.Ready(canceled()) == nil {
		t.Error("the ready gate is open after containerd exited")
	}
}

// The readiness probe opens the gate once the CRI answers, and closes its
// connection then; the run, stopped, leaves nothing behind.
func TestReadyProbeClosesItsClient(t *testing.T) {
	fakeBinaries(t, "exec sleep 60")
	c := testContainerd(t)
	l, err := net.Listen("unix", c.o.Socket)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, fakeCRI{})
	go srv.Serve(cl)
	defer srv.Stop()
	before := baseline()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.Ready(wctx); err != nil {
		cancel()
		t.Fatalf("not ready: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for cl.accepted.Load() == 0 || cl.closed.Load() < cl.accepted.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the probe's connections: %d accepted, %d closed once ready", cl.accepted.Load(), cl.closed.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if after := settledGoroutines(before); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after a run, %d before:\n%s", after, before, buf[:runtime.Stack(buf, true)])
	}
}

// baseline is the number of goroutines once those ending have ended.
func baseline() int {
	time.Sleep(300 * time.Millisecond)
	return runtime.NumGoroutine()
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (fakeCRI) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "containerd", RuntimeVersion: "v2.4.2", RuntimeApiVersion: "v1"}, nil
}

// countingListener counts the connections it accepted and those closed
// (the server closes its end once the client's is gone).
type countingListener struct {
	net.Listener
	accepted, closed atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l    *countingListener
	once atomic.Bool
}

func (c *countingConn) Close() error {
	if !c.once.Swap(true) {
		c.l.closed.Add(1)
	}
	return c.Conn.Close()
}
