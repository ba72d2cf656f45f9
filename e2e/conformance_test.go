package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepto-net/hepto/lab"
)

// smokeFocus: a few minutes of the upstream conformance suite — cluster
// DNS, a Service's endpoints, and pods talking across homes.
const smokeFocus = `\[sig-network\] (DNS should provide DNS for services |Services should serve a basic endpoint from pods |Networking Granular Checks: Pods should function for intra-pod communication: http )`

// TestConformanceSmoke runs a few upstream conformance tests (make
// conformance runs them all) through hepto-lab against a lab cluster of an
// anchor and two homes behind NATs.
func TestConformanceSmoke(t *testing.T) {
	lab.NeedRoot(t)
	if os.Getenv("HEPTO_BIN") == "" {
		t.Skip("needs the built binaries and suite: run through `make test` (HEPTO_BIN)")
	}
	bin := filepath.Dir(heptoBin)
	for _, f := range []string{"hepto-lab", "conformance/e2e.test", "conformance/ginkgo", "conformance/kubectl", "e2e-images"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			t.Fatalf("%v: make conformance-build builds it (make test does)", err)
		}
	}
	report := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "hepto-lab"), "--hepto", heptoBin, "conformance",
		"--e2e-test", filepath.Join(bin, "conformance/e2e.test"), "--ginkgo", filepath.Join(bin, "conformance/ginkgo"),
		"--kubectl", filepath.Join(bin, "conformance/kubectl"), "--images", filepath.Join(bin, "e2e-images"), "--report", report, "--procs", "3", "--focus", smokeFocus)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(report, "e2e.log"))
		if i := strings.Index(string(log), "Summarizing"); i >= 0 {
			t.Logf("suite's summary:\n%s", log[i:])
		}
		t.Fatalf("conformance smoke: %v", err)
	}
	if !strings.Contains(string(out), "| 3 | 3 (100.0 % of those run) | 0 | 0") {
		t.Errorf("conformance smoke: want 3 tests run and passed")
	}
}
