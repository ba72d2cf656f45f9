package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchVolumes (make bench-volumes): a local volume against its disk
// written directly, and the time from a claim to its volume.
func TestBenchVolumes(t *testing.T) {
	if os.Getenv("HEPTO_BENCH_VOLUMES") == "" {
		t.Skip("a benchmark: make bench-volumes (HEPTO_BENCH_VOLUMES=1)")
	}
	k := startKube(t, kubeOptions{})
	an := k.an
	dir := t.TempDir()

	// Claim to Bound, with the pod's scheduling: five claims in turn.
	var bound []float64
	for i := range 5 {
		name := fmt.Sprintf("bench-%d", i)
		f := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(f, []byte(volumeManifest(name, "1Gi", "home-a")), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		kubectl(t, an, "apply", "-f", f)
		kubectl(t, an, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/"+name, "--timeout=120s")
		bound = append(bound, time.Since(start).Seconds())
		if i > 0 {
			kubectl(t, an, "delete", "-f", f, "--wait=false")
		}
	}
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/bench-0", "--timeout=120s")

	// Sequential I/O, 256 MiB written and synced then read back uncached:
	// in the pod, on its volume; on the host, in a directory beside the
	// volumes (the same file system). Alternated, five each.
	direct := filepath.Join(k.a.State, "volumes", "bench-direct")
	if err := os.MkdirAll(direct, 0o755); err != nil {
		t.Fatal(err)
	}
	host := exec.Command("go", "build", "-o", filepath.Join(dir, "web"), "../lab/web")
	if out, err := host.CombinedOutput(); err != nil {
		t.Fatalf("build lab/web: %v: %s", err, out)
	}
	parse := func(out string) (w, r float64) {
		f := strings.Fields(out)
		if len(f) != 2 {
			t.Fatalf("disk: %q", out)
		}
		w, _ = strconv.ParseFloat(f[0], 64)
		r, _ = strconv.ParseFloat(f[1], 64)
		return w, r
	}
	var vw, vr, dw, dr []float64
	for range 5 {
		out, err := exec.Command(filepath.Join(dir, "web"), "disk", direct, "256").CombinedOutput()
		if err != nil {
			t.Fatalf("disk on the host: %v: %s", err, out)
		}
		w, r := parse(string(out))
		dw, dr = append(dw, w), append(dr, r)
		w, r = parse(kubectl(t, an, "exec", "bench-0", "--", "/web", "disk", "/data", "256"))
		vw, vr = append(vw, w), append(vr, r)
	}
	med := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	span := func(xs []float64) string { slices.Sort(xs); return fmt.Sprintf("%.0f-%.0f", xs[0], xs[len(xs)-1]) }
	fmt.Printf("\nlocal volumes (%s), medians of 5 (range)\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("%-30s %16s %16s %8s\n", "", "volume (pod)", "direct (host)", "ratio")
	fmt.Printf("%-30s %6.0f %9s %6.0f %9s %7.2fx\n", "write 256 MiB + fsync (MB/s)", med(vw), span(vw), med(dw), span(dw), med(vw)/med(dw))
	fmt.Printf("%-30s %6.0f %9s %6.0f %9s %7.2fx\n", "read back, uncached (MB/s)", med(vr), span(vr), med(dr), span(dr), med(vr)/med(dr))
	slices.Sort(bound)
	fmt.Printf("claim to Bound, with scheduling: median %.2f s, max %.2f s (5 claims)\n", bound[2], bound[4])
}
