package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// TestRemove: `hepto remove` on the anchor takes a home out of the
// cluster. Every other node drops it as a peer within 5 s; the home,
// which was up, learns it and stops, non-zero; it cannot start again, and
// one that starts from a membership older than its removal (it was off
// when removed) learns it from the anchor, and stops the same way.
func TestRemove(t *testing.T) {
	w := newWorld(t)
	h := w.twoHomes("home-a", lab.EIM, "home-b", lab.EIM)
	a, na, nb := h.anchor, h.a, h.b
	na.waitConnected(60*time.Second, "anchor", "home-b")
	stB := nb.waitConnected(60*time.Second, "anchor", "home-a")
	before, err := os.ReadFile(filepath.Join(nb.State, "membership.json"))
	if err != nil {
		t.Fatal(err)
	}

	if out, err := a.Hepto("remove", "home-a"+"-nosuch"); err == nil {
		t.Fatalf("removal of an unknown node: %s", out)
	}
	if out, err := na.Hepto("remove", "home-b"); err == nil || !strings.Contains(err.Error(), "not an anchor") {
		t.Fatalf("removal on a home: %s %v", out, err)
	}
	start := time.Now()
	out, err := a.Hepto("remove", "home-b")
	if err != nil || !strings.Contains(out, "home-b removed") {
		t.Fatalf("hepto remove: %q %v", out, err)
	}
	for _, n := range []*node{a, na} {
		eventually(t, 5*time.Second, func() error {
			st, _, err := n.status()
			if err != nil {
				return err
			}
			if _, ok := peer(st, "home-b"); ok {
				return fmt.Errorf("%s still lists home-b", n.Name)
			}
			return nil
		})
	}
	t.Logf("home-b dropped by every node %s after hepto remove", time.Since(start).Round(10*time.Millisecond))
	// Its addresses answer no more, from home-a.
	if err := na.ping(stB.OverlayIPs[0], 3*time.Second); err == nil {
		t.Fatal("home-b's overlay address still answers")
	}

	// home-b was up: it is told, and stops.
	select {
	case <-nb.Proc.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("home-b still runs 15 s after its removal")
	}
	checkRemovedExit(t, nb, "its removal")

	// A start after the removal stops at once.
	nb.start()
	select {
	case <-nb.Proc.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("home-b started again after its removal")
	}
	checkRemovedExit(t, nb, "a restart")

	// Off when removed: its membership does not say so; the anchor does.
	if err := os.WriteFile(filepath.Join(nb.State, "membership.json"), before, 0o644); err != nil {
		t.Fatal(err)
	}
	nb.start()
	select {
	case <-nb.Proc.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("home-b, off when removed, still runs a minute after its start")
	}
	checkRemovedExit(t, nb, "a start with the membership of before")

	// home-a and the anchor carry on.
	na.waitConnected(30*time.Second, "anchor")
}

func checkRemovedExit(t *testing.T, n *node, when string) {
	t.Helper()
	code, err := n.Proc.Wait()
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	last := n.LastLines(3)
	if code == 0 || !strings.Contains(last, "home-b was removed from the cluster") {
		t.Fatalf("after %s: exit %d, last lines:\n%s", when, code, last)
	}
}
