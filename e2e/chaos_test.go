package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaos tells whether the fault tests run their long versions (make
// chaos: HEPTO_CHAOS=1), as the scenarios have them.
func chaos() bool { return os.Getenv("HEPTO_CHAOS") != "" }

// faultTime is how long a fault lasts: short in make test, long in make
// chaos.
func faultTime(short, long time.Duration) time.Duration {
	if chaos() {
		return long
	}
	return short
}

// writer creates a ConfigMap on node every half second and records the
// time of each acknowledged write, and its name.
type writer struct {
	mu     sync.Mutex
	acks   map[string][]time.Time
	names  []string
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startWriters(ctx context.Context, nodes ...*node) *writer {
	w := &writer{acks: map[string][]time.Time{}}
	ctx, w.cancel = context.WithCancel(ctx)
	for _, n := range nodes {
		w.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("w-%s-%d", n.Name, i)
				if _, err := kubectlErr(n, "--request-timeout=4s", "create", "configmap", name); err == nil {
					w.mu.Lock()
					w.acks[n.Name] = append(w.acks[n.Name], time.Now())
					w.names = append(w.names, name)
					w.mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		})
	}
	return w
}

func (w *writer) stop() {
	w.cancel()
	w.wg.Wait()
}

// gap is the longest time without an acknowledged write from node around
// at (see writeGap).
func (w *writer) gap(node string, at time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writeGap(w.acks[node], at)
}

// longestGap is the longest time between two acknowledged writes from
// node after since.
func (w *writer) longestGap(node string, since time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	last := since
	for _, a := range w.acks[node] {
		if a.After(since) {
			longest = max(longest, a.Sub(last))
			last = a
		}
	}
	return max(longest, time.Since(last))
}

// lost counts the acknowledged writes that the cluster does not have.
func (w *writer) lost(t *testing.T, n *node) (lost, acked int) {
	out := kubectl(t, n, "get", "configmaps", "-o", "jsonpath={.items[*].metadata.name}")
	have := map[string]bool{}
	for _, f := range strings.Fields(out) {
		have[f] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range w.names {
		if !have[name] {
			lost++
		}
	}
	return lost, len(w.names)
}

// TestControlPlaneHomeCut: three control-plane nodes (the anchor, home-a,
// home-b) and a Deployment with a replica in each home; home-a's uplink
// is cut for 5 minutes (make chaos). Writes from the anchor
// and home-b go on; the Service keeps answering; the lost replica runs
// elsewhere; with the uplink back, home-a's Node is Ready and its etcd
// member back, no one acting, and no acknowledged write is lost.
func TestControlPlaneHomeCut(t *testing.T) {
	if !chaos() {
		t.Skip("a fault of minutes on three control-plane nodes: make chaos (HEPTO_CHAOS=1)")
	}
	k := startKube(t, kubeOptions{controlPlanes: true, secondAnchor: true})
	an := k.an
	names := []string{"anchor", "home-a", "home-b"}
	eventually(t, 3*time.Minute, func() error { return etcdSettled([]*node{k.an, k.a, k.b}, names) })
	clusterIP := deployInHomes(t, an)

	wr := startWriters(k.w.ctx, k.an, k.b)
	defer wr.stop()
	time.Sleep(5 * time.Second)
	if err := k.homeA.SetDelay(0, 100); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	restored := false
	defer func() {
		if !restored {
			k.homeA.SetDelay(0, 0)
		}
	}()
	waitReplicasOutside(t, an, "home-a")
	t.Logf("home-a cut off: its replica ran elsewhere after %s", time.Since(cut).Round(time.Second))
	if failed := serviceFailures(an, clusterIP); failed > 0 {
		t.Errorf("%d of 10 connections to the Service failed with home-a cut off", failed)
	}
	if rest := 5*time.Minute - time.Since(cut); rest > 0 {
		time.Sleep(rest)
	}
	for _, n := range []*node{k.an, k.b} {
		g := wr.longestGap(n.Name, cut)
		t.Logf("home-a cut off for %s: longest time without a write acknowledged from %s: %s", time.Since(cut).Round(time.Second), n.Name, g.Round(100*time.Millisecond))
		if g > 15*time.Second {
			t.Errorf("writes from %s stopped for %s with home-a cut off, want ≤ 15 s", n.Name, g.Round(100*time.Millisecond))
		}
	}

	if err := k.homeA.SetDelay(0, 0); err != nil {
		t.Fatal(err)
	}
	restored = true
	back := time.Now()
	eventually(t, 3*time.Minute, func() error { return allReady(an, names...) })
	eventually(t, 3*time.Minute, func() error { return etcdSettled([]*node{k.an, k.a, k.b}, names) })
	t.Logf("home-a's uplink back: Node Ready and etcd member back after %s", time.Since(back).Round(time.Second))
	wr.stop()
	if lost, acked := wr.lost(t, an); lost > 0 || acked == 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, acked)
	} else {
		t.Logf("%d writes acknowledged, none lost", acked)
	}
}
