// Package e2e runs hepto binaries in the lab: anchors on the lab's Internet
// and homes behind NAT boxes, as root. Without root every test skips.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// heptoBin is the binary under test: $HEPTO_BIN, or one built for the run.
var heptoBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	heptoBin = os.Getenv("HEPTO_BIN")
	if heptoBin == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "hepto-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		heptoBin = filepath.Join(dir, "hepto")
		build := exec.Command("go", "build", "-o", heptoBin, "../cmd/hepto")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build hepto:", err)
			return 1
		}
	}
	return m.Run()
}
