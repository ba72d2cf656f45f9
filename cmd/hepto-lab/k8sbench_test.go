package main

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// The upstream run's Service ranges are hepto's defaults: 10.96.0.0/16
// and <ULA /48>:300::/112.
func TestServiceCIDRs(t *testing.T) {
	got := serviceCIDRs(netip.MustParseAddr("fd12:3456:789a::5"))
	want := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd12:3456:789a:300::/112")}
	if !slices.Equal(got, want) {
		t.Errorf("serviceCIDRs = %v, want %v", got, want)
	}
}

// The upstream kube-proxy's ranges are the lab cluster's default ones.
func TestPodsAndOverlay(t *testing.T) {
	pods, overlay := podsAndOverlay(netip.MustParseAddr("fd12:3456:789a::5"))
	if want := []netip.Prefix{netip.MustParsePrefix("10.78.0.0/16"), netip.MustParsePrefix("fd12:3456:789a:100::/56")}; !slices.Equal(pods, want) {
		t.Errorf("pods %v, want %v", pods, want)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16"), netip.MustParsePrefix("fd12:3456:789a::/64")}; !slices.Equal(overlay, want) {
		t.Errorf("overlay %v, want %v", overlay, want)
	}
}

// A node's processes: the root and its children, under the root's label.
func TestNodeProcs(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	procs := nodeProcs(map[string]int{"me": os.Getpid()}, "/nonexistent.sock")
	var pids []int
	for _, p := range procs {
		if p.label != "me" {
			t.Errorf("process %d labelled %q, want me", p.pid, p.label)
		}
		pids = append(pids, p.pid)
	}
	if !slices.Contains(pids, os.Getpid()) || !slices.Contains(pids, child.Process.Pid) {
		t.Errorf("processes %v, want this one (%d) and its child (%d)", pids, os.Getpid(), child.Process.Pid)
	}
	if rss, pss := procMemory(os.Getpid()); rss <= 0 || pss <= 0 || pss > rss {
		t.Errorf("memory of this process: RSS %.1f MB, PSS %.1f MB", rss, pss)
	}
}
