package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
	"github.com/hepto-net/hepto/localapi"
)

// world is a lab with hepto nodes in it; its helpers fail the test.
type world struct {
	t   *testing.T
	ctx context.Context
	lab *lab.Lab
	c   *cluster.Cluster
	dir string
	// anchorName is what status shows as "via" for hub-relayed peers.
	anchorName string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	lab.NeedRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.New(ctx, lab.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	dir := t.TempDir()
	w := &world{t: t, ctx: ctx, lab: l, c: cluster.New(ctx, l, heptoBin, dir), dir: dir, anchorName: "anchor"}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
		cancel()
	})
	return w
}

func (w *world) publicHost(name string) *lab.Host {
	h, err := w.lab.AddPublicHost(name)
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

func (w *world) home(name string, o lab.HomeOptions) *lab.Home {
	h, err := w.lab.AddHome(name, o)
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

// node wraps cluster.Node for tests.
type node struct {
	*cluster.Node
	w *world
}

func (w *world) wrap(n *cluster.Node, err error) *node {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	nd := &node{Node: n, w: w}
	w.t.Cleanup(func() {
		if w.t.Failed() && n.Log != "" {
			if st, _, err := n.Status(); err == nil && len(st.Kubernetes.Components) > 0 {
				w.t.Logf("--- %s, components: %v", n.Name, st.Kubernetes.Components)
			}
			if f := n.Failures(20); f != "" {
				w.t.Logf("--- %s, failures in %s\n%s", n.Name, n.Log, f)
			}
			w.t.Logf("--- %s, end of %s\n%s", n.Name, n.Log, n.LastLines(40))
			keepLogs(w.t, n)
		}
	})
	// Registered after the dump above, so run before it: a CSINode set up
	// under an empty node name (the controller manager's volume plugins,
	// in the same process, took the kubelet's node state) ends hepto
	// 140 s later, whenever the kubelet's Node comes late.
	w.t.Cleanup(func() {
		if b, err := os.ReadFile(n.Log); err == nil && bytes.Contains(b, []byte("Failed to initialize CSINode")) &&
			bytes.Contains(b, []byte("resource name may not be empty")) {
			w.t.Errorf("%s: the kubelet set up its CSINode without its node name", n.Name)
		}
	})
	return nd
}

// keepLogs copies a node's logs into $HEPTO_E2E_LOGS/TEST/NODE, when
// set, before the test's directory goes.
func keepLogs(t *testing.T, n *cluster.Node) {
	dir := os.Getenv("HEPTO_E2E_LOGS")
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, t.Name(), n.Name)
	logs, _ := filepath.Glob(filepath.Join(filepath.Dir(n.Log), "*.log"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Log(err)
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
		}
	}
}

func (w *world) node(name string, h *lab.Host) *node { return w.wrap(w.c.Node(name, h), nil) }

func (w *world) anchor(name string, h *lab.Host) *node { return w.wrap(w.c.Anchor(name, h)) }

func (w *world) join(name string, h *lab.Host, a *node, flags ...string) *node {
	return w.wrap(w.c.Join(name, h, a.Node, flags...))
}

func (n *node) start(flags ...string) {
	n.w.t.Helper()
	if err := n.Start(flags...); err != nil {
		n.w.t.Fatal(err)
	}
}

func (n *node) waitSocket() {
	n.w.t.Helper()
	if err := n.WaitSocket(60 * time.Second); err != nil {
		n.w.t.Fatal(err)
	}
}

func (n *node) stop(sig syscall.Signal) int {
	n.w.t.Helper()
	code, err := n.Stop(sig)
	if err != nil {
		n.w.t.Fatalf("stop %s: %v", n.Name, err)
	}
	return code
}

func (n *node) token(name string, flags ...string) string {
	n.w.t.Helper()
	tok, err := n.Token(name, flags...)
	if err != nil {
		n.w.t.Fatal(err)
	}
	return tok
}

func (n *node) status() (localapi.Status, []byte, error) { return n.Status() }

func (n *node) waitConnected(timeout time.Duration, names ...string) localapi.Status {
	n.w.t.Helper()
	st, err := n.WaitConnected(timeout, names...)
	if err != nil {
		n.w.t.Fatal(err)
	}
	return st
}

func (n *node) ping(ip string, within time.Duration) error { return n.Ping(ip, within) }

func peer(st localapi.Status, name string) (localapi.PeerStatus, bool) { return cluster.Peer(st, name) }

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	if err := cluster.Eventually(timeout, f); err != nil {
		t.Fatal(err)
	}
}

// homes is an anchor and two homes, each behind its own NAT box, that
// joined through it.
type homes struct {
	anchor, a, b *node
	homeA, homeB *lab.Home
}

func (w *world) twoHomes(nameA string, natA lab.NAT, nameB string, natB lab.NAT) homes {
	w.t.Helper()
	h := homes{anchor: w.anchor(w.anchorName, w.publicHost(w.anchorName))}
	h.homeA = w.home(nameA, lab.HomeOptions{NAT: natA})
	h.homeB = w.home(nameB, lab.HomeOptions{NAT: natB})
	h.a = w.join(nameA, h.homeA.Machines[0], h.anchor)
	h.b = w.join(nameB, h.homeB.Machines[0], h.anchor)
	return h
}
