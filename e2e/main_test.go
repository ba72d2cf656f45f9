// Package e2e runs hepto binaries in the lab: anchors on the lab's Internet
// and homes behind NAT boxes, as root. Without root every test skips.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hepto-net/hepto/kubebin"
)

var (
	// heptoBin is the binary under test: $HEPTO_BIN, or one built for the run.
	heptoBin string
	// cniBin is the CNI plugin under test: $HEPTO_CNI_BIN, or one built for the run.
	cniBin string
	// binDir holds what the run builds.
	binDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// patchedModfile is the go.mod of hepto's patched modules (Makefile).
var patchedModfile, _ = filepath.Abs("../bin/patched/go.mod")

func run(m *testing.M) int {
	heptoBin, cniBin = os.Getenv("HEPTO_BIN"), os.Getenv("HEPTO_CNI_BIN")
	if os.Geteuid() == 0 {
		var err error
		if binDir, err = os.MkdirTemp("", "hepto-e2e-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(binDir)
		// Where a fabric build unpacks the full one: once for the run.
		if os.Getenv(kubebin.EnvDir) == "" {
			os.Setenv(kubebin.EnvDir, filepath.Join(binDir, "data"))
		}
		for _, b := range []struct {
			bin       *string
			name, pkg string
		}{
			{&heptoBin, "hepto", "../cmd/hepto"},
			{&cniBin, "hepto-cni", "../cmd/hepto-cni"},
		} {
			if *b.bin != "" {
				continue
			}
			*b.bin = filepath.Join(binDir, b.name)
			// hepto links the patched modules of bin/patched (make patched).
			if _, err := os.Stat(patchedModfile); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v: run make patched first, or set HEPTO_BIN and HEPTO_CNI_BIN (make build)\n", b.name, err)
				return 1
			}
			build := exec.Command("go", "build", "-trimpath", "-tags", "no_btrfs,grpcnotrace", "-modfile", patchedModfile, "-o", *b.bin, b.pkg)
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n", b.name, err)
				return 1
			}
		}
	}
	return m.Run()
}
